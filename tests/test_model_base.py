"""The one engine under the three models: shared loop, rollback, resume, checks, config."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
import sdd.model._base as base

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

IMAGE = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}


def _images(n: int = 32) -> np.ndarray:
    return np.random.default_rng(0).poisson(0.3, size=(n, 8, 8)).astype(np.float32)


def _models(**kwargs):
    """A fresh SDD, SDDImage and SDDBlackout, each with its own data."""
    torch.manual_seed(0)
    cells = make_counts_adata(n_cells=64, n_genes=12)
    sdd.SDD.setup_anndata(cells)
    counts = make_counts_adata(n_cells=64, n_genes=12)
    sdd.SDDBlackout.setup_anndata(counts, layer="counts")
    return [
        sdd.SDD(cells, **TINY, **kwargs),
        sdd.SDDImage(_images(), unet_kwargs=IMAGE, **kwargs),
        sdd.SDDBlackout(counts, **TINY, n_times=20, **kwargs),
    ]


def _weights(model) -> list[torch.Tensor]:
    """The network's weights and the averaged (EMA) ones."""
    states = (model.module.state_dict(), model.ema_.model.state_dict())
    return [v.clone() for state in states for v in state.values()]


def test_every_model_trains_and_samples_through_the_one_engine(monkeypatch):
    calls = {"train": 0, "sample": 0}
    real_train, real_sample = base.train_denoiser, base.sample_split

    def train(*args, **kwargs):
        calls["train"] += 1
        assert kwargs["execution"].fast is False
        return real_train(*args, **kwargs)

    def sample(*args, **kwargs):
        calls["sample"] += 1
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(base, "train_denoiser", train)
    monkeypatch.setattr(base, "sample_split", sample)
    for model in _models(weight_sparsity=0.5):
        model.train(3, batch_size=16, execution=QUIET.replace(fast=False, distributed=False))
        assert model.weight_masks_.is_applied(model.module)
        kwargs = {"n_steps": 2, "execution": QUIET.replace(fast=False)}
        out = model.generate(4, **kwargs)
        assert len(out) == 4 if isinstance(out, sdd.model.GeneratedImages) else out.n_obs == 4
    assert calls == {"train": 3, "sample": 3}


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"ema_decay": 2.0}, ValueError, "ema_decay"),
        ({"ema_decay": -0.1}, ValueError, "ema_decay"),
        ({"max_steps": True}, ValueError, "max_steps"),
        ({"max_steps": 2.5}, ValueError, "max_steps"),
        ({"max_steps": "3"}, ValueError, "max_steps"),
        ({"batch_size": 8.5}, ValueError, "batch_size"),
        ({"lr": float("inf")}, ValueError, "lr"),
        ({"lr": 0}, ValueError, "lr"),
        ({"random_state": 2**70}, ValueError, "random_state"),
        ({"random_state": "0"}, TypeError, "random_state"),
    ],
)
def test_train_rejects_bad_arguments_in_every_model(kwargs, error, match):
    for model in _models():
        before = _weights(model)
        with pytest.raises(error, match=match):
            model.train(**{"max_steps": 1, "execution": QUIET, **kwargs})
        assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))


def test_divergence_restores_the_model_and_it_generates_the_same_cells():
    for model in _models():
        model.train(5, batch_size=16, execution=QUIET)
        kwargs = {"n_steps": 3, "execution": QUIET}
        first = model.generate(6, **kwargs)
        weights, updates = _weights(model), model.ema_.n_updates
        with pytest.raises(FloatingPointError, match="restored"):
            model.train(20, batch_size=16, lr=1e30, execution=QUIET)
        assert all(torch.equal(a, b) for a, b in zip(weights, _weights(model), strict=True))
        assert model.ema_.n_updates == updates and len(model.history_) == 5
        again = model.generate(6, **kwargs)
        a = first.images if hasattr(first, "images") else first.X.toarray()
        b = again.images if hasattr(again, "images") else again.X.toarray()
        np.testing.assert_array_equal(a, b)


def test_interrupted_training_leaves_the_model_as_it_was(monkeypatch):
    model = _models()[0].train(4, batch_size=16, execution=QUIET)
    weights = _weights(model)

    def interrupt(*args, **kwargs):
        with torch.no_grad():
            for p in model.module.parameters():
                p.add_(1.0)  # the interrupted steps changed the weights
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "train_denoiser", interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.train(10, execution=QUIET)
    assert all(torch.equal(a, b) for a, b in zip(weights, _weights(model), strict=True))
    assert len(model.history_) == 4 and model.is_trained_


@pytest.mark.parametrize("dense", [False, True])
def test_training_leaves_the_users_data_untouched(dense):
    """Minibatches are scaled in place: only ever in the loader's own copy of the rows."""
    models = _models()
    sdd_model, image_model = models[0], models[1]
    if dense:
        sdd_model.adata.X = np.asarray(sdd_model.adata.X.todense())
    before = [sdd_model.adata.X.copy(), image_model._images.copy()]
    for model in (sdd_model, image_model):
        model.train(5, batch_size=16, execution=QUIET)
    after = [sdd_model.adata.X, image_model._images]
    for a, b in zip(before, after, strict=True):
        a = a.toarray() if sp.issparse(a) else a
        b = b.toarray() if sp.issparse(b) else b
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_two_calls_equal_one_long_run_and_resume_from_disk(which, tmp_path):
    def fresh():
        return _models()[which]

    split, long = fresh(), fresh()
    split.train(6, batch_size=16, execution=QUIET).train(5, batch_size=16, execution=QUIET)
    long.train(11, batch_size=16, execution=QUIET)
    np.testing.assert_array_equal(split.history_["loss"], long.history_["loss"])
    assert all(torch.equal(a, b) for a, b in zip(_weights(split), _weights(long), strict=True))

    resumed = fresh().train(6, batch_size=16, execution=QUIET)
    resumed.save(tmp_path / "m", with_optimizer=True)
    data = {0: lambda m: (m.adata,), 1: lambda m: (m._images,), 2: lambda m: (m.adata,)}[which]
    loaded = type(resumed).load(tmp_path / "m", *data(resumed))
    loaded.train(5, batch_size=16, execution=QUIET)
    np.testing.assert_array_equal(loaded.history_["loss"], long.history_["loss"])
    assert all(torch.equal(a, b) for a, b in zip(_weights(loaded), _weights(long), strict=True))


def test_new_seed_restarts_the_stream():
    a, b = _models()[0], _models()[0]
    a.train(3, batch_size=16, execution=QUIET)
    b.train(3, batch_size=16, execution=QUIET)
    a.train(3, batch_size=16, execution=QUIET)
    b.train(3, batch_size=16, execution=QUIET, random_state=0)
    assert not np.array_equal(a.history_["loss"], b.history_["loss"])


def test_all_zero_gene_stays_zero_and_warns():
    adata = make_counts_adata(n_cells=64, n_genes=12)
    X = adata.X.toarray()
    X[:, 3] = 0
    adata.X = sp.csr_matrix(X)
    sdd.SDD.setup_anndata(adata)
    with pytest.warns(UserWarning, match="zero in every training cell"):
        model = sdd.SDD(adata, **TINY)
    model.train(5, batch_size=16, execution=QUIET)
    gen = model.generate(200, n_steps=3, execution=QUIET, store_dense=True)
    assert gen.X[:, 3].nnz == 0
    assert np.all(gen.X.toarray() <= X.max(axis=0) + 1e-6)
    empty = ad.AnnData(sp.csr_matrix((20, 4), dtype=np.float32))
    with pytest.warns(UserWarning, match="all zeros"):
        sdd.SDD(empty, **TINY)


def test_generated_cells_fit_scanpy_conventions():
    adata = make_counts_adata(n_cells=64, n_genes=12)
    adata.var["highly_variable"] = True
    adata.uns["log1p"] = {"base": None}
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = sdd.SDD(adata, **TINY).train(3, batch_size=16, execution=QUIET)
    one = model.generate(5, n_steps=2, execution=QUIET, labels="A")
    two = model.generate(5, n_steps=2, execution=QUIET, labels="A")
    np.testing.assert_array_equal(one.X.toarray(), two.X.toarray())  # same seed, same cells
    both = ad.concat([one, two])
    assert both.obs_names.is_unique
    assert list(one.obs["source"].cat.categories) == ["real", "generated"]
    assert set(one.obs["source"]) == {"generated"}
    assert one.var["highly_variable"].all() and one.uns["log1p"] == {"base": None}
    assert "dense" not in one.layers and "sparsity_bits" in one.layers


def test_generate_refuses_outputs_that_cannot_fit(monkeypatch):
    model = _models()[0].train(2, batch_size=16, execution=QUIET)
    monkeypatch.setattr(sdd.train._generate, "available_memory", lambda: 10**6)
    with pytest.raises(ValueError, match="GiB"):
        model.generate(10**7, execution=QUIET)


def test_load_checks_config_against_weights_before_building(tmp_path):
    model = _models()[0].train(2, batch_size=16, execution=QUIET)
    model.save(tmp_path / "m")
    config_file = tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    config["init_args"]["hidden"] = [2**20, 2**20]  # would need ~4 TB if built
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match model.pt"):
        sdd.SDD.load(tmp_path / "m")
    config["init_args"]["hidden"] = [64, 32]
    config["init_args"]["not_an_argument"] = 1
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown init_args"):
        sdd.SDD.load(tmp_path / "m")


def test_image_categories_are_a_dict_like_the_cell_models():
    model = sdd.SDDImage(_images(), labels=np.arange(32) % 2, unet_kwargs=IMAGE)
    assert model.categories_ == {"label": [0, 1]}
    model.train(2, batch_size=16, execution=QUIET)
    out = model.generate(3, n_steps=2, labels=1, execution=QUIET)
    assert out.labels.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="Unknown"):
        model.generate(3, n_steps=2, labels=5, execution=QUIET)


def test_load_takes_adata_and_accelerator_like_scvi(tmp_path):
    cells = make_counts_adata(n_cells=64, n_genes=12, seed=1)
    sdd.SDD.setup_anndata(cells, labels_key="cell_type")
    model = sdd.SDD(cells, **TINY).train(2, batch_size=16, execution=QUIET)
    model.save(tmp_path / "m", with_optimizer=True)
    loaded = sdd.SDD.load(tmp_path / "m", adata=cells, accelerator="cpu")
    assert loaded.device == torch.device("cpu") and loaded.adata is cells
    loaded.train(2, execution=QUIET)  # continues on the attached data, stays where it was put
    assert loaded.device == torch.device("cpu") and loaded.history_["step"].tolist() == [1, 2, 3, 4]
    # the training label mix is saved with the model
    mix = loaded.generate(labels="training", n_steps=2, execution=QUIET).obs["cell_type"]
    assert mix.value_counts().to_dict() == cells.obs["cell_type"].value_counts().to_dict()
    with pytest.raises(ValueError, match="accelerator"):
        sdd.SDD.load(tmp_path / "m", accelerator="tpu")
    blackout = _models()[2].train(2, batch_size=16, execution=QUIET)
    blackout.save(tmp_path / "b")
    assert sdd.SDDBlackout.load(tmp_path / "b", accelerator="cpu").device.type == "cpu"


def test_repr_of_sparse_models_with_default_sparse_options():
    for model in _models(weight_sparsity=0.5):  # no sparse_method given: the default
        assert f"{model.weight_masks_.method} weights at 50% sparsity" in repr(model)
