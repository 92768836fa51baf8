"""Training from anndata backed .h5ad files (out of core), sparse and dense."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.data.loader import MinibatchSampler
from sdd.data.scaling import Scaler, gene_max

pytestmark = pytest.mark.slow  # real data sets / embeddings; CI runs it

KANG = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scrna" / "kang_pbmc_ctrl.h5ad"
)


def _backed(adata: ad.AnnData, path: Path) -> ad.AnnData:
    if hasattr(ad.settings, "allow_write_nullable_strings"):  # pandas 3 string indexes
        ad.settings.allow_write_nullable_strings = True
    adata.write_h5ad(path)
    return ad.read_h5ad(path, backed="r")


@pytest.mark.parametrize("dense", [False, True])
def test_backed_training_matches_in_memory(tmp_path, dense):
    adata = make_counts_adata(n_cells=96, n_genes=16)
    if dense:
        adata.X = adata.X.toarray()
    backed = _backed(adata.copy(), tmp_path / "cells.h5ad")
    assert not isinstance(backed.X, np.ndarray | sp.spmatrix)  # really on disk
    histories, weights = [], []
    for data in (adata, backed):
        sdd.SDD.setup_anndata(data, labels_key="cell_type")
        torch.manual_seed(0)
        model = sdd.SDD(data, **TINY)
        model.train(max_steps=8, batch_size=16, execution=QUIET.replace(accelerator="cpu"))
        histories.append(model.history_["loss"].to_numpy())
        weights.append(next(model.ema_.model.parameters()).detach().clone())
    # same rows in the same batches, read from disk in chunks
    np.testing.assert_array_equal(histories[0], histories[1])
    assert torch.equal(weights[0], weights[1])
    gen = model.generate(
        5, sampler="ddim", n_steps=3, execution=QUIET.replace(accelerator="cpu"), store_dense=False
    )
    assert gen.shape == (5, 16)
    backed.file.close()


def test_backed_sampler_reads_several_batches_at_once(tmp_path):
    adata = make_counts_adata(n_cells=100, n_genes=10)
    backed = _backed(adata.copy(), tmp_path / "cells.h5ad")
    reads = []

    class Spy:
        shape = backed.X.shape

        def __getitem__(self, index):
            reads.append(np.asarray(index))
            return backed.X[index]

    scaler = Scaler.fit(backed.X)
    np.testing.assert_allclose(
        scaler.scale, np.maximum(gene_max(adata.X), 0) + (gene_max(adata.X) <= 0)
    )
    batches = MinibatchSampler(Spy(), scaler, batch_size=10, device=torch.device("cpu"))
    ref = MinibatchSampler(adata.X, scaler, batch_size=10, device=torch.device("cpu"))
    for _ in range(9):
        z, nonzero, _ = batches()
        z_ref, nonzero_ref, _ = ref()
        assert torch.equal(z, z_ref) and torch.equal(nonzero, nonzero_ref)
    assert len(reads) == 1 and np.all(np.diff(reads[0]) > 0)  # one sorted read of 90 rows
    backed.file.close()


@pytest.mark.skipif(not KANG.exists(), reason="shared data not available")
def test_kang_full_gene_space_backed_without_densifying():
    """14,053 genes, read backed: setup, scaling and training never densify the matrix."""
    backed = ad.read_h5ad(KANG, backed="r")
    n_cells, n_genes = backed.shape
    dense_bytes = n_cells * n_genes * 4
    tracemalloc.start()
    try:
        sdd.SDD.setup_anndata(backed)
        model = sdd.SDD(backed, hidden=(16, 8), emb_dim=8)
        model.train(max_steps=2, batch_size=32, execution=QUIET.replace(accelerator="cpu"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.n_genes == n_genes >= 14_000
    assert np.isfinite(model.history_["loss"]).all()
    assert peak < dense_bytes / 4, f"peak {peak / 2**20:.0f} MiB"
    backed.file.close()


def test_minibatches_carry_a_mask_only_when_scaling_moves_the_zeros():
    x = sp.random(30, 6, density=0.3, format="csr", dtype=np.float32, random_state=0)
    scaled = MinibatchSampler(x, Scaler.fit(x), batch_size=8, device=torch.device("cpu"))
    z, nonzero, _ = scaled([0, 1, 2])
    assert torch.equal(nonzero, torch.as_tensor(x[[0, 1, 2]].toarray() != 0))
    assert bool((z[~nonzero] == -1).all())  # zeros moved to -1: the mask keeps them

    class Identity:
        keeps_zeros = True

        @staticmethod
        def transform(x, *, out=None):
            return x

    counts = MinibatchSampler(x, Identity(), batch_size=8, device=torch.device("cpu"))
    values, mask, _ = counts([0, 1, 2])
    assert mask is None
    assert torch.equal(values != 0, torch.as_tensor(x[[0, 1, 2]].toarray() != 0))
