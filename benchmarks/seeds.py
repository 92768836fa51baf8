"""The founding papers' other two systems: Blackout Diffusion and sparse-to-sparse training.

Prints two tables per dataset (a shared scRNA data set and MNIST):

1. **SDD vs Blackout** - `sdd.SDD` (sparsity bits, Gaussian diffusion) against
   `sdd.SDDBlackout` (Blackout Diffusion: death process on counts, binomial bridge), same
   MLP widths and steps. scRNA: SDD learns log1p(normalize_total(1e4)) expression as in
   the SDD paper, Blackout learns the raw counts of the same cells and genes; both are
   compared in log1p-normalised space. MNIST: both learn flattened 28x28 pixel values
   0..255 (SDD through the AnnData front end, so the network is the same MLP).
2. **Dense vs Static / RigL / MagRan** at 50% and 90% weight sparsity of the SDD model,
   with the first and last layer dense (the paper's guidance) and with every layer
   masked: sparsity of the masked layers and of all parameters, non-zero parameters,
   FLOPs (2 x multiply-adds of the Linear layers, per example forward and per training
   step, as a sparse kernel would need) and the same fidelity metrics. In an MLP on
   genes or pixels the first and last layers hold most weights, so keeping them dense
   leaves most of the network dense.

Metrics (``sdd.metrics``, the definitions ``sdd.tl.evaluate`` and the other benchmarks use;
generated cells are compared with the training cells, up to 2,000 of each):
sparsity (fraction of exact zeros) and its gap to the real data; SCC/PCC of per-feature
means; MMD² (sum of five Gaussian kernels) and scaled iLISI (0 = separated, 1 = mixed) on a
50-PC joint PCA; library size (total counts or intensity per cell: generated/real mean ratio
and the KS statistic; only for count data, "-" for SDD's normalised scRNA output); per-feature
zero-fraction agreement (PCC and mean absolute difference in percentage points).
``train_s``/``gen_s`` are wall-clock seconds (noisy on a shared machine). PyTorch runs
masked weights as dense tensors, so sparse runs are not faster here; the FLOPs columns
give what a sparse kernel would need.

    python benchmarks/seeds.py --smoke                  # tiny CPU setting (minutes)
    python benchmarks/seeds.py --steps 5000             # CPU, longer
    python benchmarks/seeds.py --accelerator cuda --steps 50000 --hidden 1024 512 256 \\
        --sdd-sampler ddpm --sdd-steps 1000 --blackout-steps 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import torch
from scipy.stats import ks_2samp, pearsonr

import sdd
from sdd import metrics
from sdd.datasets import read_mnist

DATA = Path(
    os.environ.get(
        "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


# ------------------------------------------------------------------- data
def load_scrna(name: str, n_genes: int, max_cells: int | None, seed: int) -> ad.AnnData:
    adata = sc.read_h5ad(DATA / "scrna" / f"{name}.h5ad")
    if max_cells and adata.n_obs > max_cells:
        rng = np.random.default_rng(seed)
        adata = adata[np.sort(rng.choice(adata.n_obs, max_cells, replace=False))].copy()
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.filter_cells(adata, min_genes=10)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_genes, subset=True)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.layers["counts"] = sp.csr_matrix(adata.layers["counts"], dtype=np.float32)
    return adata


def load_mnist(n_images: int, seed: int) -> ad.AnnData:
    images, labels = read_mnist(DATA / "images" / "mnist", split="train")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), min(n_images, len(images)), replace=False))
    flat = images[idx].reshape(len(idx), -1).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(flat))
    adata.var_names = [f"px_{i}" for i in range(flat.shape[1])]
    adata.obs_names = [f"img_{i}" for i in idx]
    adata.obs["label"] = pd.Categorical(labels[idx].astype(str))
    adata.layers["counts"] = adata.X.copy()
    return adata


def lognorm(counts) -> np.ndarray:
    x = counts.toarray() if sp.issparse(counts) else np.asarray(counts, dtype=np.float64)
    size = x.sum(axis=1, keepdims=True)
    return np.log1p(x / np.maximum(size, 1.0) * 1e4)


# ---------------------------------------------------------------- metrics
def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def evaluate(real_expr, gen_expr, real_counts=None, gen_counts=None, *, seed: int = 0) -> dict:
    """Fidelity metrics of generated vs real data (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rs = real_expr[
        np.sort(rng.choice(real_expr.shape[0], min(real_expr.shape[0], 2000), replace=False))
    ]
    gs = gen_expr[
        np.sort(rng.choice(gen_expr.shape[0], min(gen_expr.shape[0], 2000), replace=False))
    ]
    pr, pg = metrics.joint_pca(rs, gs, n_comps=50, random_state=seed)
    rz, gz = metrics.gene_sparsity(real_expr), metrics.gene_sparsity(gen_expr)
    out = {
        "sparsity": metrics.zero_fraction(gen_expr),
        "gap_pp": 100 * (metrics.zero_fraction(gen_expr) - metrics.zero_fraction(real_expr)),
        "SCC": metrics.scc(real_expr, gen_expr),
        "PCC": metrics.pcc(real_expr, gen_expr),
        "MMD": metrics.mmd(pr, pg),
        "LISI": metrics.lisi(pr, pg),
        "zero_PCC": pearsonr(rz, gz)[0] if gz.std() > 0 else np.nan,
        "zero_MAE_pp": 100 * float(np.abs(rz - gz).mean()),
        "lib_ratio": np.nan,
        "lib_KS": np.nan,
    }
    if real_counts is not None and gen_counts is not None:
        rl, gl = _dense(real_counts).sum(1), _dense(gen_counts).sum(1)
        out["lib_ratio"] = float(gl.mean() / rl.mean())
        out["lib_KS"] = float(ks_2samp(rl, gl).statistic)
    return out


# ------------------------------------------------------------------- runs
def run_sdd(adata, args, seed, n_gen, **sparse):
    torch.manual_seed(seed)  # the initial weights
    model = sdd.SDD(adata, hidden=args.hidden, emb_dim=args.emb_dim, **sparse)
    t0 = time.perf_counter()
    model.train(
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        execution=sdd.Execution(accelerator=args.accelerator, progress=False),
        random_state=seed,
    )
    t1 = time.perf_counter()
    gen = model.generate(
        n_gen,
        sampler=args.sdd_sampler,
        n_steps=args.sdd_steps,
        execution=sdd.Execution(accelerator=args.accelerator, progress=False),
        random_state=seed,
        store_dense=False,
    )
    t2 = time.perf_counter()
    return model, gen, t1 - t0, t2 - t1


def run_blackout(adata, args, seed, n_gen):
    torch.manual_seed(seed)
    model = sdd.SDDBlackout(adata, hidden=args.hidden, emb_dim=args.emb_dim)
    t0 = time.perf_counter()
    model.train(
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        execution=sdd.Execution(accelerator=args.accelerator, progress=False),
        random_state=seed,
    )
    t1 = time.perf_counter()
    gen = model.generate(
        n_gen,
        n_steps=args.blackout_steps,
        rounding=args.blackout_rounding,
        execution=sdd.Execution(accelerator=args.accelerator, progress=False),
        random_state=seed,
    )
    t2 = time.perf_counter()
    return model, gen, t1 - t0, t2 - t1


def summarise(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    metrics = [c for c in df.columns if c not in keys + ["seed"]]
    if df["seed"].nunique() == 1:
        return df.drop(columns="seed").set_index(keys)
    mean = df.groupby(keys, sort=False)[metrics].mean()
    sd = df.groupby(keys, sort=False)[metrics].std()
    return mean.round(4).astype(str) + " ± " + sd.round(4).astype(str)


def fmt(df: pd.DataFrame) -> str:
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        return df.to_string(
            float_format=lambda v: (
                "-" if np.isnan(v) else (f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.4f}")
            ),
            na_rep="-",
        )


def benchmark(name: str, adata: ad.AnnData, args, *, counts_space: bool) -> None:
    """``counts_space``: MNIST (both models see raw values); else scRNA (SDD on log1p)."""
    n_gen = args.n_generate or adata.n_obs
    real_counts = adata.layers["counts"]
    real_expr = adata.X if not counts_space else sp.csr_matrix(adata.layers["counts"] / 255.0)
    print(
        f"\n=== {name}: {adata.n_obs} x {adata.n_vars}, {1 - adata.X.nnz / np.prod(adata.shape):.2%} "
        f"zeros; {args.steps} steps, MLP {tuple(args.hidden)}, batch {args.batch_size}, "
        f"seeds {args.seeds}; SDD {args.sdd_sampler}:{args.sdd_steps}, "
        f"Blackout binomial bridge:{args.blackout_steps} ({args.blackout_rounding} rounding) ==="
    )
    sdd_data = adata.copy()
    if counts_space:
        sdd_data.X = sdd_data.layers["counts"].copy()
    sdd.SDD.setup_anndata(sdd_data)
    sdd.SDDBlackout.setup_anndata(adata, layer="counts")

    rows, sparse_rows = [], []
    for seed in args.seeds:
        half = np.random.default_rng(seed).permutation(adata.n_obs)
        a_idx, b_idx = np.sort(half[: adata.n_obs // 2]), np.sort(half[adata.n_obs // 2 :])
        rows.append(
            {
                "model": "real half vs half",
                "seed": seed,
                **evaluate(
                    real_expr[a_idx],
                    real_expr[b_idx],
                    real_counts[a_idx],
                    real_counts[b_idx],
                    seed=seed,
                ),
                "train_s": np.nan,
                "gen_s": np.nan,
            }
        )
        model, gen, ts, gs = run_sdd(sdd_data, args, seed, n_gen)
        gen_expr = gen.X / 255.0 if counts_space else gen.X
        rows.append(
            {
                "model": "SDD",
                "seed": seed,
                **evaluate(
                    real_expr,
                    gen_expr,
                    real_counts if counts_space else None,
                    gen.X if counts_space else None,
                    seed=seed,
                ),
                "train_s": ts,
                "gen_s": gs,
            }
        )
        dense_report = model.weight_report(args.batch_size)
        sparse_rows.append(_sparse_row("dense", "-", 0.0, seed, dense_report, rows[-1], ts))
        model, gen, ts, gs = run_blackout(adata, args, seed, n_gen)
        gen_expr = gen.X / 255.0 if counts_space else lognorm(gen.X)
        rows.append(
            {
                "model": "Blackout",
                "seed": seed,
                **evaluate(real_expr, gen_expr, real_counts, gen.X, seed=seed),
                "train_s": ts,
                "gen_s": gs,
            }
        )
        if args.no_sparse:
            continue
        for ends in args.dense_ends:
            for level in args.weight_sparsity:
                for method in ("static", "rigl", "magran"):
                    model, gen, ts, _ = run_sdd(
                        sdd_data,
                        args,
                        seed,
                        n_gen,
                        weight_sparsity=level,
                        sparse_method=method,
                        sparse_update_interval=args.update_interval,
                        sparse_drop_fraction=args.drop_fraction,
                        dense_layers=("first", "last") if ends == "first-last" else (),
                    )
                    gen_expr = gen.X / 255.0 if counts_space else gen.X
                    metrics = evaluate(real_expr, gen_expr, seed=seed)
                    report = model.weight_report(args.batch_size)
                    sparse_rows.append(_sparse_row(method, ends, level, seed, report, metrics, ts))
    print("\n-- SDD vs Blackout --")
    print(fmt(summarise(rows, ["model"])))
    if not args.no_sparse:
        print("\n-- Dense vs sparse-to-sparse training (SDD model) --")
        print(fmt(summarise(sparse_rows, ["method", "dense_layers", "weight_sparsity"])))


def _sparse_row(method, ends, level, seed, report, metrics, train_s) -> dict:
    return {
        "method": method,
        "dense_layers": ends,
        "weight_sparsity": level,
        "seed": seed,
        "masked_sparsity": report["sparsity_masked_layers"],
        "overall_sparsity": report["sparsity_overall"],
        "nnz_params": report["n_params_nonzero"],
        "params": report["n_params"],
        "MFLOPs_fwd": report["flops_forward"] / 1e6,
        "GFLOPs_step": report["flops_train_step"] / 1e9,
        "sparsity": metrics["sparsity"],
        "SCC": metrics["SCC"],
        "PCC": metrics["PCC"],
        "MMD": metrics["MMD"],
        "LISI": metrics["LISI"],
        "train_s": train_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny CPU setting (overrides sizes)")
    p.add_argument("--dataset", default="pbmc4k_top2000", help="scRNA file in shared/data/scrna")
    p.add_argument("--datasets", nargs="+", default=["scrna", "mnist"], choices=["scrna", "mnist"])
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--max-cells", type=int, default=None)
    p.add_argument("--mnist-images", type=int, default=10_000)
    p.add_argument("--n-generate", type=int, default=None, help="default: as many as real")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", type=int, nargs="+", default=[1024, 512, 256])
    p.add_argument("--emb-dim", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--sdd-sampler", default="ddpm", choices=["ddpm", "ddim"])
    p.add_argument("--sdd-steps", type=int, default=1000)
    p.add_argument("--blackout-steps", type=int, default=1000)
    p.add_argument(
        "--blackout-rounding",
        default="stochastic",
        choices=["stochastic", "nearest"],
        help="how the Blackout bridge rounds the expected missing counts",
    )
    p.add_argument("--weight-sparsity", type=float, nargs="+", default=[0.5, 0.9])
    p.add_argument("--update-interval", type=int, default=100)
    p.add_argument("--drop-fraction", type=float, default=0.3)
    p.add_argument(
        "--dense-ends",
        nargs="+",
        default=["first-last", "none"],
        choices=["first-last", "none"],
        help="keep the first and last layer dense (the paper's guidance) and/or mask every layer",
    )
    p.add_argument("--no-sparse", action="store_true", help="skip the sparse-training table")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.smoke:
        args.genes, args.max_cells, args.mnist_images = 300, 1500, 1500
        args.n_generate, args.steps, args.hidden, args.emb_dim = 600, 400, [128, 64], 32
        args.batch_size, args.lr, args.ema_decay = 128, 1e-3, 0.99
        args.sdd_sampler, args.sdd_steps, args.blackout_steps = "ddpm", 100, 100
        args.update_interval = 50
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"sdd {sdd.__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    t0 = time.perf_counter()
    if "scrna" in args.datasets:
        adata = load_scrna(args.dataset, args.genes, args.max_cells, args.seeds[0])
        benchmark(args.dataset, adata, args, counts_space=False)
    if "mnist" in args.datasets:
        benchmark(
            "MNIST (flattened)",
            load_mnist(args.mnist_images, args.seeds[0]),
            args,
            counts_space=True,
        )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
