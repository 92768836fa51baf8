"""``sdd.tl`` functions change no argument beyond what they document as their output."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from conftest import QUIET, make_counts_adata

import sdd

pytestmark = pytest.mark.slow  # real data sets / embeddings; CI runs it


def snapshot(adata: ad.AnnData) -> dict:
    return {
        "X": adata.X.copy(),
        "obs": adata.obs.copy(),
        "var": adata.var.copy(),
        "layers": {k: v.copy() for k, v in adata.layers.items()},
        "uns": set(adata.uns),
        "obsm": set(adata.obsm),
    }


def assert_unchanged(adata: ad.AnnData, before: dict, *, new_uns: frozenset = frozenset()):
    assert (adata.X != before["X"]).nnz == 0
    assert adata.obs.equals(before["obs"]) and adata.var.equals(before["var"])
    assert set(adata.layers) == set(before["layers"])
    assert set(adata.uns) == before["uns"] | new_uns
    assert set(adata.obsm) == before["obsm"]


@pytest.fixture(scope="module")
def fitted():
    adata = make_counts_adata(n_cells=60, n_genes=12)
    before = snapshot(adata)
    model = sdd.tl.fit(adata, max_steps=2, hidden=(16,), emb_dim=8, calibrate=False,
                       execution=QUIET)  # fmt: skip
    return adata, before, model


def test_fit_only_registers_the_setup(fitted):
    adata, before, model = fitted
    assert_unchanged(adata, before, new_uns=frozenset({"sdd_setup"}))
    assert model.train_args_["max_steps"] == 2


def test_generate_evaluate_and_embedding_leave_their_arguments(fitted):
    adata, _, model = fitted
    gen = sdd.tl.generate(20, model=model, sampler="ddim", n_steps=2, execution=QUIET)
    real_before, gen_before = snapshot(adata), snapshot(gen)
    sdd.tl.evaluate(adata, gen, metric_kwargs={"n_comps": 5}, random_state=0)
    sdd.tl.evaluate(adata, gen, metric_kwargs={"n_comps": 5}, floor=True, random_state=0)
    real, generated, genes = sdd.tl.paired_matrices(adata, gen)
    assert real.shape[1] == generated.shape[1] == len(genes) == adata.n_vars
    joint = sdd.tl.joint_embedding(adata, gen, n_comps=5)
    assert joint.n_obs == adata.n_obs + gen.n_obs
    assert_unchanged(adata, real_before)
    assert_unchanged(gen, gen_before)
    assert np.isfinite(joint.obsm["X_umap"]).all()
