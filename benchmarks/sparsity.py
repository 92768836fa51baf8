"""Sparsity of SDD vs the plain diffusion baseline (Core issue acceptance).

Preprocesses a shared scRNA dataset as in the SDD paper (normalize_total 1e4, log1p,
1000 highly variable genes), trains SDD and the plain baseline for a stated number of
steps, generates as many cells as the real data has, and prints a table: sparsity (fraction of
exact zeros), its gap to the real data, and SCC/PCC of per-gene mean expression.

    python benchmarks/sparsity.py                       # pbmc4k, CPU defaults
    python benchmarks/sparsity.py --dataset cbmc_top2000 --steps 3000
    python benchmarks/sparsity.py --accelerator cuda --steps 30000 --hidden 1024 512 256
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scanpy as sc
import torch
from scipy.stats import pearsonr, spearmanr

import sdd

DATA = (
    Path(
        os.environ.get(
            "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
        )
    )
    / "scrna"
)


def load(name: str, n_top_genes: int) -> sc.AnnData:
    adata = sc.read_h5ad(DATA / f"{name}.h5ad")
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.filter_cells(adata, min_genes=10)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, subset=True)
    return adata


def zero_fraction(x) -> float:
    nnz = x.nnz if hasattr(x, "nnz") else np.count_nonzero(x)
    return 1.0 - nnz / (x.shape[0] * x.shape[1])


def row(name: str, real, gen, seconds: float | None) -> dict:
    rm, gm = np.asarray(real.mean(axis=0)).ravel(), np.asarray(gen.mean(axis=0)).ravel()
    return {
        "method": name,
        "sparsity": zero_fraction(gen),
        "gap_pp": 100 * (zero_fraction(gen) - zero_fraction(real)),
        "SCC": spearmanr(rm, gm)[0],
        "PCC": pearsonr(rm, gm)[0],
        "gen_s": seconds,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pbmc4k_top2000")
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=3000, help="training steps per model")
    p.add_argument("--hidden", type=int, nargs="+", default=[1024, 512, 256])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-cells", type=int, default=None, help="cells to generate (default: as real)")
    p.add_argument(
        "--samplers",
        nargs="+",
        default=["ddpm:1000", "ddim:50"],
        help="sampler:steps pairs to report (default ddpm:1000 ddim:50)",
    )
    p.add_argument("--models", nargs="+", default=["SDD", "baseline"], choices=["SDD", "baseline"])
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    adata = load(args.dataset, args.genes)
    n_cells = args.n_cells or adata.n_obs
    print(
        f"{args.dataset}: {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{zero_fraction(adata.X):.2%} zeros; {args.steps} training steps, "
        f"hidden {args.hidden}, batch {args.batch_size}, device {args.accelerator}"
    )
    real = adata.X
    rows = [row("real data", real, real, None)]
    samplers = [(name, int(steps)) for name, steps in (s.split(":") for s in args.samplers)]
    for label in args.models:
        bits = label == "SDD"
        model = sdd.SDD(adata, sparsity_bits=bits, hidden=args.hidden)
        t0 = time.perf_counter()
        model.train(
            args.steps,
            batch_size=args.batch_size,
            execution=sdd.Execution(accelerator=args.accelerator, progress=False),
            random_state=args.seed,
        )
        print(
            f"{label}: {model.n_params / 1e6:.2f}M params, trained in "
            f"{time.perf_counter() - t0:.0f} s, final loss {model.history_['loss'].tail(200).mean():.4f}"
        )
        for sampler, steps in samplers:
            t0 = time.perf_counter()
            gen = model.generate(
                n_cells,
                sampler=sampler,
                n_steps=steps,
                store_dense=False,
                execution=sdd.Execution(accelerator=args.accelerator, progress=False),
                random_state=args.seed,
            )
            rows.append(
                row(f"{label}-{sampler.upper()}-{steps}", real, gen.X, time.perf_counter() - t0)
            )

    print()
    print(f"| {'method':<22} | sparsity | gap (pp) |   SCC |   PCC | generate (s) |")
    print(f"|{'-' * 24}|---------:|---------:|------:|------:|-------------:|")
    for r in rows:
        secs = "" if r["gen_s"] is None else f"{r['gen_s']:.1f}"
        print(
            f"| {r['method']:<22} | {r['sparsity']:8.2%} | {r['gap_pp']:+8.2f} | "
            f"{r['SCC']:5.3f} | {r['PCC']:5.3f} | {secs:>12} |"
        )


if __name__ == "__main__":
    main()
