"""The SDD AnnData model: generated output, save/load, bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd


def _gen(model, n=40, **kw):
    kw = {"sampler": "ddim", "n_steps": 5, "execution": QUIET, "store_dense": True, **kw}
    return model.generate(n, **kw)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_generate_output_schema(trained_model, sampler):
    gen = _gen(trained_model, 37, sampler=sampler)
    assert gen.shape == (37, trained_model.n_genes)
    assert sp.isspmatrix_csr(gen.X) and gen.X.dtype == np.float32
    assert list(gen.var_names) == trained_model.var_names_
    assert (gen.obs["source"] == "generated").all()
    assert gen.uns["sdd"]["sampler"] == sampler and gen.uns["sdd"]["n_steps"] == 5
    for layer in ("sparsity_bits", "dense", "sb_logits"):
        assert gen.layers[layer].shape == gen.shape


def test_exact_zeros_match_sparsity_bits(trained_model):
    gen = _gen(trained_model, 60)
    x = gen.X.toarray()
    bits = gen.layers["sparsity_bits"].toarray()
    assert np.array_equal(bits, (x != 0).astype(np.float32))
    assert (x == 0).mean() > 0.2  # the data is sparse; zeros are exact, not tiny
    assert x.min() >= 0
    # every non-zero comes from a positive SB logit, every negative logit gives a zero
    logits = gen.layers["sb_logits"]
    assert np.all(x[logits <= 0] == 0)
    assert np.all(logits[x != 0] > 0)
    # expressed values are the dense pre-mask values, raised to at least the gene's
    # smallest non-zero training value (zero_fill="nonzero_mean", the default)
    dense, floor = gen.layers["dense"], trained_model.scaler_.floor[None, :]
    expected = np.maximum(dense, np.broadcast_to(floor, dense.shape))
    assert np.allclose(x[x != 0], expected[x != 0])
    assert (x[x != 0] > dense[x != 0] + 1e-6).any()  # the floor did act


def test_bf16_sampling_on_cpu_keeps_the_output_contract(trained_model):
    plain, fast = (
        _gen(trained_model, 30, execution=QUIET.replace(fast=False)),
        _gen(trained_model, 30, execution=QUIET.replace(fast=True)),
    )
    x = fast.X.toarray()
    assert np.array_equal(fast.layers["sparsity_bits"].toarray(), (x != 0).astype(np.float32))
    assert not np.array_equal(plain.layers["dense"], fast.layers["dense"])  # bf16 did run
    # the same noise through a bf16 network: the same cells, up to bf16 rounding
    assert np.corrcoef(plain.layers["dense"].ravel(), fast.layers["dense"].ravel())[0, 1] > 0.99
    with pytest.raises(TypeError, match="fast"):
        sdd.Execution(fast="yes")


def test_default_sampler_is_ddpm_250_without_calibration(trained_model):
    assert trained_model.calibration_ is None
    gen = trained_model.generate(3, execution=QUIET)
    assert gen.uns["sdd"]["sampler"] == "ddpm" and gen.uns["sdd"]["n_steps"] == 250


def test_generated_values_in_training_range(trained_model, adata):
    gen = _gen(trained_model, 50)
    gene_max = np.asarray(adata.X.max(axis=0).todense()).ravel()
    assert np.all(gen.X.toarray() <= gene_max[None, :] + 1e-5)


def test_same_seed_same_cells_different_seed_differs(trained_model):
    a, b = _gen(trained_model, random_state=3), _gen(trained_model, random_state=3)
    c = _gen(trained_model, random_state=4)
    assert np.array_equal(a.X.toarray(), b.X.toarray())
    assert not np.array_equal(a.layers["dense"], c.layers["dense"])


def test_save_load_round_trip_identical_samples(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m")
    for kw in ({"sampler": "ddpm"}, {"sampler": "ddim"}):
        a, b = _gen(trained_model, **kw), _gen(loaded, **kw)
        assert np.array_equal(a.X.toarray(), b.X.toarray())
        assert np.array_equal(a.layers["dense"], b.layers["dense"])
    assert loaded.history_["loss"].tolist() == trained_model.history_["loss"].tolist()
    assert repr(loaded) == repr(trained_model)
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert "ema" in state
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (
        config["var_names"] == trained_model.var_names_ and config["sdd_version"] == sdd.__version__
    )


def test_save_refuses_overwrite_and_leaves_no_temp(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    with pytest.raises(FileExistsError):
        trained_model.save(tmp_path / "m")
    trained_model.save(tmp_path / "m", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_never_replaces_a_foreign_directory(trained_model, tmp_path):
    user_dir = tmp_path / "results"
    user_dir.mkdir()
    (user_dir / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="does not hold an sdd model"):
        trained_model.save(user_dir, overwrite=True)
    assert (user_dir / "precious.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    trained_model.save(empty, overwrite=True)  # an empty directory may be filled
    assert sdd.SDD.load(empty).n_genes == trained_model.n_genes


def test_save_is_atomic_when_writing_fails(trained_model, tmp_path, monkeypatch):
    trained_model.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.pt").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        trained_model.save(tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_load_with_adata_continues_training(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    data = make_counts_adata()
    loaded = sdd.SDD.load(tmp_path / "m", adata=data)
    steps = len(loaded.history_)
    loaded.train(max_steps=3, batch_size=16, execution=QUIET)
    assert len(loaded.history_) == steps + 3
    assert loaded.history_["step"].is_monotonic_increasing


def test_load_gene_mismatch(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    other = make_counts_adata()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="Gene mismatch"):
        sdd.SDD.load(tmp_path / "m", adata=other)
    reordered = make_counts_adata()[:, ::-1].copy()
    with pytest.raises(ValueError, match="different order"):
        sdd.SDD.load(tmp_path / "m", adata=reordered)


def test_load_corrupt_or_foreign(trained_model, tmp_path):
    with pytest.raises(ValueError, match="No saved model"):
        sdd.SDD.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an sdd model"):
        sdd.SDD.load(tmp_path / "empty")
    trained_model.save(tmp_path / "m")
    (tmp_path / "m" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Corrupt"):
        sdd.SDD.load(tmp_path / "m")
    trained_model.save(tmp_path / "j")
    (tmp_path / "j" / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="Corrupt"):
        sdd.SDD.load(tmp_path / "j")
    (tmp_path / "j" / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not written by sdd"):
        sdd.SDD.load(tmp_path / "j")


def _resave(state, weights):
    """Write edited weights and their checksum: a consistent file with wrong content."""
    import hashlib
    import json

    torch.save(state, weights)
    config_file = weights.parent / "config.json"
    config = json.loads(config_file.read_text())
    config["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    config_file.write_text(json.dumps(config))


def test_flipped_bits_in_weights_are_refused(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        sdd.SDD.load(tmp_path / "m")


def test_truncated_weights(trained_model, tmp_path):
    trained_model.save(tmp_path / "m")
    data = (tmp_path / "m" / "model.pt").read_bytes()
    (tmp_path / "m" / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Corrupt"):
        sdd.SDD.load(tmp_path / "m")


@pytest.mark.parametrize("missing", ["history", "scale", "ema_updates"])
def test_load_state_missing_entries(trained_model, tmp_path, missing):
    trained_model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.pt"
    state = torch.load(weights, weights_only=True)
    if missing == "ema_updates":
        state[missing] = "not a number"
    else:
        del state[missing]
    _resave(state, weights)
    with pytest.raises(ValueError, match="Corrupt model directory"):
        sdd.SDD.load(tmp_path / "m")


@pytest.mark.parametrize(
    "corruption",
    ["scale_length", "setup_args", "duplicate_genes", "format_version"],
)
def test_load_inconsistent_config(trained_model, tmp_path, corruption):
    trained_model.save(tmp_path / "m")
    weights, config_file = tmp_path / "m" / "model.pt", tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    if corruption == "scale_length":
        state = torch.load(weights, weights_only=True)
        state["scale"] = torch.ones(3)
        _resave(state, weights)
    elif corruption == "setup_args":
        config["setup_args"] = {}
    elif corruption == "duplicate_genes":
        config["var_names"][1] = config["var_names"][0]
    else:
        config["format_version"] = "x"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Corrupt"):
        sdd.SDD.load(tmp_path / "m")


def test_generated_anndata_writes_h5ad(trained_model, tmp_path):
    gen = _gen(trained_model, 20)
    gen.write_h5ad(tmp_path / "g.h5ad")
    back = ad.read_h5ad(tmp_path / "g.h5ad")
    assert np.array_equal(back.X.toarray(), gen.X.toarray())
    assert back.uns["sdd"]["sampler"] == "ddim"


def test_baseline_mode_runs_without_sb_half():
    data = make_counts_adata(n_cells=60)
    model = sdd.SDD(data, sparsity_bits=False, **TINY)
    assert model.data_dim == data.n_vars
    model.train(max_steps=5, batch_size=16, execution=QUIET)
    gen = _gen(model, 10)
    assert "sb_logits" not in gen.layers and gen.shape == (10, data.n_vars)
    assert np.array_equal(gen.layers["sparsity_bits"].toarray(), (gen.X.toarray() != 0) * 1.0)
    assert "baseline" in repr(model)


def test_tl_fit_is_reproducible(adata):
    def fit(seed: int) -> sdd.SDD:
        return sdd.tl.fit(
            adata.copy(), max_steps=3, train_kwargs={"batch_size": 16}, random_state=seed,
            execution=QUIET, **TINY,
        )  # fmt: skip

    a = fit(5)
    torch.rand(10)  # move the global RNG: the seed alone decides the model
    b, c = fit(5), fit(6)
    for key, value in a.module.state_dict().items():
        assert torch.equal(value, b.module.state_dict()[key]), key
    assert any(
        not torch.equal(v, c.module.state_dict()[k]) for k, v in a.module.state_dict().items()
    )


def test_dense_input_and_layer(adata):
    adata.X = adata.X.toarray()
    sdd.SDD.setup_anndata(adata, layer="counts")
    model = sdd.SDD(adata, **TINY)
    assert model.setup_args_["layer"] == "counts"
    model.train(max_steps=2, batch_size=16, execution=QUIET)
    assert model.history_.shape[0] == 2 and set(model.history_.columns) == {"step", "epoch", "loss"}
    assert _gen(model, 5).uns["sdd"]["layer"] == "counts"


def test_tl_fit_and_generate(adata):
    model = sdd.tl.fit(adata, max_steps=3, train_kwargs={"batch_size": 16}, execution=QUIET, **TINY)
    assert isinstance(model, sdd.SDD) and model.is_trained_
    assert model.train_args_["max_steps"] == 3 and list(model.init_args_["hidden"]) == [64, 32]
    gen = sdd.tl.generate(n_cells=7, sampler="ddim", n_steps=3, execution=QUIET)
    assert gen.n_obs == 7
    other = sdd.tl.generate(n_cells=3, model=model, sampler="ddim", n_steps=3, execution=QUIET)
    assert other.n_obs == 3


def test_conditional_labels_in_obs(adata):
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = sdd.SDD(adata, **TINY).train(max_steps=3, batch_size=16, execution=QUIET)
    gen = _gen(model, 6, labels="B")
    assert list(gen.obs["cell_type"]) == ["B"] * 6
    with pytest.raises(ValueError, match="known labels"):
        _gen(model, 6, labels="T cell")


# ---------------------------------------------------------------- bad input
def _with_value(adata, value):
    x = adata.X.toarray()
    x[0, 0] = value
    adata.X = sp.csr_matrix(x)
    return adata


@pytest.mark.parametrize("value,match", [(np.nan, "NaN"), (np.inf, "infinite"), (-1.0, "negative")])
@pytest.mark.parametrize("dense", [False, True])
def test_bad_values(adata, value, match, dense):
    adata = _with_value(adata, value)
    if dense:
        adata.X = adata.X.toarray()
    with pytest.raises(ValueError, match=match):
        sdd.SDD.setup_anndata(adata)


def test_empty_anndata():
    with pytest.raises(ValueError, match="empty"):
        sdd.SDD.setup_anndata(ad.AnnData(np.zeros((0, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="empty"):
        sdd.SDD.setup_anndata(ad.AnnData(np.zeros((5, 0), dtype=np.float32)))


def test_unknown_layer_and_labels(adata):
    with pytest.raises(ValueError, match="Layer 'spliced' not found"):
        sdd.SDD.setup_anndata(adata, layer="spliced")
    with pytest.raises(ValueError, match="'tissue' not found"):
        sdd.SDD.setup_anndata(adata, labels_key="tissue")


def test_non_numeric_and_non_anndata(adata):
    with pytest.raises(TypeError, match="numeric"):
        sdd.SDD.setup_anndata(ad.AnnData(np.array([["a", "b"]], dtype=object)))
    with pytest.raises(TypeError, match="AnnData"):
        sdd.SDD.setup_anndata(np.zeros((3, 3)))


def test_data_changed_after_setup_is_checked(adata):
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    bad = adata.copy()
    bad.X = -bad.X
    with pytest.raises(ValueError, match="negative"):
        sdd.SDD(bad, **TINY)
    no_labels = adata.copy()
    del no_labels.obs["cell_type"]
    with pytest.raises(ValueError, match="condition column 'cell_type'"):
        sdd.SDD(no_labels, **TINY)
    new_label = adata.copy()
    new_label.obs["cell_type"] = new_label.obs["cell_type"].astype(str)
    new_label.obs.iloc[0, new_label.obs.columns.get_loc("cell_type")] = "platypus"
    with pytest.raises(ValueError, match="platypus"):
        sdd.SDD(new_label, **TINY)
    with pytest.raises(ValueError, match="empty"):
        sdd.SDD(adata[:0].copy(), **TINY)


def test_duplicate_genes_and_array_input(adata):
    dup = adata.copy()
    dup.var_names = ["g"] * dup.n_vars
    with pytest.raises(ValueError, match="var_names_make_unique"):
        sdd.SDD(dup, **TINY)
    with pytest.raises(TypeError, match="AnnData"):
        sdd.SDD(np.zeros((3, 3)))


def test_generate_before_training_and_bad_n_cells(adata):
    model = sdd.SDD(adata, **TINY)
    with pytest.raises(ValueError, match="not trained"):
        model.generate(5)
    model.is_trained_ = True
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_cells"):
            model.generate(n)
    for n in (0, 2.7, True):
        with pytest.raises(ValueError, match="n_steps"):
            model.generate(4, n_steps=n)


def test_bad_training_arguments(adata):
    model = sdd.SDD(adata, **TINY)
    with pytest.raises(ValueError, match="max_steps"):
        model.train(max_steps=0)
    with pytest.raises(ValueError, match="accelerator"):
        model.train(max_steps=1, execution=QUIET.replace(accelerator="tpu"))
