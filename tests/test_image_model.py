"""SDDImage: training on images, exact zeros, save/load, bad input; image metrics and plots."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch
from conftest import QUIET, SHARED_DATA

import sdd
import sdd.metrics
import sdd.pl
from sdd.model._image import ImageScaler

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

matplotlib.use("Agg")

TINY = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}
MNIST = SHARED_DATA / "images" / "mnist"


def _gen(model, n=12, **kw):
    return model.generate(n, **{"sampler": "ddim", "n_steps": 4, "execution": QUIET, **kw})


def synthetic_images(n=96, channels=None, size=12, seed=0):
    """Sparse non-negative images: a bright blob in one of two corners, depending on the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    shape = (n, size, size) if channels is None else (n, channels, size, size)
    x = np.zeros(shape, dtype=np.float32)
    half = size // 2
    for i, lab in enumerate(labels):
        block = (
            (slice(0, half), slice(0, half)) if lab == 0 else (slice(half, None), slice(half, None))
        )
        values = rng.gamma(2.0, 2.0, (half, half)) * (rng.random((half, half)) < 0.5)
        x[i][..., block[0], block[1]] = values
    return x, labels


@pytest.fixture(scope="module")
def mnist_subset():
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("shared MNIST data not available")
    x, y = sdd.datasets.read_mnist(MNIST, split="test")
    return x[:256], y[:256]


@pytest.fixture(scope="module")
def mnist_model(mnist_subset):
    x, y = mnist_subset
    model = sdd.SDDImage(x, y, unet_kwargs=TINY)
    return model.train(max_steps=12, batch_size=32, execution=QUIET)


@pytest.fixture(scope="module")
def synth_model():
    x, y = synthetic_images()
    return sdd.SDDImage(x, y, unet_kwargs=TINY).train(max_steps=8, batch_size=32, execution=QUIET)


# ------------------------------------------------------------------ model on MNIST
def test_mnist_exact_zeros_and_sparsity_bits(mnist_model, mnist_subset):
    x, _ = mnist_subset
    out = _gen(mnist_model, 16, labels=[3] * 8 + [7] * 8)
    assert isinstance(out, sdd.model.GeneratedImages) and len(out) == 16
    for arr in (out.images, out.dense, out.sb_logits):
        assert arr.shape == (16, 28, 28) and arr.dtype == np.float32
    assert out.sparsity_bits.dtype == bool
    # the SB channels decide the zero pattern, and the zeros are exact
    assert np.array_equal(out.sparsity_bits, out.images != 0)
    assert np.all(out.images[out.sb_logits <= 0] == 0)
    assert (out.images == 0).mean() > 0.1
    on = out.sparsity_bits
    assert np.array_equal(out.images[on], out.dense[on])
    assert out.images.min() >= 0 and out.images.max() <= x.max() + 1e-3
    assert out.labels.tolist() == [3] * 8 + [7] * 8
    assert np.all(np.abs(out.sb_logits) <= 1)


def test_mnist_training_state(mnist_model):
    assert mnist_model.is_trained_
    assert mnist_model.history_["step"].tolist() == list(range(1, 13))
    assert np.isfinite(mnist_model.history_["loss"]).all()
    assert mnist_model.categories_ == {"label": list(range(10))}
    assert mnist_model.module.channels == 2  # 1 data channel + 1 sparsity-bit channel
    assert "trained for 12 steps" in repr(mnist_model) and "10 classes" in repr(mnist_model)


# ------------------------------------------------------------------ model on synthetic data
def test_channel_axis_layout_and_scaling():
    x, _ = synthetic_images(48, channels=2)
    x[:, 1] *= 10.0
    model = sdd.SDDImage(x, unet_kwargs=TINY)
    assert model.image_shape == (2, 12, 12) and model.data_channels == 4
    np.testing.assert_allclose(model.scaler_.scale, x.max(axis=(0, 2, 3)), rtol=1e-6)
    model.train(max_steps=3, batch_size=16, execution=QUIET)
    out = _gen(model, 5)
    assert out.images.shape == (5, 2, 12, 12) and out.sb_logits.shape == (5, 2, 12, 12)
    assert out.labels is None
    assert np.all(out.images <= x.max(axis=(0, 2, 3))[None, :, None, None] * (1 + 1e-5))


def test_same_seed_same_images(synth_model):
    a, b = _gen(synth_model, random_state=1), _gen(synth_model, random_state=1)
    c = _gen(synth_model, random_state=2)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.dense, c.dense)
    # generating in several batches gives the requested number of images
    assert len(_gen(synth_model, 7, batch_size=3)) == 7


def test_guidance_and_label_broadcast(synth_model):
    out = _gen(synth_model, 6, labels=1, guidance_scale=2.0)
    assert out.labels.tolist() == [1] * 6
    assert out.settings["guidance_scale"] == 2.0
    plain = _gen(synth_model, 6, labels=1)
    assert not np.array_equal(out.dense, plain.dense)


def test_plain_baseline_has_no_sb_channels():
    x, _ = synthetic_images(48)
    model = sdd.SDDImage(x, sparsity_bits=False, unet_kwargs=TINY).train(
        max_steps=2, batch_size=16, execution=QUIET
    )
    assert model.module.channels == 1
    out = _gen(model, 4)
    assert out.sb_logits is None
    assert np.array_equal(out.dense, out.images)
    assert np.array_equal(out.sparsity_bits, out.images != 0)
    assert "plain diffusion baseline" in repr(model)


def test_log1p_scaler_round_trip():
    x, _ = synthetic_images(20)
    scaler = ImageScaler.fit(x[:, None], "log1p")
    np.testing.assert_allclose(scaler.scale, [np.log1p(x.max())], rtol=1e-6)
    t = torch.as_tensor(x[:, None])
    z = scaler.transform(t)
    assert torch.all(z[t == 0] == -1) and z.max() == 1
    back = scaler.inverse(z)
    assert torch.all(back[t == 0] == 0)
    torch.testing.assert_close(back, t, rtol=1e-4, atol=1e-4)


def test_log1p_model_output_in_range():
    x, _ = synthetic_images(48)
    model = sdd.SDDImage(x, intensity_transform="log1p", unet_kwargs=TINY)
    model.train(max_steps=2, batch_size=16, execution=QUIET)
    out = _gen(model, 4)
    assert out.images.min() >= 0 and out.images.max() <= x.max() * (1 + 1e-4)
    assert "log1p" in repr(model)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip(synth_model, tmp_path):
    path = tmp_path / "model"
    synth_model.save(path)
    config = json.loads((path / "config.json").read_text())
    assert config["model_class"] == "SDDImage"
    assert config["data_args"]["image_shape"] == [1, 12, 12]
    torch.load(path / "model.pt", weights_only=True)
    loaded = sdd.SDDImage.load(path)
    assert loaded.is_trained_ and loaded.categories_ == {"label": [0, 1]}
    assert np.array_equal(_gen(loaded, labels=0).images, _gen(synth_model, labels=0).images)
    assert loaded.history_.equals(synth_model.history_)
    with pytest.raises(FileExistsError):
        synth_model.save(path)
    synth_model.save(path, overwrite=True)


def test_load_and_continue_training(synth_model, tmp_path):
    synth_model.save(tmp_path / "m")
    x, y = synthetic_images(40, seed=1)
    x = np.minimum(x, synth_model.scaler_.maximum[0])  # brighter pixels: "data changed"
    loaded = sdd.SDDImage.load(tmp_path / "m", images=x, labels=y)
    loaded.train(max_steps=2, batch_size=16, execution=QUIET)
    assert loaded.history_["step"].tolist()[-2:] == [9, 10]
    with pytest.raises(ValueError, match="Image shape mismatch"):
        sdd.SDDImage.load(tmp_path / "m", images=np.zeros((4, 10, 10)), labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="conditional"):
        sdd.SDDImage.load(tmp_path / "m", images=x)
    with pytest.raises(ValueError, match="Unknown label"):
        sdd.SDDImage.load(tmp_path / "m", images=x, labels=np.full(40, 5))
    with pytest.raises(ValueError, match="no training data"):
        sdd.SDDImage.load(tmp_path / "m").train(max_steps=1, execution=QUIET)


def test_load_rejects_other_model_class(tmp_path, trained_model):
    trained_model.save(tmp_path / "anndata_model")
    with pytest.raises(ValueError, match="'SDD' model, not 'SDDImage'"):
        sdd.SDDImage.load(tmp_path / "anndata_model")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((4, 8)), ValueError, r"\(N, H, W\) or \(N, C, H, W\)"),
        (np.zeros((0, 8, 8)), ValueError, "empty"),
        (-np.ones((4, 8, 8)), ValueError, "negative"),
        (np.full((4, 8, 8), np.nan), ValueError, "NaN"),
        (np.full((4, 8, 8), "a"), TypeError, "real numbers"),
        (np.zeros((4, 8, 8), dtype=complex), TypeError, "real numbers"),
    ],
)
def test_bad_images(images, error, match):
    with pytest.raises(error, match=match):
        sdd.SDDImage(images, unet_kwargs=TINY)


def test_bad_labels_and_arguments(synth_model):
    x, y = synthetic_images(16)
    with pytest.raises(ValueError, match="one label per image"):
        sdd.SDDImage(x, y[:5], unet_kwargs=TINY)
    with pytest.raises(TypeError, match="integers or strings"):
        sdd.SDDImage(x, y.astype(float), unet_kwargs=TINY)
    with pytest.raises(ValueError, match="intensity_transform"):
        sdd.SDDImage(x, intensity_transform="sqrt", unet_kwargs=TINY)
    with pytest.raises(ValueError, match="condition_dropout"):
        sdd.SDDImage(x, condition_dropout=1.0, unet_kwargs=TINY)
    with pytest.raises(ValueError, match="not trained"):
        sdd.SDDImage(x, unet_kwargs=TINY).generate(2)
    with pytest.raises(ValueError, match="max_steps"):
        sdd.SDDImage(x, unet_kwargs=TINY).train(max_steps=0)
    with pytest.raises(ValueError, match="n_images"):
        synth_model.generate(0)
    with pytest.raises(ValueError, match="sampler"):
        synth_model.generate(2, sampler="euler")
    with pytest.raises(ValueError, match=r"Unknown label\(s\) \['7'\]"):
        _gen(synth_model, 2, labels=7)
    with pytest.raises(ValueError, match="2 entries for 3 images"):
        _gen(synth_model, 3, labels=[0, 1])
    unconditional = sdd.SDDImage(x, unet_kwargs=TINY).train(
        max_steps=1, batch_size=8, execution=QUIET
    )
    with pytest.raises(ValueError, match="trained without labels"):
        _gen(unconditional, 2, labels=0)


def test_string_labels():
    x, y = synthetic_images(32)
    names = np.array(["left", "right"])[y]
    model = sdd.SDDImage(x, names, unet_kwargs=TINY).train(
        max_steps=1, batch_size=8, execution=QUIET
    )
    assert model.categories_ == {"label": ["left", "right"]}
    assert _gen(model, 3, labels="right").labels.tolist() == ["right"] * 3


# ------------------------------------------------------------------ image metrics
def test_pixel_and_logit_sparsity():
    x = np.array([[[0.0, 0.4], [0.6, 255.0]], [[0.0, 0.0], [1e-7, 3.0]]])
    # 0.4 and 1e-7 round to grey level 0, 0.6 to level 1
    assert sdd.metrics.pixel_sparsity(x) == pytest.approx(5 / 8)
    assert sdd.metrics.logit_sparsity(x) == pytest.approx(3 / 8)
    np.testing.assert_allclose(sdd.metrics.pixel_sparsity(x, per_image=True), [0.5, 0.75])
    np.testing.assert_allclose(sdd.metrics.logit_sparsity(x, per_image=True), [0.25, 0.5])
    # with 2 grey levels of [0, 10], everything below 5 is zero
    assert sdd.metrics.pixel_sparsity(x, max_value=10.0, levels=2) == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="max_value"):
        sdd.metrics.pixel_sparsity(x, max_value=0)


def test_per_image_sparsity_and_histogram():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.5, (40, 6, 6)).astype(float)
    per = sdd.metrics.per_image_sparsity(x)
    np.testing.assert_allclose(per, [(img == 0).mean() for img in x])
    counts, edges = sdd.metrics.sparsity_histogram(x, bins=5)
    assert counts.sum() == 40 and edges[0] == 0 and edges[-1] == 1
    np.testing.assert_array_equal(counts, np.histogram(per, bins=5, range=(0, 1))[0])
    assert np.all(sdd.metrics.per_image_sparsity(x, threshold=10.0) == 1)


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert sdd.metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    b = rng.normal(size=(1500, 3)) @ np.array([[2.0, 0.3, 0], [0, 1.0, 0], [0, 0, 0.5]]) + 1.5
    # independent evaluation: tr((Ca Cb)^(1/2)) is the sum of the square roots of the
    # eigenvalues of Ca Cb
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    expected = mean_term + np.trace(ca) + np.trace(cb) - 2 * root
    assert sdd.metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert sdd.metrics.frechet_distance(a, a + 1.0) == pytest.approx(3.0, rel=1e-6)
    with pytest.raises(ValueError, match="same D"):
        sdd.metrics.frechet_distance(a, a[:, :2])


# ------------------------------------------------------------------ plots
def test_image_plots():
    import matplotlib.pyplot as plt

    x, y = synthetic_images(10)
    ax = sdd.pl.images(x, n=10, ncols=4, labels=y, pad=1, show=False)
    assert ax.images[0].get_array().shape == (3 * 13 - 1, 4 * 13 - 1)
    assert len(ax.texts) == 10
    grid = np.linspace(-1, 1, 12)
    ax = sdd.pl.mean_image(x, eta=grid, phi=grid, log=True, show=False)
    np.testing.assert_allclose(ax.images[0].get_array().filled(0), x.mean(0), rtol=1e-6)
    ax = sdd.pl.image_sparsity({"a": x, "b": x[:5]}, bins=7, show=False)
    assert len(ax.patches) == 2 and len(ax.get_legend().texts) == 2
    with pytest.raises(ValueError, match="1 or 3 channels"):
        sdd.pl.images(np.zeros((2, 2, 4, 4)))
    plt.close("all")
