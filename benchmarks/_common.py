"""What the benchmark scripts share: the data sets, their preprocessing and split, the scVI peer.

Data sets are read from ``$SDD_SHARED_DATA/scrna/NAME.h5ad`` (default: ``../shared/data``
beside the repository). The package itself never reads them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scanpy as sc
import torch
from scipy import sparse

import sdd

DATA = Path(
    os.environ.get(
        "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)

#: Data sets recipes are chosen on; every other data set is held out from tuning.
TUNING_SETS = ("pbmc4k_top2000",)


def load(name: str, n_genes: int, max_cells: int | None, seed: int) -> sc.AnnData:
    path = DATA / "scrna" / f"{name}.h5ad"
    if not path.exists():
        raise SystemExit(f"{path} not found (set SDD_SHARED_DATA to the shared data folder).")
    adata = sc.read_h5ad(path)
    adata.obs_names_make_unique()
    if max_cells is not None and adata.n_obs > max_cells:
        keep = np.random.default_rng(seed).choice(adata.n_obs, max_cells, replace=False)
        adata = adata[np.sort(keep)].copy()
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.filter_cells(adata, min_genes=10)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_genes, subset=True)
    adata.X = sparse.csr_matrix(adata.X, dtype=np.float32)
    return adata


def split(adata: sc.AnnData, seed: int) -> tuple[sc.AnnData, sc.AnnData]:
    order = np.random.default_rng(seed).permutation(adata.n_obs)
    half = adata.n_obs // 2
    return adata[np.sort(order[:half])].copy(), adata[np.sort(order[half:])].copy()


def cached_scvi(train, n_cells, args):
    """scVI's cells (:func:`run_scvi`); with ``--model-dir``, saved there and read back on
    later runs with the same data set and seed."""
    if args.model_dir is None:
        return run_scvi(train, n_cells, args)
    path = Path(args.model_dir) / f"{args.dataset}-scvi-{args.scvi_epochs}-seed{args.seed}.h5ad"
    if path.exists():
        gen = sc.read_h5ad(path)
        return gen, gen.uns["train_s"], gen.uns["generate_s"]
    gen, train_s, generate_s = run_scvi(train, n_cells, args)
    gen.uns.update(train_s=train_s, generate_s=generate_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    gen.write_h5ad(path)
    return gen, train_s, generate_s


def run_scvi(train, n_cells, args):
    import scvi

    scvi.settings.seed = args.seed
    counts = sc.AnnData(train.layers["counts"].copy(), var=train.var[[]].copy())
    scvi.model.SCVI.setup_anndata(counts)
    model = scvi.model.SCVI(counts)
    t0 = time.perf_counter()
    model.train(
        accelerator="cpu",
        enable_progress_bar=False,
        max_epochs=args.scvi_epochs,
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rng = torch.Generator().manual_seed(args.seed)
    totals = np.asarray(counts.X.sum(axis=1)).ravel()
    library = torch.as_tensor(
        np.log(totals[np.random.default_rng(args.seed).integers(0, len(totals), n_cells)]),
        dtype=torch.float32,
    )[:, None]
    z = torch.randn(n_cells, model.module.n_latent, generator=rng)
    with torch.no_grad():
        px = model.module.generative(
            z=z, library=library, batch_index=torch.zeros(n_cells, 1, dtype=torch.long)
        )["px"]
        x = px.sample().numpy()
    gen = sc.AnnData(sparse.csr_matrix(x.astype(np.float32)), var=train.var[[]].copy())
    sc.pp.normalize_total(gen, target_sum=1e4)
    sc.pp.log1p(gen)
    return gen, train_s, time.perf_counter() - t0


def one_model_parser(description: str) -> argparse.ArgumentParser:
    """Arguments of the scripts that study one trained default model
    (``fidelity.py --model-dir`` saved it): the data set, its preprocessing and split, the
    model's training steps and seed, threads and the model folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="pbmc4k_top2000")
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--max-cells", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0, help="training seed and split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", required=True, help="fidelity.py --model-dir")
    parser.add_argument(
        "--recipe", default="default", help="the fidelity.py recipe the model was trained by"
    )
    parser.add_argument("--csv", type=Path)
    return parser


def default_model(args: argparse.Namespace):
    """The training and held-out halves and the saved model (``--recipe``, default: the
    package's defaults) trained on the first."""

    torch.set_num_threads(args.threads)
    train, held = split(load(args.dataset, args.genes, args.max_cells, args.seed), args.seed)
    path = Path(args.model_dir) / f"{args.dataset}-{args.recipe}-{args.steps}-seed{args.seed}"
    return train, held, sdd.SDD.load(path, train)
