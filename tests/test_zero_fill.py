"""zero_fill: how the value half encodes a zero entry, and the decoding floor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.data.scaling import Scaler, gene_stats


def test_gene_stats_on_sparse_and_dense_agree():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.4, size=(50, 7)).astype(np.float32)
    x[:, 3] = 0  # an all-zero gene
    dense, csr = gene_stats(x, chunk_rows=8), gene_stats(sp.csr_matrix(x), chunk_rows=16)
    for key in dense:
        assert np.allclose(dense[key], csr[key])
    nz = np.where(x > 0, x, np.nan)
    expressed = ~np.isnan(nz).all(axis=0)
    assert np.allclose(dense["nonzero_mean"][expressed], np.nanmean(nz[:, expressed], axis=0))
    assert np.allclose(dense["nonzero_min"][expressed], np.nanmin(nz[:, expressed], axis=0))
    assert dense["max"][3] == dense["nonzero_mean"][3] == dense["nonzero_min"][3] == 0


def test_nonzero_mean_fill_and_floor():
    x = np.array([[0.0, 2.0], [1.0, 4.0], [3.0, 0.0]], dtype=np.float32)
    s = Scaler.fit(x, zero_fill="nonzero_mean")
    z = s.transform(torch.as_tensor(x))
    filled = s.fill_zeros(z, torch.as_tensor(x != 0))
    # zeros take the scaled non-zero mean (2/3 and 3/4 of the way up), others unchanged
    assert torch.allclose(filled[0, 0], torch.tensor(2 * 2.0 / 3.0 - 1))
    assert torch.allclose(filled[2, 1], torch.tensor(2 * 3.0 / 4.0 - 1))
    assert torch.equal(filled[1], z[1])
    # a bit that is on never decodes to zero; a bit that is off always does
    bits = torch.tensor([[1.0, 0.0]])
    out = s.inverse(torch.tensor([[-1.0, 0.5]]), bits)
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0  # floored at the smallest non-zero, masked
    assert torch.equal(Scaler.fit(x).fill_zeros(z, torch.as_tensor(x != 0)), z)  # "min"


def test_bad_zero_fill_is_refused():
    with pytest.raises(ValueError, match="zero_fill"):
        Scaler.fit(np.ones((3, 2)), zero_fill="median")
    adata = make_counts_adata(40, 10)
    sdd.SDD.setup_anndata(adata)
    with pytest.raises(ValueError, match="sparsity_bits"):
        sdd.SDD(adata, sparsity_bits=False, zero_fill="nonzero_mean", **TINY)


def test_nonzero_mean_model_zeros_are_the_bits_and_survive_save_load(tmp_path):
    adata = make_counts_adata(80, 16)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, zero_fill="nonzero_mean", **TINY)
    model.train(20, batch_size=16, execution=QUIET)
    kw = {"sampler": "ddim", "n_steps": 5, "execution": QUIET, "store_dense": True}
    gen = model.generate(50, random_state=1, **kw)
    x = gen.X.toarray()
    assert np.array_equal(x != 0, gen.layers["sb_logits"] > 0)  # zeros exactly where bits off
    floor = model.scaler_.floor.ravel()
    rows, cols = np.nonzero(x)
    assert np.all(x[rows, cols] >= floor[cols] - 1e-6)
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m", adata)
    assert np.array_equal(loaded.scaler_.fill, model.scaler_.fill)
    again = loaded.generate(50, random_state=1, **kw)
    assert np.array_equal(again.X.toarray(), x)
