"""DE recovery between two cell types on held-out cells: real-vs-real floor, SDD, scVI.

For each data set (raw counts; default ``cbmc_top2000`` and ``mouse_bladder_top2000`` from
the shared data, which the tests do not use): normalize_total 1e4, log1p, ``--genes``
highly variable genes; the two most frequent cell types play the two "conditions". Cells of
those types are split into two stratified random halves: half A trains the models, half B
is held out. Every row is compared with half B by :func:`sdd.metrics.de_recovery`
(log2 fold change of type 1 over type 2 with pseudo-count 1, Pearson / Spearman over
genes; top-50 DE genes by Wilcoxon, any direction and up-regulated) and the per-group
zero-fraction MAE (:func:`sdd.metrics.zero_fraction_mae`, mean over the two types):

- ``real half A (floor)``: the training cells themselves, the best a generator can do;
- ``SDD w=<w>``: conditional SDD (``labels_key``), as many cells per type as half A has,
  one row per classifier-free guidance weight of ``--guidance``, all generated from the
  SAME trained model (guidance acts at sampling only); one model per ``--zero-fill``
  value (``"min"``: the paper's scaling; ``"nonzero_mean"``: see :class:`sdd.SDD`);
- ``SDD default w=<w>, per-group calibration`` (``--variants default``): the package's
  defaults (``depth_bins=8``) and :meth:`sdd.SDD.calibrate` after training, as
  :func:`sdd.tl.fit` does (per-gene thresholds per cell type); then the same model
  recalibrated with ``per_group=False`` (one threshold and one value map per gene for all
  types) gives the ``global calibration`` rows, and the per-group thresholds with only
  the global value map the ``per-group thresholds calibration`` rows (an ablation);
  ``--variants paper`` (the default) is the rows above, with ``depth_bins=0`` and
  threshold 0;
- ``SDD sparsity_bits=False``: the plain-diffusion baseline, same settings, ``w`` = the
  first ``--guidance`` value;
- ``scVI``: :class:`scvi.model.SCVI` with its defaults (10 latent dimensions, ZINB, one
  hidden layer of 128; unsupervised: it never sees the cell types) on half A's raw counts
  (``layers["counts"]`` restricted to the same genes), ``--scvi-epochs`` epochs (default:
  scVI's own rule). scVI is not a conditional generator, so a cell of type ``t`` is made
  as follows: the latent ``z`` is drawn from the encoder posterior ``q(z | x)`` of a
  random training cell of type ``t`` (with replacement), the library size is the total
  count of another random training cell of type ``t``, and the counts are sampled from
  the decoder's ZINB likelihood; then normalize_total 1e4 + log1p as the real data. This
  gives scVI the training cells' posteriors (close to reconstruction), an advantage SDD,
  which starts from noise, does not have. Without scvi-tools the row says "not installed".

Data come from ``--data`` (default: ``$SDD_SHARED_DATA``, else ``../shared/data`` next to
the repository), file ``scrna/<name>.h5ad`` with raw counts in ``X`` and ``cell_type``.

    python benchmarks/perturbation.py --datasets cbmc_top2000 --steps 1500 --hidden 256 128 \\
        --threads 1 --guidance 0 0.5 1 2 --zero-fill min nonzero_mean
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scanpy as sc
import torch

import sdd

KEY = "cell_type"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load(path: Path, n_genes: int, max_cells: int, seed: int):
    if not path.exists():
        raise SystemExit(f"{path} not found (pass --data or set SDD_SHARED_DATA).")
    adata = sc.read_h5ad(path)
    top = adata.obs[KEY].value_counts().index[:2].tolist()
    adata = adata[adata.obs[KEY].isin(top)].copy()
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(adata.obs[KEY] == t))[:max_cells] for t in top]
    )
    adata = adata[np.sort(keep)].copy()
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_genes, subset=True)
    adata.obs[KEY] = adata.obs[KEY].astype(str).astype("category")
    halves = np.zeros(adata.n_obs, bool)
    for t in top:
        idx = rng.permutation(np.flatnonzero(adata.obs[KEY] == t))
        halves[idx[: idx.size // 2]] = True
    return adata[halves].copy(), adata[~halves].copy(), top


def score(cells, held_out, types) -> dict[str, float]:
    def part(a, t):
        return a.X[(a.obs[KEY].astype(str) == t).to_numpy()]

    values = sdd.metrics.de_recovery(
        part(held_out, types[0]),
        part(held_out, types[1]),
        part(cells, types[0]),
        part(cells, types[1]),
        k=50,
    )
    values["zf_mae"] = float(
        np.mean([sdd.metrics.zero_fraction_mae(part(held_out, t), part(cells, t)) for t in types])
    )
    return values


def row(label: str, v: dict[str, float], seconds: float) -> str:
    return (
        f"| {label} | {v['LFC_pearson']:.3f} | {v['LFC_spearman']:.3f} | "
        f"{v['top50_overlap']:.2f} | {v['top50_up_overlap']:.2f} | "
        f"{v['zf_mae']:.2f} | {seconds:.0f} |"
    )


#: ``--variants``: SDD constructor options and the calibrations applied after training
#: (``None``: none, threshold 0; ``"per-group"``: the default of ``calibrate``; ``"global"``:
#: ``calibrate(per_group=False)``; ``"per-group thresholds"``: the default, then the
#: per-group value maps dropped, so that only the global one applies — an ablation), each
#: giving its own rows from the same trained model.
VARIANTS = {
    "paper": ({"depth_bins": 0}, (None,)),
    "default": ({}, ("per-group", "per-group thresholds", "global")),
}


def sdd_rows(train, args, *, sparsity_bits: bool, zero_fill: str, scales, variant="paper"):
    """Train one conditional SDD model; yield ``(calibration, w, cells, seconds)`` per
    calibration and guidance weight."""
    options, calibrations = VARIANTS[variant]
    model_data = train.copy()
    sdd.SDD.setup_anndata(model_data, labels_key=KEY)
    # the network's initial weights come from torch's global generator (train's
    # random_state seeds only the training stream): seed it so that a run repeats
    torch.manual_seed(args.seed)
    model = sdd.SDD(
        model_data, hidden=args.hidden, sparsity_bits=sparsity_bits, zero_fill=zero_fill,
        **options,
    )  # fmt: skip
    t0 = time.perf_counter()
    model.train(
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        random_state=args.seed,
        execution=sdd.Execution(progress=False),
    )
    trained = time.perf_counter() - t0
    for calibration in calibrations if sparsity_bits else (None,):
        t1 = time.perf_counter()
        if calibration is not None:
            per_group = calibration.startswith("per-group")
            model.calibrate(
                n_steps=args.sampling_steps,
                execution=sdd.Execution(progress=False),
                per_group=per_group,
            )
            if calibration == "per-group thresholds":
                model.calibration_ = replace(model.calibration_, group_value_map=None)
        calibrated = time.perf_counter() - t1
        for w in scales:
            t2 = time.perf_counter()
            gen = model.generate(
                labels=train.obs[KEY],
                n_steps=args.sampling_steps,
                guidance_scale=w,
                random_state=args.seed,
                execution=sdd.Execution(progress=False),
            )
            yield calibration, w, gen, trained + calibrated + time.perf_counter() - t2


def scvi_row(train, args):
    import anndata as ad
    import scvi  # optional benchmark dependency

    scvi.settings.seed = args.seed
    data = ad.AnnData(train.layers["counts"].copy(), obs=train.obs[[KEY]].copy())
    data.var_names = train.var_names
    scvi.model.SCVI.setup_anndata(data)
    model = scvi.model.SCVI(data)
    t0 = time.perf_counter()
    model.train(
        max_epochs=args.scvi_epochs,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    mean, var = model.get_latent_representation(return_dist=True)
    library = np.asarray(data.X.sum(1)).ravel()
    rng = np.random.default_rng(args.seed)
    types = data.obs[KEY].astype(str).to_numpy()
    source, size = np.empty(data.n_obs, int), np.empty(data.n_obs, int)
    for t in np.unique(types):
        where = np.flatnonzero(types == t)
        source[where] = rng.choice(where, where.size)
        size[where] = rng.choice(where, where.size)
    eps = rng.standard_normal(mean.shape)
    z = torch.tensor(mean[source] + np.sqrt(var[source]) * eps, dtype=torch.float32)
    lib = torch.log(torch.tensor(library[size], dtype=torch.float32))[:, None]
    torch.manual_seed(args.seed)
    model.module.eval()
    with torch.no_grad():
        out = model.module.generative(
            z=z, library=lib, batch_index=torch.zeros(data.n_obs, 1, dtype=torch.long)
        )
        counts = out["px"].sample().numpy()
    gen = ad.AnnData(counts.astype(np.float32), obs=data.obs[[KEY]].copy())
    gen.var_names = data.var_names
    sc.pp.normalize_total(gen, target_sum=1e4)
    sc.pp.log1p(gen)
    return gen, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cbmc_top2000", "mouse_bladder_top2000"])
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SDD_SHARED_DATA", DEFAULT_DATA)),
        help="shared data folder (holds scrna/<dataset>.h5ad); default $SDD_SHARED_DATA",
    )
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--max-cells", type=int, default=1000, help="most cells per type")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sampling-steps", type=int, default=100)
    p.add_argument(
        "--guidance", type=float, nargs="+", default=[0.0], help="guidance weights, one row each"
    )
    p.add_argument(
        "--zero-fill",
        nargs="+",
        default=["min"],
        choices=["min", "nonzero_mean"],
        help="one SDD model per value",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        default=["paper"],
        choices=list(VARIANTS),
        help="SDD rows: 'paper' (depth_bins=0, threshold 0) and/or 'default' (the package's "
        "defaults, calibrated after training as sdd.tl.fit does, per group and globally)",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=["floor", "sdd", "baseline", "scvi"],
        choices=["floor", "sdd", "baseline", "scvi"],
    )
    p.add_argument(
        "--scvi-epochs", type=int, default=None, help="scVI epochs (default: scVI's own rule)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"steps {args.steps}, hidden {args.hidden}, batch {args.batch_size}, lr {args.lr}, "
        f"{args.sampling_steps} sampling steps (calibrated rows: the calibration's sampler, "
        f"others DDPM), {args.genes} HVG, seed {args.seed}, "
        f"scVI epochs {args.scvi_epochs or 'default'}"
    )
    for name in args.datasets:
        train, held_out, types = load(
            args.data / "scrna" / f"{name}.h5ad", args.genes, args.max_cells, args.seed
        )
        print(
            f"\n{name}: {types[0]} vs {types[1]}, {train.n_obs} training / "
            f"{held_out.n_obs} held-out cells\n"
        )
        print(
            "| row | LFC Pearson | LFC Spearman | top-50 overlap | top-50 up overlap "
            "| zero-fraction MAE (pp) | train+generate (s) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|", flush=True)

        def show(label, cells, seconds, held_out=held_out, types=types):
            print(row(label, score(cells, held_out, types), seconds), flush=True)

        if "floor" in args.rows:
            show("real half A (floor)", train, 0.0)
        if "sdd" in args.rows:
            for variant in args.variants:
                for fill in args.zero_fill:
                    tag = "" if fill == "min" else f" zero_fill={fill}"
                    tag += "" if variant == "paper" else f" {variant}"
                    for calibration, w, cells, s in sdd_rows(
                        train, args, sparsity_bits=True, zero_fill=fill, scales=args.guidance,
                        variant=variant,
                    ):  # fmt: skip
                        how = "" if calibration is None else f", {calibration} calibration"
                        show(f"SDD{tag} w={w:g}{how}", cells, s)
        if "baseline" in args.rows:
            for _, w, cells, s in sdd_rows(
                train, args, sparsity_bits=False, zero_fill="min", scales=args.guidance[:1]
            ):
                show(f"SDD sparsity_bits=False w={w:g}", cells, s)
        if "scvi" in args.rows:
            try:
                cells, seconds = scvi_row(train, args)
            except ImportError:
                print("| scVI defaults: not installed | | | | | | |")
            else:
                epochs = args.scvi_epochs or "default"
                show(f"scVI defaults ({epochs} epochs)", cells, seconds)


if __name__ == "__main__":
    main()
