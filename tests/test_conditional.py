"""Conditional generation, classifier-free guidance, counts output and imputation (issue 5).

One small model is trained on synthetic cells of three clearly separated types; tests of
bookkeeping (compositions, counts, errors) use untrained models, whose random weights
generate cells just as well for that purpose.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch
from conftest import QUIET, make_counts_adata
from conftest import TINY as _TINY
from sklearn.neighbors import NearestCentroid

import sdd
from sdd.data.counts import invert_log1p
from sdd.diffusion import sample, sparsity

TINY = {**_TINY, "depth_bins": 0}  # the label mechanics, without the depth condition
TYPES = ["type_0", "type_1", "type_2"]
FAST = {"sampler": "ddim", "n_steps": 8, "execution": QUIET}


def make_labelled(n_cells: int = 240, genes_per_type: int = 10, seed: int = 0) -> ad.AnnData:
    """Counts of three cell types (50/30/20 %) that each express their own block of genes,
    normalised (``target_sum=1000``) and log1p-transformed, raw counts in ``layers``."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(TYPES, n_cells, p=[0.5, 0.3, 0.2])
    rate = np.full((n_cells, len(TYPES) * genes_per_type), 0.1)
    for k, label in enumerate(TYPES):
        rate[labels == label, k * genes_per_type : (k + 1) * genes_per_type] = 4.0
    depth = rng.uniform(0.5, 2.0, (n_cells, 1))
    counts = rng.poisson(rate * depth).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(counts))
    adata.var_names = [f"g{i}" for i in range(counts.shape[1])]
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.obs["cell_type"] = pd.Categorical(labels, categories=TYPES)
    adata.obs["batch"] = np.where(rng.random(n_cells) < 0.5, "b1", "b2")
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e3)
    sc.pp.log1p(adata)
    return adata


@pytest.fixture(scope="module")
def labelled() -> ad.AnnData:
    return make_labelled()


@pytest.fixture(scope="module")
def model(labelled) -> sdd.SDD:
    data = labelled.copy()
    sdd.SDD.setup_anndata(data, labels_key="cell_type", counts_layer="counts")
    return sdd.SDD(data, **TINY).train(max_steps=200, batch_size=64, lr=3e-3, execution=QUIET)


def untrained(adata: ad.AnnData, **setup) -> sdd.SDD:
    adata = adata.copy()
    sdd.SDD.setup_anndata(adata, **setup)
    m = sdd.SDD(adata, **TINY)
    m.is_trained_ = True  # random weights generate just as well for bookkeeping tests
    return m


def centroid_accuracy(real: ad.AnnData, generated: ad.AnnData, requested) -> float:
    classifier = NearestCentroid().fit(real.X.toarray(), real.obs["cell_type"].astype(str))
    return float(np.mean(classifier.predict(generated.X.toarray()) == np.asarray(requested)))


# ------------------------------------------------------------ conditioning
def test_generated_cells_look_like_their_label(model, labelled):
    requested = np.repeat(TYPES, 30)
    gen = model.generate(labels=requested, random_state=1, **FAST)
    assert gen.n_obs == requested.size  # n_cells from the per-cell labels
    assert list(gen.obs["cell_type"].cat.categories) == TYPES
    assert np.array_equal(gen.obs["cell_type"].astype(str).to_numpy(), requested)
    accuracy = centroid_accuracy(labelled, gen, requested)
    assert accuracy > 0.8, accuracy  # chance: 1/3
    guided = model.generate(labels=requested, guidance_scale=2.0, random_state=1, **FAST)
    assert centroid_accuracy(labelled, guided, requested) > 0.8


def _manual(m: sdd.SDD, n: int, cond: torch.Tensor | None, seed: int) -> np.ndarray:
    """The plain sampling path, written out: sample() with net(x, t, sc, cond)."""
    net = m.ema_.model.eval()
    z = sample(
        lambda x, t, s: net(x, t, s, cond),
        (n, m.data_dim),
        m.schedule,
        sampler=FAST["sampler"],
        n_steps=FAST["n_steps"],
        self_condition=m.init_args_["self_condition"],
        generator=torch.Generator().manual_seed(seed),
    )
    return z.numpy()


def test_default_labels_are_the_training_mix_as_on_the_command_line(model):
    """``generate()`` of a conditional model returns labelled cells in the training mix,
    as ``sdd generate`` does; ``labels=None`` is unconditional."""
    from sdd.cli import _labels

    assert _labels(None, model) == "training"
    gen = model.generate(40, random_state=1, **FAST)
    same = model.generate(40, labels="training", random_state=1, **FAST)
    assert "cell_type" in gen.obs and (gen.X != same.X).nnz == 0
    assert gen.obs["cell_type"].tolist() == same.obs["cell_type"].tolist()
    assert "cell_type" not in model.generate(5, labels=None, **FAST).obs


def test_guidance_zero_is_the_conditional_path_and_no_labels_is_unconditional(model):
    requested = ["type_1"] * 5 + ["type_2"] * 5
    dense = {"store_dense": True, **FAST}
    gen = model.generate(labels=requested, guidance_scale=0.0, random_state=3, **dense)
    z = _manual(model, 10, torch.tensor([[1]] * 5 + [[2]] * 5), seed=3)
    data, logits = sparsity.split(torch.as_tensor(z))
    assert np.array_equal(gen.layers["dense"], model.scaler_.inverse(data).numpy())
    assert np.array_equal(gen.layers["sb_logits"], logits.numpy())
    # labels=None: the unconditional path (null token), unchanged, guidance ignored
    free_logits = sparsity.split(torch.as_tensor(_manual(model, 10, None, seed=3)))[1]
    for w in (0.0, 2.0):
        free = model.generate(10, labels=None, guidance_scale=w, random_state=3, **dense)
        assert np.array_equal(free.layers["sb_logits"], free_logits.numpy())
        assert "cell_type" not in free.obs
    guided = model.generate(labels=requested, guidance_scale=2.0, random_state=3, **dense)
    assert not np.array_equal(guided.layers["dense"], gen.layers["dense"])


def test_guided_denoiser_mixes_conditional_and_unconditional(model):
    net = model.ema_.model
    x, t = torch.randn(4, model.data_dim), torch.full((4,), 0.5)
    s, cond = torch.zeros_like(x), torch.tensor([[0], [1], [2], [0]])
    with torch.no_grad():
        x_cond, x_free = net(x, t, s, cond), net(x, t, s, None)
        guided = model.process.denoiser(net, cond, 1.5)(x, t, s)
        plain = model.process.denoiser(net, cond, 0.0)(x, t, s)
    assert torch.allclose(guided, 2.5 * x_cond - 1.5 * x_free, atol=1e-5)
    assert torch.equal(plain, x_cond)


def test_labels_training_reproduces_the_composition(labelled):
    m = untrained(labelled, labels_key="cell_type", categorical_covariate_keys=["batch"])
    gen = m.generate(labels="training", **FAST)
    assert gen.n_obs == labelled.n_obs
    for key in ("cell_type", "batch"):
        assert gen.obs[key].value_counts().to_dict() == labelled.obs[key].value_counts().to_dict()
    joint = pd.crosstab(labelled.obs["cell_type"], labelled.obs["batch"])
    assert pd.crosstab(gen.obs["cell_type"], gen.obs["batch"]).equals(joint)
    small = m.generate(30, labels="training", **FAST)
    assert small.n_obs == 30
    expected = labelled.obs["cell_type"].value_counts(normalize=True) * 30
    got = small.obs["cell_type"].value_counts()
    assert (abs(got - expected[got.index]) < 1).all()


def test_label_errors_are_clear(labelled):
    m = untrained(labelled, labels_key="cell_type")
    with pytest.raises(ValueError, match=r"known labels: \['type_0', 'type_1', 'type_2'\]"):
        m.generate(5, labels="T cell", **FAST)
    with pytest.raises(ValueError, match=r"Unknown condition key\(s\) \['tissue'\]"):
        m.generate(5, labels={"tissue": "x"}, **FAST)
    with pytest.raises(ValueError, match="entries for 5 cells"):
        m.generate(5, labels=["type_0"] * 4, **FAST)
    with pytest.raises(ValueError, match="differ in length"):
        m2 = untrained(labelled, labels_key="cell_type", categorical_covariate_keys=["batch"])
        m2.generate(labels={"cell_type": ["type_0"] * 3, "batch": ["b1"] * 4}, **FAST)
    with pytest.raises(ValueError, match="guidance_scale"):
        m.generate(5, labels="type_0", guidance_scale=float("nan"), **FAST)
    with pytest.raises(TypeError, match="guidance_scale"):
        m.generate(5, labels="type_0", guidance_scale="2", **FAST)
    free = untrained(labelled)
    for labels in ("type_0", "training"):
        with pytest.raises(ValueError, match="labels_key"):
            free.generate(5, labels=labels, **FAST)
    odd = labelled.copy()
    odd.obs["cell_type"] = np.where(odd.obs["cell_type"] == "type_0", "training", "other")
    m3 = untrained(odd, labels_key="cell_type")
    with pytest.raises(ValueError, match="ambiguous"):
        m3.generate(labels="training", **FAST)
    assert set(m3.generate(3, labels={"cell_type": "training"}, **FAST).obs["cell_type"]) == {
        "training"
    }


# ------------------------------------------------------------------ counts
def test_counts_are_integers_with_zeros_exactly_where_sbs_are_off(model, labelled):
    gen = model.generate(labels="training", counts=True, random_state=2, **FAST)
    counts = gen.layers["counts"]
    assert sp.isspmatrix_csr(counts) or isinstance(counts, sp.csr_array)
    assert counts.dtype == np.float32
    dense = counts.toarray()
    assert (dense >= 0).all() and np.array_equal(dense, np.round(dense))
    bits = gen.layers["sparsity_bits"].toarray()
    assert np.array_equal(dense != 0, bits != 0)
    assert np.array_equal(bits != 0, gen.X.toarray() != 0)
    assert np.allclose(gen.obs["total_counts"], dense.sum(1))
    # size factors are drawn from training cells of the same label
    factors = model.library_["size_factors"]
    codes = model.library_["codes"][:, 0]
    for k, label in enumerate(TYPES):
        drawn = gen.obs.loc[gen.obs["cell_type"] == label, "size_factor"].to_numpy()
        assert np.isin(drawn, factors[codes == k]).all()


def test_size_factors_invert_the_training_normalisation(model, labelled):
    counts = labelled.layers["counts"].toarray()
    factors = np.asarray(labelled.layers["counts"].sum(1)).ravel() / 1e3  # L / target_sum
    assert np.allclose(model.library_["size_factors"], factors, rtol=1e-5)
    recovered = invert_log1p(labelled.X, model.library_["size_factors"])
    assert np.array_equal(recovered.toarray(), counts)


def test_library_size_key_route(labelled):
    data = labelled.copy()
    data.obs["total_counts"] = np.asarray(data.layers["counts"].sum(1)).ravel()
    m = untrained(data, library_size_key="total_counts")
    assert m.setup_args_["target_sum"] == pytest.approx(1e3, rel=1e-5)
    assert np.allclose(m.library_["size_factors"], data.obs["total_counts"] / 1e3, rtol=1e-5)
    gen = m.generate(20, labels=None, counts=True, **FAST)  # unconditional: all cells
    assert np.isin(gen.obs["size_factor"], m.library_["size_factors"]).all()
    subset = data[:, :20].copy()  # genes subset after normalising: sums of expm1(x) differ
    with pytest.raises(ValueError, match="target_sum"):
        sdd.SDD.setup_anndata(subset, library_size_key="total_counts")
    sdd.SDD.setup_anndata(subset, library_size_key="total_counts", target_sum=1e3)
    sdd.SDD.setup_anndata(subset, counts_layer="counts")  # ratios work on any gene subset


def test_counts_setup_errors(labelled):
    data = labelled.copy()
    with pytest.raises(ValueError, match="counts_layer=|library_size_key="):
        untrained(data).generate(5, counts=True, **FAST)
    raw = data.copy()
    raw.X = raw.layers["counts"].copy()  # raw counts, not log1p-normalised
    with pytest.raises(ValueError, match="log1p"):
        sdd.SDD.setup_anndata(raw, counts_layer="counts")
    with pytest.raises(ValueError, match="is the layer the model learns"):
        sdd.SDD.setup_anndata(data, layer="counts", counts_layer="counts")
    data.obs["total_counts"] = 1.0
    with pytest.raises(ValueError, match="not both"):
        sdd.SDD.setup_anndata(data, counts_layer="counts", library_size_key="total_counts")
    with pytest.raises(ValueError, match="only used together with library_size_key"):
        sdd.SDD.setup_anndata(data, target_sum=1e4)
    with pytest.raises(ValueError, match="not found in adata.obs"):
        sdd.SDD.setup_anndata(data, library_size_key="n_counts")
    fractional = data.copy()
    fractional.layers["counts"] = fractional.layers["counts"] * 0.5
    with pytest.raises(ValueError, match="integer"):
        sdd.SDD.setup_anndata(fractional, counts_layer="counts")


# ------------------------------------------------------------------ impute
def test_impute_keeps_observed_entries_and_fills_the_masked_ones(model, labelled):
    rng = np.random.default_rng(0)
    mask = rng.random(labelled.shape) < 0.3
    out = model.impute(labelled, mask, random_state=0, **FAST)
    truth, filled = labelled.X.toarray(), out.X.toarray()
    assert np.array_equal(filled[~mask], truth[~mask])  # bit-identical
    assert np.array_equal(out.layers["imputed"].toarray(), mask)
    assert np.array_equal(out.layers["sparsity_bits"].toarray() != 0, filled != 0)
    assert out.obs.equals(labelled.obs) and list(out.var_names) == list(labelled.var_names)
    assert (filled[mask] == 0).any() and (filled[mask] > 0).any()  # exact zeros and values
    # the observed genes tell the type: imputed values correlate with the truth per cell
    with np.errstate(invalid="ignore", divide="ignore"):  # constant rows give NaN
        rows = range(len(mask))
        corr = [np.corrcoef(filled[i, mask[i]], truth[i, mask[i]])[0, 1] for i in rows]
        mean = truth.mean(0)
        base = [np.corrcoef(mean[mask[i]], truth[i, mask[i]])[0, 1] for i in rows]
    assert np.nanmean(corr) > np.nanmean(base) + 0.3, (np.nanmean(corr), np.nanmean(base))
    again = model.impute(labelled, mask, random_state=0, **FAST)
    assert np.array_equal(again.X.toarray(), filled)
    guided = model.impute(
        labelled, mask, labels=labelled.obs["cell_type"], guidance_scale=1.0, **FAST
    )
    assert np.array_equal(guided.X.toarray()[~mask], truth[~mask])


def test_impute_genes_missing_from_adata_or_named(model, labelled):
    genes = list(labelled.var_names)
    panel = labelled[:, genes[25:5:-1]].copy()  # a panel, in another order
    out = model.impute(panel, ["g24"], **FAST)
    assert list(out.var_names) == genes
    imputed = out.layers["imputed"].toarray()
    assert imputed[:, :6].all() and imputed[:, 26:].all() and imputed[:, 24].all()
    assert not imputed[:, [6, 23, 25]].any()
    assert np.array_equal(out.X.toarray()[:, 6:24], labelled.X.toarray()[:, 6:24])


def test_impute_errors(model, labelled):
    with pytest.raises(ValueError, match="nothing to impute"):
        model.impute(labelled, **FAST)
    with pytest.raises(ValueError, match="shape"):
        model.impute(labelled, np.zeros((3, 3), dtype=bool), **FAST)
    with pytest.raises(TypeError, match="boolean"):
        model.impute(labelled, np.zeros(labelled.shape, dtype=int), **FAST)
    with pytest.raises(ValueError, match="does not know"):
        model.impute(labelled, ["CD3E"], **FAST)
    other = labelled.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="not trained on"):
        model.impute(other, ["g0"], **FAST)
    with pytest.raises(ValueError, match="only available in generate"):
        model.impute(labelled, ["g0"], labels="training", **FAST)
    with pytest.raises(ValueError, match="entries for 240 cells"):
        model.impute(labelled, ["g0"], labels=["type_0"] * 3, **FAST)
    with pytest.raises(TypeError, match="AnnData"):
        model.impute(labelled.X, ["g0"], **FAST)
    fresh = sdd.SDD(make_counts_adata(), **TINY)
    with pytest.raises(ValueError, match="not trained"):
        fresh.impute(make_counts_adata(), ["g0"])


# ------------------------------------------------------------- save / load
def test_labels_and_library_sizes_survive_save_and_load(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m")
    assert loaded.categories_ == model.categories_ == {"cell_type": TYPES}
    assert np.array_equal(loaded.composition_["counts"], model.composition_["counts"])
    assert np.array_equal(loaded.library_["size_factors"], model.library_["size_factors"])
    kwargs = {"labels": "training", "counts": True, "random_state": 5, **FAST}
    a, b = model.generate(**kwargs), loaded.generate(**kwargs)
    assert np.array_equal(a.layers["counts"].toarray(), b.layers["counts"].toarray())
    assert a.obs.reset_index(drop=True).equals(b.obs.reset_index(drop=True))


def test_load_with_adata_checks_its_labels(model, labelled, tmp_path):
    model.save(tmp_path / "m")
    other = labelled.copy()
    other.obs["cell_type"] = other.obs["cell_type"].astype(str)
    other.obs.loc[other.obs_names[0], "cell_type"] = "platypus"
    with pytest.raises(ValueError, match="unknown to the model: \\['platypus'\\]"):
        sdd.SDD.load(tmp_path / "m", adata=other)
    del other.obs["cell_type"]
    with pytest.raises(ValueError, match="lacks the condition column 'cell_type'"):
        sdd.SDD.load(tmp_path / "m", adata=other)


def test_setup_read_back_from_h5ad_can_be_saved(labelled, tmp_path):
    data = labelled.copy()
    sdd.SDD.setup_anndata(data, labels_key="cell_type", counts_layer="counts")
    data.write_h5ad(tmp_path / "d.h5ad")
    back = ad.read_h5ad(tmp_path / "d.h5ad")  # uns lists come back as arrays
    m = sdd.SDD(back, **TINY)
    assert m.categories_ == {"cell_type": TYPES}
    m.save(tmp_path / "m")  # JSON config: plain lists and strings
    assert sdd.SDD.load(tmp_path / "m").categories_ == {"cell_type": TYPES}


def test_tl_generate_forwards_the_new_arguments(model):
    gen = sdd.tl.generate(model=model, labels="training", counts=True, **FAST)
    assert gen.n_obs == int(model.composition_["counts"].sum()) and "counts" in gen.layers
