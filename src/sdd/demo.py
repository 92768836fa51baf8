"""Quick-start demo: ``python -m sdd.demo``.

Holds out half of scanpy's bundled ``pbmc68k_reduced`` (``.raw``: 700 cells x 765 genes,
log1p-normalised), fits SDD on the other half, generates as many cells as were held out,
and compares them with the held-out cells next to the real-vs-real floor (two halves of
the held-out cells): gene-level and cell-level numbers, each with its best value. Writes
the generated cells (``.h5ad``) and a figure of QC violins and a joint UMAP (``.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scanpy as sc

import sdd
from sdd.io.atomic import atomic_path, write_h5ad

#: metric of sdd.tl.evaluate -> what it says, for a reader new to the numbers
EXPLAINED = {
    "sparsity_generated": "fraction of exact zeros (real: {real:.1%})",
    "SCC": "rank correlation of per-gene means with the real cells",
    "zero_fraction_mae": "per-gene zero fraction, mean error (points)",
    "detected_w1": "detected genes per cell: distance of distributions",
    "below_real_p1": "cells below the real 1st percentile of detected genes",
    "AUC_rf_qc": "forest telling real from generated on 3 QC numbers",
    "AUC_rf": "forest telling real from generated on 50 PCs",
    "LISI": "mixing of real and generated neighbours (iLISI)",
}


def main(argv: list[str] | None = None) -> None:
    """Run the demo (see ``python -m sdd.demo --help``)."""
    parser = argparse.ArgumentParser(prog="python -m sdd.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument(
        "--sampling-steps", type=int, default=None,
        help="steps of the sampler the calibration chose (default: its own, 25)",
    )  # fmt: skip
    parser.add_argument("--out", default="sdd_demo_generated.h5ad", help="output .h5ad path")
    parser.add_argument("--figure", default="sdd_demo.png", help="output figure path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    order = np.random.default_rng(args.seed).permutation(adata.n_obs)
    train, held_out = adata[np.sort(order[::2])].copy(), adata[np.sort(order[1::2])].copy()
    print(
        f"Real data: {adata.n_obs} cells x {adata.n_vars} genes (scanpy pbmc68k_reduced .raw); "
        f"training on {train.n_obs}, comparing with the {held_out.n_obs} held out"
    )
    start = time.perf_counter()
    model = sdd.tl.fit(
        train, max_steps=args.steps, recipe="cpu", labels_key="bulk_labels",
        random_state=args.seed,
    )  # fmt: skip
    print(model)
    trained = time.perf_counter()
    gen = sdd.tl.generate(
        n_cells=held_out.n_obs, model=model, n_steps=args.sampling_steps, random_state=args.seed
    )
    generated = time.perf_counter()
    table = sdd.tl.evaluate(held_out, gen, floor=True, random_state=args.seed)
    table = table[table["group"] == "all"].set_index("metric")
    real = table.loc["sparsity_real", "value"]
    print(f"\n{'':>22} {'generated':>10} {'floor':>8} {'best':>6}  what it measures")
    for metric, text in EXPLAINED.items():
        row = table.loc[metric]
        print(
            f"{metric:>22} {row['value']:>10.3f} {row['floor']:>8.3f} {row['best']:>6}  "
            + text.format(real=real)
        )
    print(
        "floor: one half of the held-out cells scored against the other, the best a "
        "generator can expect at this sample size."
    )
    write_h5ad(gen, args.out, overwrite=True)  # atomic: never a half-written file
    _figure(held_out, gen, args.figure, args.seed)
    print(
        f"\nwrote {args.out} and {args.figure}; training {trained - start:.0f} s (with the "
        f"calibration), generating {generated - trained:.0f} s, total "
        f"{time.perf_counter() - start:.0f} s.\nNext: tutorials/01_quickstart.ipynb, or "
        "sdd.tl.fit(your_adata, labels_key=...) on your own log1p-normalised cells."
    )


def _figure(real: sc.AnnData, gen: sc.AnnData, path: str, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    sdd.pl.qc_violin(real, gen, ax=list(axes[:2]), show=False)
    joint = sdd.tl.joint_embedding(real, gen, random_state=seed)
    sdd.pl.umap(joint, ax=axes[2], show=False)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


if __name__ == "__main__":
    main()
