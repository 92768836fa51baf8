"""Whole cells: does each generated cell follow the depth bin it was conditioned on?

One trained model (``fidelity.py --model-dir`` saves it; trained here when absent), on the
training half of a data set. For every depth bin in turn, ``--cells`` cells are generated
with that bin forced (and, for the per-cell rows, depths drawn from the training cells of
that bin), and the median number of detected genes is printed per decoding:

- ``real``: the training cells of the bin;
- ``threshold 0``: the paper's decoding, bits on where the SB value is > 0;
- ``per-gene thresholds``: the previous default calibration (``per_cell=False``);
- ``bits drawn``: each bit drawn from its estimated probability ``(sb + 1) / 2`` instead of
  thresholded;
- ``per-cell depths``: the default calibration (each cell gets its drawn depth).

It also prints how soft the final SB values are per bin (fraction with ``|sb| < 0.5``).

With ``--figure PATH`` it also draws the README's figure: QC violins and a joint UMAP of
the held-out cells and as many cells generated with the default calibration.

    python benchmarks/whole_cells.py --dataset pbmc4k_top2000 --model-dir /tmp/sdd-models
    python benchmarks/whole_cells.py --figure docs/_static/whole_cells.png --model-dir /tmp/sdd-models
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import load, split

import sdd
from sdd.data.detection import nonzero_counts
from sdd.diffusion import sparsity


def trained(train, args):
    path = (
        None
        if args.model_dir is None
        else f"{args.model_dir}/{args.dataset}-default-{args.steps}-seed{args.seed}"
    )
    try:
        return sdd.SDD.load(path, train)
    except (OSError, ValueError, TypeError):
        torch.manual_seed(args.seed)
        model = sdd.SDD(train).train(
            args.steps, random_state=args.seed, execution=sdd.Execution(progress=False)
        )
        if path is not None:
            model.save(path, overwrite=True)
        return model


def figure(model, held_out, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = model.generate(
        held_out.n_obs, random_state=args.seed, execution=sdd.Execution(progress=False)
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    sdd.pl.qc_violin(held_out, gen, ax=list(axes[:2]), show=False)
    joint = sdd.tl.joint_embedding(held_out, gen, random_state=args.seed)
    sdd.pl.umap(joint, ax=axes[2], show=False, title=f"{args.dataset}: held-out vs generated")
    fig.savefig(args.figure, dpi=100)
    plt.close(fig)
    print(f"wrote {args.figure}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pbmc4k_top2000")
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--max-cells", type=int, default=3000)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--cells", type=int, default=300, help="generated cells per depth bin")
    p.add_argument("--sampling-steps", type=int, default=250)
    p.add_argument("--model-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default=None, help="also write the README figure here")
    p.add_argument("--out", default=None, help="also write the table (Markdown) here")
    args = p.parse_args()
    train, held_out = split(load(args.dataset, args.genes, args.max_cells, args.seed), args.seed)
    sdd.SDD.setup_anndata(train)
    model = trained(train, args)
    t0 = time.perf_counter()
    model.calibrate(execution=sdd.Execution(progress=False), per_cell=False)
    genes_only = model.calibration_
    model.calibrate(execution=sdd.Execution(progress=False))
    per_cell = model.calibration_
    if args.figure:
        figure(model, held_out, args)
    depth = model.depth_
    real = nonzero_counts(train.X)[0]
    bins = depth.bins(real)
    rows = {
        k: []
        for k in (
            "real",
            "threshold 0",
            "per-gene thresholds",
            "bits drawn",
            "per-cell depths",
            "soft bits (%)",
        )
    }
    rng = np.random.default_rng(args.seed)
    for b in range(depth.n_bins):
        pool = real[bins == b]
        depths = rng.choice(pool, args.cells)
        cond = np.full((args.cells, 1), b)
        [(_, _, z)] = model._sample_batches(
            args.cells, codes=cond, batch_size=args.cells, guidance_scale=0.0,
            random_state=args.seed + b, use_ema=True,
            execution=sdd.Execution(accelerator="cpu", progress=False),
            sampler=per_cell.settings["sampler"],
            n_steps=args.sampling_steps,
        )  # fmt: skip
        half, bits = sparsity.split(z)
        expressed = model.scaler_.inverse(half, torch.ones_like(half, dtype=torch.bool)) > 0
        drawn = torch.rand(bits.shape, generator=torch.Generator().manual_seed(b)) < (bits + 1) / 2
        detected = {
            "threshold 0": ((bits > 0) & expressed).sum(1),
            "per-gene thresholds": (model._decode(z, genes_only)[0] != 0).sum(1),
            "bits drawn": (drawn & expressed).sum(1),
            "per-cell depths": (model._decode(z, per_cell, depths=depths)[0] != 0).sum(1),
        }
        rows["real"].append(np.median(pool))
        for key, value in detected.items():
            rows[key].append(float(np.median(np.asarray(value))))
        rows["soft bits (%)"].append(100 * float((bits.abs() < 0.5).float().mean()))
    lines = [
        f"{args.dataset}: {model._last_step()} steps, {args.cells} cells per bin, "
        f"{per_cell.settings['sampler'].upper()}-{args.sampling_steps}, "
        f"{time.perf_counter() - t0:.0f} s",
        "",
        "| detected genes per cell, median | "
        + " | ".join(f"bin {b}" for b in range(depth.n_bins))
        + " |",
        "|---" + "|---:" * depth.n_bins + "|",
    ]
    for key, values in rows.items():
        fmt = "{:.1f}" if key == "soft bits (%)" else "{:.0f}"
        lines.append(f"| {key} | " + " | ".join(fmt.format(v) for v in values) + " |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
