"""Blackout Diffusion: the death process, loss, binomial bridge, and the SDDBlackout model."""

from __future__ import annotations

import json
import math

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, SHARED_DATA, TINY, make_counts_adata

import sdd
from sdd.diffusion import blackout

TIMES = 50  # observation times in the model tests (the paper uses 1000)


# ------------------------------------------------------------------ engine
def test_schedule_is_logit_linear_and_ends_empty():
    s = blackout.BlackoutSchedule(n_times=200, t_end=15.0)
    p = s.survival
    assert p.shape == (200,) and s.times.shape == (200,)
    assert torch.all(p[1:] < p[:-1])
    assert float(p[-1]) == math.exp(-15.0)
    assert float(p[0]) == pytest.approx(1 - math.exp(-15.0), abs=1e-12)
    logit = torch.log(p / (1 - p))
    steps = logit[1:] - logit[:-1]
    torch.testing.assert_close(
        steps, torch.full_like(steps, steps.mean().item()), atol=1e-6, rtol=0
    )
    for weighting in blackout.WEIGHTINGS:
        w = s.loss_weights(weighting)
        assert torch.all(w > 0) and float(w.mean()) == pytest.approx(1.0)
    tau = s.time_input(torch.tensor([0, 199]))
    assert tau.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("k", [5, 40, 100, 160])
def test_forward_process_has_binomial_mean_and_variance(k):
    s = blackout.BlackoutSchedule(n_times=200)
    p = float(s.survival[k])
    x0 = torch.tensor([3.0, 20.0, 150.0]).repeat(40_000, 1)
    g = torch.Generator().manual_seed(k)
    x_t = blackout.q_sample(x0, s.survival[k].float(), generator=g)
    assert torch.equal(x_t, x_t.round()) and bool((x_t >= 0).all()) and bool((x_t <= x0).all())
    n = x0[0]
    mean, var = x_t.mean(0), x_t.var(0)
    se_mean = torch.sqrt(n * p * (1 - p) / x0.shape[0])
    assert torch.all((mean - n * p).abs() <= 5 * se_mean + 1e-6)
    expected_var = n * p * (1 - p)
    # variance of the sample variance of a binomial is about 2 var^2 / N (+ kurtosis term)
    assert torch.all((var - expected_var).abs() <= 0.05 * expected_var + 1e-3)


def test_q_sample_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        blackout.q_sample(torch.tensor([[-1.0, 2.0]]), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blackout.q_sample(torch.tensor([[1.0, 2.0]]), 1.5)
    with pytest.raises(TypeError):
        blackout.q_sample(np.ones((2, 2)), 0.5)


def test_birth_loss_is_zero_at_target_and_minimised_by_the_mean():
    x0 = torch.tensor([[3.0, 0.0, 7.0]])
    x_t = torch.tensor([[1.0, 0.0, 7.0]])
    assert float(blackout.birth_loss(x0 - x_t, x0, x_t)) == 0.0
    assert float(blackout.birth_loss(x0 - x_t + 0.5, x0, x_t)) > 0
    # for a fixed x_t the best constant estimate is the mean number of missing units
    missing = torch.tensor([0.0, 1.0, 1.0, 4.0])[:, None]
    grid = torch.linspace(0.1, 4.0, 400)
    losses = [
        float(blackout.birth_loss(torch.full_like(missing, y), missing, torch.zeros_like(missing)))
        for y in grid
    ]
    assert float(grid[int(np.argmin(losses))]) == pytest.approx(missing.mean().item(), abs=0.02)
    w = torch.tensor([2.0])
    assert float(blackout.birth_loss(x0 - x_t + 1, x0, x_t, w)) == pytest.approx(
        2 * float(blackout.birth_loss(x0 - x_t + 1, x0, x_t))
    )
    with pytest.raises(ValueError, match="same shape"):
        blackout.birth_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2))


def test_birth_loss_is_the_weighted_mean_poisson_deviance_with_its_gradient():
    g = torch.Generator().manual_seed(0)
    x0 = torch.poisson(torch.full((5, 7), 3.0), generator=g)
    x_t = torch.binomial(x0, torch.full_like(x0, 0.4), generator=g)
    weight = torch.rand(5, generator=g) + 0.5
    y = (torch.rand(5, 7, generator=g) * 4).requires_grad_()
    n = x0 - x_t
    expected = (weight[:, None] * (y - n + torch.xlogy(n, n) - torch.xlogy(n, y))).mean()
    loss = blackout.birth_loss(y, x0, x_t, weight)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, y)
    (expected_grad,) = torch.autograd.grad(expected, y)
    assert torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_bridge_step_matches_the_exact_conditional():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((50_000, 1), 30.0)
    x_t = torch.full((50_000, 1), 6.0)
    p_t, p_s = 0.2, 0.6
    x_s = blackout.bridge_step(x_t, x0 - x_t, p_t, p_s, generator=g)
    q = (p_s - p_t) / (1 - p_t)
    assert bool((x_s >= x_t).all()) and bool((x_s <= x0).all())
    assert float((x_s - x_t).mean()) == pytest.approx(24 * q, rel=0.01)
    assert float((x_s - x_t).var()) == pytest.approx(24 * q * (1 - q), rel=0.05)
    # the last step (to t = 0, p = 1) adds every missing unit
    assert torch.equal(blackout.bridge_step(x_t, x0 - x_t, p_t, 1.0), x0)
    with pytest.raises(ValueError, match="p_t < p_s"):
        blackout.bridge_step(x_t, x0 - x_t, 0.6, 0.2)
    with pytest.raises(ValueError, match="method"):
        blackout.bridge_step(x_t, x0 - x_t, p_t, p_s, method="gauss")


def test_stochastic_rounding_is_unbiased_and_nearest_drops_small_rates():
    g = torch.Generator().manual_seed(1)
    x_t = torch.zeros(100_000, 1)
    y = torch.full_like(x_t, 0.3)
    stochastic = blackout.bridge_step(x_t, y, 0.0, 1.0, rounding="stochastic", generator=g)
    nearest = blackout.bridge_step(x_t, y, 0.0, 1.0, rounding="nearest", generator=g)
    assert float(stochastic.mean()) == pytest.approx(0.3, abs=0.01)
    assert float(nearest.sum()) == 0.0


@pytest.mark.parametrize("n_steps", [None, 7, 1])
def test_sampler_with_an_oracle_recovers_the_data_exactly(n_steps):
    """With the true number of missing units, the bridge lands exactly on x0."""
    schedule = blackout.BlackoutSchedule(n_times=60)
    target = torch.tensor([[0.0, 1.0, 5.0, 250.0], [2.0, 0.0, 0.0, 17.0]])
    out = blackout.sample(
        lambda x, index: target - x,
        target.shape,
        schedule,
        n_steps=n_steps,
        generator=torch.Generator().manual_seed(2),
    )
    assert torch.equal(out, target)


def test_sampler_caps_at_max_value_and_poisson_gives_integers():
    schedule = blackout.BlackoutSchedule(n_times=20)
    g = torch.Generator().manual_seed(3)
    out = blackout.sample(
        lambda x, index: torch.full_like(x, 50.0),
        (30, 4),
        schedule,
        method="poisson",
        max_value=torch.tensor([1.0, 2.0, 3.0, 255.0]),
        generator=g,
    )
    assert torch.equal(out, out.round()) and bool((out >= 0).all())
    assert bool((out <= torch.tensor([1.0, 2.0, 3.0, 255.0])).all())
    with pytest.raises(ValueError, match="n_steps"):
        schedule.step_indices(0)
    assert schedule.step_indices(3) == [19, 10, 0]


# ------------------------------------------------------------------- model
def _blackout_model(adata=None, **kw) -> sdd.SDDBlackout:
    data = adata if adata is not None else make_counts_adata(n_cells=80, n_genes=12)
    sdd.SDDBlackout.setup_anndata(data, layer="counts", labels_key=kw.pop("labels_key", None))
    return sdd.SDDBlackout(data, n_times=TIMES, **TINY, **kw)


@pytest.fixture(scope="module")
def trained_blackout() -> sdd.SDDBlackout:
    model = _blackout_model()
    model.train(max_steps=40, batch_size=32, execution=QUIET)
    return model


def test_tiny_model_trains_and_generates_integer_counts(trained_blackout):
    model = trained_blackout
    assert model.is_trained_ and len(model.history_) == 40
    assert np.all(np.isfinite(model.history_["loss"]))
    gen = model.generate(33, n_steps=10, execution=QUIET)
    assert gen.shape == (33, model.n_genes) and list(gen.var_names) == model.var_names_
    assert sp.isspmatrix_csr(gen.X) and gen.X.dtype == np.float32
    x = gen.X.toarray()
    assert x.min() >= 0 and np.array_equal(x, np.round(x))
    assert np.all(x <= model.gene_max_[None, :])  # clip=True caps at the training maximum
    assert np.array_equal(gen.layers["sparsity_bits"].toarray(), (x != 0).astype(np.float32))
    assert np.array_equal(gen.layers["counts"].toarray(), x)
    assert gen.X.nnz == np.count_nonzero(x)  # zeros are structural (exact)
    assert (gen.obs["source"] == "generated").all()
    assert gen.uns["sdd"]["model"] == "SDDBlackout" and gen.uns["sdd"]["n_steps"] == 10


def _eval_loss(model: sdd.SDDBlackout, x0: torch.Tensor) -> float:
    """Blackout loss on fixed cells, times and thinning (the training loss is noisy)."""
    g = torch.Generator().manual_seed(0)
    k = torch.randint(model.schedule.n_times, (x0.shape[0],), generator=g)
    x_t = blackout.q_sample(x0, model.schedule.survival[k].float()[:, None], generator=g)
    weights = model.schedule.loss_weights(model.init_args_["weighting"]).float()
    with torch.no_grad():
        births = model.process.births(model.module, x_t, k, None)
        return float(blackout.birth_loss(births, x0, x_t, weights[k]))


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = _blackout_model()
    x0 = torch.as_tensor(model.adata.layers["counts"].toarray()).repeat(10, 1)
    before = _eval_loss(model, x0)
    model.train(max_steps=40, batch_size=32, lr=1e-3, execution=QUIET)
    assert _eval_loss(model, x0) < 0.93 * before


def test_generation_is_seeded(trained_blackout):
    a = trained_blackout.generate(20, n_steps=8, random_state=5, execution=QUIET).X.toarray()
    b = trained_blackout.generate(20, n_steps=8, random_state=5, execution=QUIET).X.toarray()
    c = trained_blackout.generate(20, n_steps=8, random_state=6, execution=QUIET).X.toarray()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_setup_rejects_non_count_data():
    data = make_counts_adata(n_cells=20, n_genes=5)  # X holds log1p values
    with pytest.raises(ValueError, match="integer counts"):
        sdd.SDDBlackout.setup_anndata(data, layer=None)
    with pytest.raises(ValueError, match="not found"):
        sdd.SDDBlackout.setup_anndata(data, layer="raw")
    data.layers["neg"] = -data.layers["counts"]
    with pytest.raises(ValueError, match="negative"):
        sdd.SDDBlackout.setup_anndata(data, layer="neg")
    with pytest.raises(TypeError, match="from_array"):
        sdd.SDDBlackout(np.ones((3, 3)))


def test_data_changed_after_setup_is_checked():
    data = make_counts_adata(n_cells=20, n_genes=5)
    sdd.SDDBlackout.setup_anndata(data, layer="counts", labels_key="cell_type")
    halves = data.copy()
    halves.layers["counts"] = halves.layers["counts"] * 0.5
    with pytest.raises(ValueError, match="integer counts"):
        sdd.SDDBlackout(halves, **TINY)
    del data.obs["cell_type"]
    with pytest.raises(ValueError, match="condition column 'cell_type'"):
        sdd.SDDBlackout(data, **TINY)


def test_setup_survives_an_h5ad_round_trip(tmp_path):
    data = make_counts_adata(n_cells=20, n_genes=5)
    sdd.SDDBlackout.setup_anndata(data, layer="counts", labels_key="cell_type")
    data.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")  # lists in uns come back as arrays
    model = sdd.SDDBlackout(back, **TINY)
    model.save(tmp_path / "m")
    assert sdd.SDDBlackout.load(tmp_path / "m").categories_ == {"cell_type": ["A", "B"]}


def test_bad_generate_arguments(trained_blackout):
    with pytest.raises(ValueError, match="n_cells"):
        trained_blackout.generate(0)
    with pytest.raises(ValueError, match="method"):
        trained_blackout.generate(5, method="ddim")
    with pytest.raises(ValueError, match="n_steps"):
        trained_blackout.generate(5, n_steps=TIMES + 1)
    with pytest.raises(ValueError, match="labels"):
        trained_blackout.generate(5, labels="A")
    untrained = _blackout_model()
    with pytest.raises(ValueError, match="not trained"):
        untrained.generate(5)


def test_save_load_round_trip(trained_blackout, tmp_path):
    path = tmp_path / "bo"
    trained_blackout.save(path)
    state = torch.load(path / "model.pt", weights_only=True)
    assert "gene_max" in state
    config = json.loads((path / "config.json").read_text())
    assert config["model_class"] == "SDDBlackout"
    loaded = sdd.SDDBlackout.load(path)
    kw = {"n_steps": 6, "random_state": 1, "execution": QUIET}
    assert np.array_equal(
        loaded.generate(15, **kw).X.toarray(), trained_blackout.generate(15, **kw).X.toarray()
    )
    assert len(loaded.history_) == len(trained_blackout.history_)
    with pytest.raises(ValueError, match="SDDBlackout"):
        sdd.SDD.load(path)
    with pytest.raises(FileExistsError):
        trained_blackout.save(path)


def test_conditional_generation():
    model = _blackout_model(labels_key="cell_type")
    model.train(max_steps=10, batch_size=32, execution=QUIET)
    gen = model.generate(12, n_steps=5, labels="B", guidance_scale=1.0, execution=QUIET)
    assert (gen.obs["cell_type"] == "B").all()
    assert np.all(gen.X.toarray() >= 0)


def test_sparse_weights_with_blackout_survive_training_and_save(tmp_path):
    model = _blackout_model(weight_sparsity=0.75, sparse_method="magran", sparse_update_interval=5)
    model.train(max_steps=16, batch_size=32, execution=QUIET)
    masks = model.weight_masks_  # updates at steps 5 and 10 (they stop at 75% = step 12)
    assert (
        masks.n_updates == 2
        and masks.last_update_step == 10
        and masks.sparsity == pytest.approx(0.75, abs=0.01)
    )
    assert masks.is_applied(model.module) and masks.is_applied(model.ema_.model)
    report = model.weight_report(batch_size=32)
    assert report["flops_forward"] < report["flops_forward_dense"]
    model.save(tmp_path / "m")
    loaded = sdd.SDDBlackout.load(tmp_path / "m")
    for name, mask in masks.masks.items():
        assert torch.equal(loaded.weight_masks_.masks[name].cpu(), mask.cpu())
    assert loaded.weight_masks_.is_applied(loaded.ema_.model)


def test_image_route_from_integer_arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 6)) * (rng.random((40, 6, 6)) < 0.3)
    model = sdd.SDDBlackout.from_array(images, labels=rng.integers(0, 2, 40), n_times=TIMES, **TINY)
    model.train(max_steps=5, batch_size=16, execution=QUIET)
    out = model.generate_images(4, n_steps=5, labels="1", execution=QUIET)
    assert out.shape == (4, 6, 6) and out.dtype == np.int64
    assert out.min() >= 0 and out.max() <= images.max()
    assert "image (6, 6)" in repr(model)
    with pytest.raises(ValueError, match="integer"):
        sdd.SDDBlackout.from_array(images + 0.5)
    counts_model = _blackout_model()
    with pytest.raises(ValueError, match="not built from arrays"):
        counts_model.generate_images(2)


def test_real_counts_are_accepted():
    path = SHARED_DATA / "scrna" / "pbmc4k_top2000.h5ad"
    if not path.exists():
        pytest.skip("shared data not available")
    data = ad.read_h5ad(path)[:150, :30].copy()
    data.layers["counts"] = data.X.copy()
    model = _blackout_model(data)
    model.train(max_steps=3, batch_size=32, execution=QUIET)
    gen = model.generate(10, n_steps=4, execution=QUIET)
    assert gen.shape == (10, 30) and gen.X.min() >= 0


def test_conditional_blackout_generates_the_training_mix(tmp_path):
    adata = make_counts_adata(n_cells=50, n_genes=10, seed=3)
    sdd.SDDBlackout.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sdd.SDDBlackout(adata, **TINY, n_times=10).train(2, batch_size=16, execution=QUIET)
    model.save(tmp_path / "b")
    loaded = sdd.SDDBlackout.load(tmp_path / "b")
    real = adata.obs["cell_type"].value_counts()
    for m in (model, loaded):
        gen = m.generate(labels="training", n_steps=2, execution=QUIET)
        assert gen.obs["cell_type"].value_counts().to_dict() == real.to_dict()
        x = gen.X.toarray()
        assert np.array_equal(x, np.round(x)) and x.min() >= 0
    twenty = loaded.generate(20, labels="training", n_steps=2, execution=QUIET)
    share = twenty.obs["cell_type"].value_counts()
    assert share.sum() == 20 and all(abs(share[k] - 20 * real[k] / 50) < 1 for k in real.index)
