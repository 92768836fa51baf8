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
- ``SDD``: conditional SDD (``labels_key``), as many cells per type as half A has;
- ``SDD sparsity_bits=False``: the plain-diffusion baseline, same settings;
- ``scVI``: scvi-tools defaults if importable (latent from the prior, counts from its
  likelihood, then the same normalisation), else a "not installed" row.

    python benchmarks/perturbation.py --steps 1500 --hidden 256 128 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scanpy as sc

import sdd

DATA = Path("/work/shared/data/scrna")
KEY = "cell_type"


def load(name: str, n_genes: int, max_cells: int, seed: int):
    adata = sc.read_h5ad(DATA / f"{name}.h5ad")
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


def sdd_row(train, args, sparsity_bits: bool):
    model_data = train.copy()
    sdd.SDD.setup_anndata(model_data, labels_key=KEY)
    model = sdd.SDD(model_data, hidden=args.hidden, sparsity_bits=sparsity_bits)
    t0 = time.perf_counter()
    model.train(
        args.steps, batch_size=args.batch_size, lr=args.lr, random_state=args.seed, progress=False
    )
    gen = model.generate(
        labels=train.obs[KEY], n_steps=args.sampling_steps, random_state=args.seed, progress=False
    )
    return gen, time.perf_counter() - t0


def scvi_row(train, args):
    import anndata as ad
    import scvi  # optional benchmark dependency
    import torch

    data = train.copy()
    scvi.model.SCVI.setup_anndata(data, layer="counts", labels_key=KEY)
    model = scvi.model.SCVI(data)
    t0 = time.perf_counter()
    model.train(accelerator="cpu")
    labels = data.obs[KEY].cat.codes.to_numpy()
    library = np.asarray(data.layers["counts"].sum(1)).ravel()
    module = model.module
    z = torch.randn(data.n_obs, module.n_latent)
    lib = torch.log(torch.tensor(library, dtype=torch.float32))[:, None]
    with torch.no_grad():
        out = module.generative(
            z=z,
            library=lib,
            batch_index=torch.zeros(data.n_obs, 1).long(),
            y=torch.tensor(labels)[:, None].long(),
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
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--max-cells", type=int, default=1000, help="most cells per type")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sampling-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"steps {args.steps}, hidden {args.hidden}, batch {args.batch_size}, lr {args.lr}, "
        f"DDPM {args.sampling_steps} steps, {args.genes} HVG, seed {args.seed}"
    )
    for name in args.datasets:
        train, held_out, types = load(name, args.genes, args.max_cells, args.seed)
        print(
            f"\n{name}: {types[0]} vs {types[1]}, {train.n_obs} training / "
            f"{held_out.n_obs} held-out cells\n"
        )
        print(
            "| row | LFC Pearson | LFC Spearman | top-50 overlap | top-50 up overlap "
            "| zero-fraction MAE (pp) | train+generate (s) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows = [
            ("real half A (floor)", lambda t: (t, 0.0)),
            ("SDD", lambda t: sdd_row(t, args, True)),
            ("SDD sparsity_bits=False", lambda t: sdd_row(t, args, False)),
            ("scVI defaults", lambda t: scvi_row(t, args)),
        ]
        for label, make in rows:
            try:
                cells, seconds = make(train)
            except ImportError:
                print(f"| {label}: not installed | | | | | | |")
                continue
            v = score(cells, held_out, types)
            print(
                f"| {label} | {v['LFC_pearson']:.3f} | {v['LFC_spearman']:.3f} | "
                f"{v['top50_overlap']:.2f} | {v['top50_up_overlap']:.2f} | "
                f"{v['zf_mae']:.2f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
