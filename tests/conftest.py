"""Shared fixtures: small synthetic sparse data and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sdd

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY = {"hidden": (64, 32), "emb_dim": 32}
#: No progress bars: the execution options of the suite's training and generation calls.
QUIET = sdd.Execution(progress=False)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The one thread limit of the suite: tiny models run many times faster on one thread
    than on two when the two cores are shared (e.g. by pytest-xdist workers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_counts_adata(n_cells: int = 120, n_genes: int = 40, seed: int = 0) -> ad.AnnData:
    """Sparse log1p data with two cell types that express different genes."""
    rng = np.random.default_rng(seed)
    labels = np.array(["A", "B"])[rng.integers(0, 2, n_cells)]
    rate = np.where(labels[:, None] == "A", 0.3, 0.05) * np.ones((1, n_genes))
    rate[:, : n_genes // 2] = np.where(labels[:, None] == "A", 0.05, 1.5)
    counts = rng.poisson(rate).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(np.log1p(counts)))
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.obs["cell_type"] = labels
    adata.layers["counts"] = sp.csr_matrix(counts)
    return adata


@pytest.fixture
def adata() -> ad.AnnData:
    return make_counts_adata()


@pytest.fixture(scope="session")
def trained_model() -> sdd.SDD:
    data = make_counts_adata()
    sdd.SDD.setup_anndata(data)
    model = sdd.SDD(data, **TINY)
    model.train(max_steps=30, batch_size=32, execution=QUIET)
    return model


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory):
    """The tutorial notebooks, each executed at most once per session on first request
    (:class:`_notebooks.ExecutedNotebooks`); the notebook and docs tests share them."""
    from _notebooks import ExecutedNotebooks

    return ExecutedNotebooks(tmp_path_factory.mktemp("executed_notebooks"))
