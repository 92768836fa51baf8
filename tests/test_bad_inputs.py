"""Inputs that used to be accepted silently with a wrong result now raise clear errors.

A float column as a condition (one category per cell), a device that is not there, and
data changed in place after setup (silently clipped to the stored per-gene maximum).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.data.images import ImageScaler
from sdd.data.loader import MinibatchSampler
from sdd.data.scaling import Scaler

IMAGE = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}
CPU = torch.device("cpu")


def _images(n: int = 32) -> np.ndarray:
    return np.random.default_rng(0).poisson(0.3, size=(n, 8, 8)).astype(np.float32)


def _models():
    """A fresh SDD, SDDImage and SDDBlackout on tiny data."""
    torch.manual_seed(0)
    cells = make_counts_adata(n_cells=48, n_genes=10)
    sdd.SDD.setup_anndata(cells)
    counts = make_counts_adata(n_cells=48, n_genes=10)
    sdd.SDDBlackout.setup_anndata(counts, layer="counts")
    return [
        sdd.SDD(cells, **TINY),
        sdd.SDDImage(_images(), unet_kwargs=IMAGE),
        sdd.SDDBlackout(counts, **TINY, n_times=20),
    ]


# ------------------------------------------------------------ float condition columns
@pytest.mark.parametrize("model_class", [sdd.SDD, sdd.SDDBlackout])
@pytest.mark.parametrize("as_labels", [True, False])
def test_a_continuous_float_column_is_refused_as_a_condition(model_class, as_labels):
    adata = make_counts_adata(n_cells=30, n_genes=6)
    adata.obs["score"] = np.random.default_rng(0).random(adata.n_obs)
    keys = {"labels_key": "score"} if as_labels else {"categorical_covariate_keys": ["score"]}
    with pytest.raises(ValueError, match=r"'score'.*float column.*astype\(str\)"):
        model_class.setup_anndata(adata, layer="counts", **keys)
    assert not any(k.startswith("sdd") for k in adata.uns)  # nothing registered


def test_label_like_columns_stay_accepted():
    adata = make_counts_adata(n_cells=40, n_genes=6)
    rng = np.random.default_rng(1)
    adata.obs["batch_int"] = rng.integers(0, 3, adata.n_obs)
    adata.obs["batch_float"] = rng.integers(0, 2, adata.n_obs).astype(float)  # whole numbers
    adata.obs["flag"] = rng.random(adata.n_obs) > 0.5
    adata.obs["dose"] = np.asarray(rng.choice([0.5, 1.5], adata.n_obs))
    adata.obs["dose"] = adata.obs["dose"].astype("category")  # declared categorical: fine
    keys = ["batch_int", "batch_float", "flag", "dose"]
    sdd.SDD.setup_anndata(adata, labels_key="cell_type", categorical_covariate_keys=keys)
    model = sdd.SDD(adata, **TINY).train(2, batch_size=8, execution=QUIET)
    assert model.categories_["batch_float"] == ["0.0", "1.0"]
    assert model.categories_["dose"] == ["0.5", "1.5"]
    out = model.generate(4, labels={"batch_float": 1.0, "dose": 0.5}, n_steps=2, execution=QUIET)
    assert list(out.obs["batch_float"].astype(str)) == ["1.0"] * 4
    with pytest.raises(ValueError, match="Unknown label"):
        model.generate(4, labels={"batch_float": 2.0}, n_steps=2, execution=QUIET)


# ------------------------------------------------------------ devices that are not there
CUDA_MISSING = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@CUDA_MISSING
@pytest.mark.parametrize(
    "where,match",
    [
        ({"accelerator": "cuda"}, "accelerator='cuda'.*CUDA is not available"),
        ({"accelerator": "gpu"}, "CUDA is not available"),
        ({"device": "cuda"}, "device='cuda'.*CUDA is not available"),
        ({"device": "cuda:0"}, "CUDA is not available"),
        ({"device": 0}, "device=0 names a GPU"),
        ({"device": "all"}, "names a GPU"),
        ({"accelerator": "cpu", "device": "cuda"}, "does not match"),
    ],
)
def test_a_gpu_asked_for_on_a_cpu_machine_is_an_error(where, match):
    for model in _models():
        with pytest.raises(ValueError, match=match):
            model.train(2, batch_size=8, execution=QUIET.replace(**where))
        assert not model.is_trained_
        model.train(1, batch_size=8, execution=QUIET)
        with pytest.raises(ValueError, match=match):
            model.generate(2, n_steps=2, execution=QUIET.replace(**where))


@pytest.mark.skipif(
    getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    reason="needs a machine without MPS",
)
def test_mps_asked_for_without_mps_is_an_error():
    for model in _models():
        for where in ({"accelerator": "mps"}, {"device": "mps"}):
            with pytest.raises(ValueError, match="MPS .* is not available"):
                model.train(2, batch_size=8, execution=QUIET.replace(**where))
    from sdd.train._device import resolve_devices

    assert resolve_devices("auto", "cpu") == [CPU]


# ------------------------------------------------------------ data changed after setup
def test_data_changed_in_place_after_setup_is_an_error_not_a_clip():
    adata = make_counts_adata(n_cells=40, n_genes=8)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, **TINY)
    before = [v.clone() for v in model.module.state_dict().values()]
    column = adata.X[:, 3].toarray().ravel()
    adata.X[int(np.argmax(column)), 3] = 10 * column.max()  # e.g. un-logged in place
    with pytest.raises(ValueError, match=r"changed after.*gene 'g3'.*[Ss]et up the model again"):
        model.train(50, batch_size=8, execution=QUIET)
    assert not model.is_trained_  # rolled back
    after = list(model.module.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # a fresh model on the changed data trains
    sdd.SDD(adata, **TINY).train(2, batch_size=8, execution=QUIET)


def test_images_changed_in_place_are_an_error():
    images = _images()
    model = sdd.SDDImage(images, unet_kwargs=IMAGE, intensity_transform="log1p")
    model._images[0, 0, 0, 0] = 1e3  # the array the model trains on, changed in place
    with pytest.raises(ValueError, match="changed after"):
        model.train(20, batch_size=8, execution=QUIET)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_sampler_refuses_negative_nan_and_inf(bad):
    x = np.abs(np.random.default_rng(0).normal(size=(20, 4)))
    scaler = Scaler.fit(x)
    x[7, 2] = bad
    batches = MinibatchSampler(
        x, scaler, batch_size=5, device=CPU, feature_names=["a", "b", "c", "d"]
    )
    with pytest.raises(ValueError, match="gene 'c'"):
        for _ in range(4):  # one epoch: row 7 is in one of its batches
            batches()


def test_range_check_never_flags_the_data_it_was_fitted_on():
    rng = np.random.default_rng(2)
    x = rng.lognormal(size=(200, 30)) * (rng.random((200, 30)) < 0.3)  # float64, sparse-ish
    x[:, 5] = 0  # an all-zero gene
    assert not Scaler.fit(x).out_of_range(torch.as_tensor(x, dtype=torch.float32)).any()
    images = rng.gamma(0.5, 300.0, size=(16, 3, 5, 5)).astype(np.float32)
    for transform in ("none", "log1p"):
        scaler = ImageScaler.fit(images, transform)
        assert not scaler.out_of_range(torch.as_tensor(images)).any()
        np.testing.assert_allclose(scaler.maximum, images.max(axis=(0, 2, 3)), rtol=1e-5)
    batches = MinibatchSampler(x, Scaler.fit(x), batch_size=16, device=CPU)
    for _ in range(30):  # several epochs, every batch checked on the CPU
        batches()
    changed = x.copy()
    changed[:, 5] = 1.0  # a gene that was all zero at setup now has values
    with pytest.raises(ValueError, match="feature 5"):
        MinibatchSampler(changed, Scaler.fit(x), batch_size=16, device=CPU)()


def test_sparse_read_back_still_catches_every_batch():
    """On accelerators the flag is read back every ``check_every`` batches and at the end."""
    x = np.abs(np.random.default_rng(3).normal(size=(40, 4)))
    scaler = Scaler.fit(x)
    x[:, 1] *= 2  # every row of gene 1 changed
    batches = MinibatchSampler(x, scaler, batch_size=4, device=CPU, check_every=50)
    with pytest.raises(ValueError, match="feature 1"):
        batches()  # the first batch is always read back
    clean = np.minimum(x, scaler.maximum)
    clean[-1, 1] = 10 * scaler.maximum[1]  # one changed row
    batches = MinibatchSampler(clean, scaler, batch_size=4, device=CPU, check_every=50)
    for _ in range(10):  # one epoch: the changed row is served, not yet read back
        batches()
    with pytest.raises(ValueError, match="feature 1"):
        batches.check_range()
    with pytest.raises(ValueError, match="check_every"):
        MinibatchSampler(x, scaler, batch_size=4, device=CPU, check_every=0)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, -np.inf])
def test_blackout_counts_changed_in_place_are_an_error(bad):
    adata = make_counts_adata(n_cells=40, n_genes=8)
    sdd.SDDBlackout.setup_anndata(adata, layer="counts")
    model = sdd.SDDBlackout(adata, **TINY)
    model._matrix[5, 2] = bad  # the matrix the model trains on, changed in place
    with pytest.raises(ValueError, match=r"changed after.*gene 'g2'"):
        model.train(20, batch_size=8, execution=QUIET)
    assert not model.is_trained_
