"""Fidelity of SDD vs the plain diffusion baseline: the SDD paper's Table 3 columns plus AUC.

Preprocesses a shared scRNA dataset as in the SDD paper / scDiffusion (filter genes in < 3
cells and cells with < 10 genes, normalize_total 1e4, log1p, 1000 highly variable genes),
splits the cells into two random halves, trains SDD and the baseline
(``sdd.SDD(adata, sparsity_bits=False)``) on the first half, generates cells with DDPM and
DDIM, and compares every set with the held-out second half using ``sdd.tl.evaluate``.
The first row compares the two real halves: the best a model can be expected to score.

Columns (all cells, ``group == "all"``): SCC / PCC of per-gene means, MMD² on a 50-PC joint
PCA, scaled iLISI (90 neighbours, perplexity 30), sparsity = fraction of exact zeros of the
generated cells (the held-out real value is in the header), and the 5-fold kNN
real-vs-generated AUC.

    python benchmarks/fidelity.py                                   # CPU defaults, see below
    python benchmarks/fidelity.py --steps 100 --n-cells 300 --sampling-steps 20   # smoke
    python benchmarks/fidelity.py --accelerator cuda --steps 30000 --hidden 1024 512 256 \\
        --batch-size 256 --lr 2e-4 --sampling-steps 1000            # paper-like, on a GPU

CPU defaults: 1500 steps, hidden 256-128-64, batch 128, lr 1e-3, 100 sampling steps, all
2136 held-out cells. From per-step timings on 2 CPU cores (SDD ~0.1 s per training step,
baseline ~0.06 s; sampling ~1.5e-4 s per cell and step) that is an estimated 6-8 min on
idle cores, more on a busy machine. Models this small and this briefly trained are far
from the paper's; the table shows where they stand, not what SDD can reach.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import torch
from scipy import sparse

import sdd

DATA = (
    Path(
        os.environ.get(
            "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
        )
    )
    / "scrna"
)
COLUMNS = ["SCC", "PCC", "MMD", "LISI", "sparsity_generated", "AUC"]


def load(name: str, n_top_genes: int) -> sc.AnnData:
    path = DATA / f"{name}.h5ad"
    if not path.exists():
        raise SystemExit(f"{path} not found (set SDD_SHARED_DATA to the shared data folder).")
    adata = sc.read_h5ad(path)
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.filter_cells(adata, min_genes=10)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, subset=True)
    return adata


def scores(real, other, n_cells: int | None, seed: int) -> dict:
    table = sdd.tl.evaluate(real, other, n_cells=n_cells, random_state=seed)
    return table[table["group"] == "all"].set_index("metric")["value"].to_dict()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pbmc4k_top2000", help="file stem in shared/data/scrna")
    p.add_argument("--genes", type=int, default=1000, help="highly variable genes kept")
    p.add_argument("--steps", type=int, default=1500, help="training steps per model")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128, 64])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--n-cells",
        type=int,
        default=None,
        help="cells generated per run and compared (default: all held-out cells)",
    )
    p.add_argument(
        "--sampling-steps", type=int, default=100, help="reverse steps for DDPM and for DDIM"
    )
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")
    p.add_argument(
        "--save-generated",
        default=None,
        metavar="DIR",
        help="write each generated set and its timings to DIR (e.g. on a GPU machine without "
        "scib-metrics) and stop before evaluating",
    )
    p.add_argument(
        "--load-generated",
        default=None,
        metavar="DIR",
        help="evaluate the sets written by --save-generated instead of training",
    )
    args = p.parse_args()

    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    adata = load(args.dataset, args.genes)
    order = np.random.default_rng(args.seed).permutation(adata.n_obs)
    half = adata.n_obs // 2
    train = adata[np.sort(order[:half])].copy()
    held_out = adata[np.sort(order[half:])].copy()
    n_cells = min(args.n_cells or held_out.n_obs, held_out.n_obs)
    real = held_out if n_cells == held_out.n_obs else held_out[:n_cells].copy()
    print(
        f"{args.dataset}: {adata.n_obs} cells x {adata.n_vars} genes; train half {train.n_obs} "
        f"cells, held-out half {held_out.n_obs} cells ({sdd.metrics.zero_fraction(held_out.X):.2%} "
        f"zeros); {n_cells} cells compared per row"
    )
    print(
        f"{args.steps} training steps, hidden {args.hidden}, batch {args.batch_size}, "
        f"lr {args.lr}, {args.sampling_steps} sampling steps, device {args.accelerator}, "
        f"seed {args.seed}"
    )
    save_dir = Path(args.save_generated) if args.save_generated else None
    rows, timings = {}, {"real-vs-real halves": (None, None)}
    if save_dir is None:
        rows["real-vs-real halves"] = scores(real, train, n_cells, args.seed)
    if args.load_generated:
        rows.update(load_generated(Path(args.load_generated), real, n_cells, args.seed, timings))
        print_table(rows, timings, real)
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
        return
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    for label, bits in (("SDD", True), ("baseline", False)):
        model = sdd.SDD(train, sparsity_bits=bits, hidden=args.hidden)
        t0 = time.perf_counter()
        model.train(
            args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            accelerator=args.accelerator,
            random_state=args.seed,
            progress=False,
        )
        train_s = time.perf_counter() - t0
        print(
            f"{label}: {model.n_params / 1e6:.2f}M params, trained in {train_s:.0f} s, "
            f"final loss {model.history_['loss'].tail(100).mean():.4f}"
        )
        for sampler in ("ddpm", "ddim"):
            t0 = time.perf_counter()
            gen = model.generate(
                n_cells,
                sampler=sampler,
                n_steps=args.sampling_steps,
                store_dense=False,
                accelerator=args.accelerator,
                random_state=args.seed,
                progress=False,
            )
            gen_s = time.perf_counter() - t0
            name = f"{label}-{sampler.upper()}"
            timings[name] = (train_s, gen_s)
            if save_dir:
                save_generated(gen, save_dir / f"{name}.npz", train_s, gen_s)
                print(f"{name}: generated in {gen_s:.1f} s -> {save_dir / name}.npz")
            else:
                rows[name] = scores(real, gen, n_cells, args.seed)

    if save_dir:
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
        return
    print_table(rows, timings, real)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.csv:
        pd.DataFrame.from_dict(rows, orient="index").to_csv(args.csv)


def save_generated(gen: sc.AnnData, path: Path, train_s: float, gen_s: float) -> None:
    """Keep only what evaluation reads (X and var_names) plus the timings, as plain arrays."""
    x = gen.X.tocsr()
    np.savez_compressed(
        path.with_suffix(".npz"),
        data=x.data,
        indices=x.indices,
        indptr=x.indptr,
        shape=np.array(x.shape),
        var_names=np.asarray(gen.var_names, dtype=str),
        timings=np.array([train_s, gen_s]),
    )


def load_generated(folder: Path, real, n_cells: int, seed: int, timings: dict) -> dict:
    rows = {}
    for label in ("SDD", "baseline"):
        for sampler in ("DDPM", "DDIM"):
            name = f"{label}-{sampler}"
            path = folder / f"{name}.npz"
            if not path.exists():
                continue
            with np.load(path) as f:
                x = sparse.csr_matrix(
                    (f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"])
                )
                gen = sc.AnnData(x)
                gen.var_names = f["var_names"].tolist()
                timings[name] = tuple(float(v) for v in f["timings"])
            rows[name] = scores(real, gen, n_cells, seed)
    if not rows:
        raise SystemExit(f"no generated sets found in {folder}")
    return rows


def print_table(rows: dict, timings: dict, real) -> None:
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]
    table = table.rename(columns={"sparsity_generated": "sparsity"})
    table["train_s"] = [timings[k][0] for k in table.index]
    table["generate_s"] = [timings[k][1] for k in table.index]
    print()
    print(f"held-out real sparsity: {sdd.metrics.zero_fraction(real.X):.4f}")
    print(
        "| method | SCC ↑ | PCC ↑ | MMD ↓ | LISI ↑ | sparsity | AUC (→0.5) | train (s) | generate (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in table.iterrows():
        train_s = "" if pd.isna(r["train_s"]) else f"{r['train_s']:.0f}"
        gen_s = "" if pd.isna(r["generate_s"]) else f"{r['generate_s']:.1f}"
        print(
            f"| {name} | {r['SCC']:.3f} | {r['PCC']:.3f} | {r['MMD']:.4f} | {r['LISI']:.3f} | "
            f"{r['sparsity']:.4f} | {r['AUC']:.3f} | {train_s} | {gen_s} |"
        )


if __name__ == "__main__":
    main()
