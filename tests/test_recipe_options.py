"""Training options of the realism research: the v parameterisation and the cosine lr schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.diffusion import CosineSchedule, GaussianDiffusion
from sdd.train import lr_multiplier

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it


class _Oracle(torch.nn.Module):
    """Outputs the exact target of ``prediction`` for a known clean batch ``x0``."""

    def __init__(self, x0: torch.Tensor, prediction: str, schedule: CosineSchedule) -> None:
        super().__init__()
        self.x0, self.prediction, self.schedule = x0, prediction, schedule

    def forward(self, x_t, t, self_cond, cond=None):
        alpha, sigma = (v[:, None] for v in self.schedule.alpha_sigma(t))
        v = (alpha * x_t - self.x0) / sigma  # v = alpha eps - sigma x0, written with x_t
        if self.prediction == "x0":
            return self.x0
        if self.prediction == "v":
            return v
        half = self.x0.shape[1] // 2
        return torch.cat([v[:, :half], self.x0[:, half:]], dim=1)


@pytest.mark.parametrize("prediction", ["x0", "v", "v-data"])
def test_exact_prediction_gives_zero_loss_and_the_clean_data(prediction):
    x0 = torch.rand(8, 6, dtype=torch.float64) * 2 - 1
    process = GaussianDiffusion(prediction=prediction)
    net = _Oracle(x0, prediction, process.schedule)
    gen = torch.Generator().manual_seed(0)
    assert float(process.loss(net, x0, generator=gen, self_cond=False)) < 1e-12
    x_t = torch.randn(8, 6, dtype=torch.float64)
    t = torch.full((8,), 0.3, dtype=torch.float64)
    assert torch.allclose(process.denoiser(net, None, 0.0)(x_t, t, x0), x0)


def test_v_estimate_differs_from_x0_estimate():
    """The same network output means different clean estimates under x0 and v."""
    x_t, t = torch.randn(4, 6), torch.full((4,), 0.5)

    def net(x, tt, sc, c=None):
        return torch.zeros_like(x)

    x0 = GaussianDiffusion(prediction="x0").denoiser(net, None, 0.0)(x_t, t, x_t)
    v = GaussianDiffusion(prediction="v").denoiser(net, None, 0.0)(x_t, t, x_t)
    vd = GaussianDiffusion(prediction="v-data").denoiser(net, None, 0.0)(x_t, t, x_t)
    alpha = GaussianDiffusion().schedule.alpha_sigma(t)[0][:, None]
    assert torch.equal(x0, torch.zeros_like(x_t))
    assert torch.allclose(v, alpha * x_t)  # v = 0: the clean estimate is alpha x_t
    assert torch.allclose(vd[:, :3], alpha * x_t[:, :3]) and torch.equal(vd[:, 3:], x0[:, 3:])


def test_unknown_prediction_is_refused():
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(prediction="eps")
    with pytest.raises(ValueError, match="prediction"):
        sdd.SDD(make_counts_adata(), diffusion_kwargs={"prediction": "eps"}, **TINY)


def test_v_model_trains_generates_exact_zeros_and_reloads(tmp_path):
    adata = make_counts_adata()
    model = sdd.SDD(adata, diffusion_kwargs={"prediction": "v"}, **TINY)
    model.train(20, execution=QUIET)
    gen = model.generate(30, n_steps=5, execution=QUIET)
    assert (gen.X.toarray() == 0).any()
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m", adata)
    assert loaded.process.prediction == "v"
    again = loaded.generate(30, n_steps=5, execution=QUIET)
    assert np.array_equal(gen.X.toarray(), again.X.toarray())


def test_cosine_multiplier_warms_up_and_decays_to_zero():
    f = lr_multiplier("cosine", start=100, total=10, warmup=4)
    values = [f(100 + k) for k in range(1, 11)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a > b for a, b in zip(values[3:], values[4:], strict=False))
    assert values[-1] == pytest.approx(0.0)
    assert lr_multiplier("constant", start=0, total=10) is None
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_multiplier("linear", start=0, total=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_multiplier("cosine", start=0, total=10, warmup=-1)


def test_cosine_schedule_changes_training_and_ends_at_zero_lr():
    adata = make_counts_adata()
    runs = {}
    for schedule in ("constant", "cosine"):
        torch.manual_seed(0)
        model = sdd.SDD(adata, **TINY)
        model.train(12, lr=1e-3, lr_schedule=schedule, warmup_steps=3, execution=QUIET)
        runs[schedule] = model
    const, cos = runs["constant"], runs["cosine"]
    assert const.history["loss"].iloc[0] == cos.history["loss"].iloc[0]  # same first batch
    assert not np.allclose(const.history["loss"], cos.history["loss"])
    assert cos._train_state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)
    assert const._train_state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert cos.train_args_["lr_schedule"] == "cosine"


def test_recipe_sets_network_and_training_defaults():
    adata = make_counts_adata()
    default = sdd.SDD(adata, emb_dim=16)
    assert default.init_args_["recipe"] == "paper"
    assert tuple(default.init_args_["hidden"]) == (1024, 512, 256)
    cpu = sdd.SDD(adata, recipe="cpu", emb_dim=16)
    assert tuple(cpu.init_args_["hidden"]) == (512, 256, 128)
    cpu.train(2, execution=QUIET)
    assert (cpu.train_args_["lr"], cpu.train_args_["batch_size"]) == (1e-3, 128)
    paper = sdd.SDD(adata, recipe="paper", hidden=(32, 16), emb_dim=16)
    assert tuple(paper.init_args_["hidden"]) == (32, 16)  # explicit arguments win
    paper.train(2, execution=QUIET)
    assert (paper.train_args_["lr"], paper.train_args_["batch_size"]) == (2e-4, 256)
    paper.train(2, lr=5e-4, batch_size=64, execution=QUIET)
    assert (paper.train_args_["lr"], paper.train_args_["batch_size"]) == (5e-4, 64)
    with pytest.raises(ValueError, match="recipe"):
        sdd.SDD(adata, recipe="gpu")


def test_recipe_survives_save_and_load(tmp_path):
    adata = make_counts_adata()
    model = sdd.SDD(adata, recipe="cpu", **TINY)
    model.train(2, execution=QUIET)
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m", adata)
    loaded.train(2, execution=QUIET)
    assert loaded.init_args_["recipe"] == "cpu" and loaded.train_args_["lr"] == 1e-3
