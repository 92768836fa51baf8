"""Sparse-to-sparse training: masks (Static, RigL, MagRan), EMA, save/load, FLOPs."""

from __future__ import annotations

import io

import pytest
import torch
from conftest import QUIET, TINY, make_counts_adata
from torch import nn

import sdd
from sdd.diffusion import GaussianDiffusion
from sdd.nn import SkipMLP
from sdd.sparse import WeightMasks
from sdd.sparse.masks import count_flops, make_masks, weight_report
from sdd.train import EMA, train_denoiser


def _net(seed: int = 0) -> SkipMLP:
    torch.manual_seed(seed)
    return SkipMLP(10, hidden=(48, 24), emb_dim=16)


def _counts(masks: WeightMasks) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masks.masks.items()}


def _train(net, masks, ema, steps, record=None, seed=0):
    torch.manual_seed(seed)
    data = torch.randn(64, 10)
    gen = torch.Generator().manual_seed(seed)
    hook = masks.hook(net, ema)

    def after_step(step):
        before = {n: m.clone() for n, m in masks.masks.items()}
        hook(step)
        if record is not None:
            changed = any(not torch.equal(before[n], masks.masks[n]) for n in before)
            record.append(
                (step, changed, _counts(masks), masks.is_applied(net), masks.is_applied(ema.model))
            )

    def next_batch():
        return data[torch.randint(0, 64, (16,), generator=gen)], None

    train_denoiser(
        net,
        ema,
        next_batch,
        GaussianDiffusion(),
        max_steps=steps,
        steps_per_epoch=4,
        loop_kwargs={"after_step": after_step, "generator": gen},
        progress=False,
    )


def test_initial_masks_have_the_target_sparsity_and_dense_ends():
    net = _net()
    head_before = net.head.weight.detach().clone()
    masks = WeightMasks(net, 0.9)
    assert "down.0.linear.weight" not in masks.masks and "head.weight" not in masks.masks
    assert torch.equal(net.head.weight, head_before)  # dense layers untouched
    for name, mask in masks.masks.items():
        assert int(mask.sum()) == max(1, round(0.1 * mask.numel())), name
    assert masks.sparsity == pytest.approx(0.9, abs=0.005)
    assert masks.is_applied(net)
    weights = dict(net.named_parameters())
    for name, mask in masks.masks.items():
        assert torch.count_nonzero(weights[name]) <= int(mask.sum())


def test_erk_keeps_total_sparsity_and_makes_large_layers_sparser():
    net = SkipMLP(40, hidden=(128, 16), emb_dim=8)
    masks = WeightMasks(net, 0.8, distribution="erk", dense_layers=())
    assert masks.sparsity == pytest.approx(0.8, abs=0.01)
    density = {n: m.float().mean().item() for n, m in masks.masks.items()}
    assert density["down.0.linear.weight"] < density["time.mlp.0.weight"]


def test_dense_layer_options():
    net = _net()
    all_sparse = WeightMasks(net, 0.5, dense_layers=())
    assert "head.weight" in all_sparse.masks and "down.0.linear.weight" in all_sparse.masks
    named = WeightMasks(_net(), 0.5, dense_layers=("head", "time.mlp.0.weight"))
    assert "head.weight" not in named.masks and "time.mlp.0.weight" not in named.masks
    assert "down.0.linear.weight" in named.masks


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"sparsity": 1.0}, ValueError),
        ({"sparsity": -0.1}, ValueError),
        ({"method": "snip"}, ValueError),
        ({"update_interval": 0}, ValueError),
        ({"drop_fraction": 1.5}, ValueError),
        ({"dense_layers": ("nope",)}, ValueError),
        ({"distribution": "normal"}, ValueError),
        ({"sparsity": "0.5"}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    kwargs = {"sparsity": 0.5, **kwargs}
    with pytest.raises(error):
        WeightMasks(_net(), **kwargs)


def test_bad_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        WeightMasks("net", 0.5)
    with pytest.raises(ValueError, match="no Linear"):
        WeightMasks(nn.LayerNorm(4), 0.5)
    with pytest.raises(ValueError, match="nothing to sparsify"):
        WeightMasks(nn.Linear(4, 4), 0.5)  # its only layer is both first and last


def test_static_masks_never_change_and_stay_exact_through_training():
    net = _net()
    ema = EMA(net, 0.9)
    masks = make_masks(net, ema, 0.8, sparse_method="static", sparse_update_interval=3)
    start = {n: m.clone() for n, m in masks.masks.items()}
    record = []
    _train(net, masks, ema, 12, record)
    assert not any(changed for _, changed, *_ in record)
    assert all(on_net and on_ema for *_, on_net, on_ema in record)
    assert all(torch.equal(start[n], masks.masks[n]) for n in start)
    # the EMA is exactly zero where the model is masked, and non-zero elsewhere
    ema_w = dict(ema.model.named_parameters())
    for name, mask in masks.masks.items():
        assert not ema_w[name][~mask].any()
        assert ema_w[name][mask].abs().sum() > 0


@pytest.mark.parametrize("method", ["rigl", "magran"])
def test_dynamic_masks_change_at_the_interval_with_constant_sparsity(method):
    net = _net()
    ema = EMA(net, 0.9)
    masks = WeightMasks(net, 0.7, method=method, update_interval=4, drop_fraction=0.5)
    masks.apply_(ema.model)
    masks.plan(0, 16)  # updates stop at 75%: step 12
    counts = _counts(masks)
    record = []
    _train(net, masks, ema, 16, record)
    changed_at = [step for step, changed, *_ in record if changed]
    assert changed_at == [4, 8]
    assert all(c == counts for _, _, c, _, _ in record)  # per-layer counts never move
    assert all(on_net and on_ema for *_, on_net, on_ema in record)
    assert masks.n_updates == 2 and masks.sparsity == pytest.approx(0.7, abs=0.005)


def test_drop_fraction_decays_with_a_cosine():
    masks = WeightMasks(_net(), 0.5, method="rigl", drop_fraction=0.4, update_end=100)
    assert masks.drop_fraction_at(0) == pytest.approx(0.4)
    assert masks.drop_fraction_at(50) == pytest.approx(0.2)
    assert masks.drop_fraction_at(100) == 0.0 and not masks.update_due(100)
    masks.plan(0, 1000)  # an explicit update_end is kept
    assert masks.update_end == 100


def test_rigl_drops_small_weights_and_regrows_by_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Linear(6, 6), nn.Linear(6, 3))
    masks = WeightMasks(net, 0.5, method="rigl", update_interval=1, drop_fraction=0.5)
    w = net[1].weight
    mask = masks.masks["1.weight"]
    with torch.no_grad():
        w[mask] = torch.arange(1, int(mask.sum()) + 1, dtype=w.dtype)  # magnitudes 1..18
    w.grad = torch.zeros_like(w)
    inactive = (~mask).nonzero()
    favourite = tuple(inactive[0].tolist())
    w.grad[favourite] = 10.0
    w.grad[tuple(inactive[1].tolist())] = 5.0
    smallest = tuple((w.detach().abs() == 1).nonzero()[0].tolist())
    moved = masks.update(net, step=1)
    new = masks.masks["1.weight"]
    assert moved == 9 and int(new.sum()) == 18
    assert bool(new[favourite]) and not bool(new[smallest])
    assert float(w.detach()[favourite]) == 0.0  # regrown weights start at zero


def test_masks_save_and_load_with_weights_only():
    net = _net()
    masks = WeightMasks(net, 0.6, method="magran", update_interval=2)
    masks.update(net, 2)
    buffer = io.BytesIO()
    torch.save(masks.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = WeightMasks(_net(1), 0.6, method="magran", update_interval=2, random_state=9)
    other.load_state_dict(state)
    assert all(torch.equal(other.masks[n], masks.masks[n]) for n in masks.masks)
    assert other.n_updates == 1 and other.last_update_step == 2
    # the random regrowth continues identically after loading
    a, b = _net(2), _net(2)
    masks.update(a, 4)
    other.update(b, 4)
    assert all(torch.equal(other.masks[n], masks.masks[n]) for n in masks.masks)
    wrong = WeightMasks(SkipMLP(10, hidden=(48, 20), emb_dim=16), 0.6)
    with pytest.raises(ValueError, match="shape"):
        wrong.load_state_dict(state)
    with pytest.raises(ValueError, match="Corrupt"):
        other.load_state_dict({"masks": state["masks"]})


def test_flops_and_parameter_report():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.zeros(1, 8)
    dense, sparse = count_flops(net, (x,))
    assert dense == sparse == 2 * (8 * 16 + 16 * 16 + 16 * 4)
    masks = WeightMasks(net, 0.75, method="rigl", update_interval=10)  # middle layer only
    report = masks.report(net, (x,), batch_size=32)
    active = int(masks.masks["2.weight"].sum())
    assert active == 64
    assert report["flops_forward"] == 2 * (8 * 16 + active + 16 * 4)
    assert report["flops_forward_dense"] == dense
    assert report["n_params_nonzero"] == sum(p.numel() for p in net.parameters()) - (256 - 64)
    assert report["flops_train_step"] < report["flops_train_step_dense"]
    assert weight_report(net, (x,))["method"] == "dense"
    # a convolution counts its output positions
    conv = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 1, 1)
    )
    d, _ = count_flops(conv, (torch.zeros(1, 1, 5, 5),))
    assert d == 2 * 25 * (4 * 9 + 4 * 4 * 9 + 4)
    with pytest.raises(ValueError, match="batch_size"):
        weight_report(net, (x,), batch_size=0)


def test_make_masks_is_none_when_dense():
    net = _net()
    assert make_masks(net, None, 0.0) is None
    with pytest.raises(ValueError, match="sparse method"):
        make_masks(net, None, 0.0, sparse_method="foo")
    with pytest.raises(TypeError):
        make_masks(net, None, "0.5")


@pytest.mark.parametrize("method", ["static", "rigl", "magran"])
def test_sdd_model_trains_sparse_and_keeps_masks_through_save_load(method, tmp_path):
    data = make_counts_adata(n_cells=60, n_genes=10)
    sdd.SDD.setup_anndata(data)
    model = sdd.SDD(
        data, weight_sparsity=0.9, sparse_method=method, sparse_update_interval=4, **TINY
    )
    model.train(max_steps=12, batch_size=16, execution=QUIET)
    masks = model.weight_masks_
    assert masks.n_updates == (0 if method == "static" else 2)  # steps 4 and 8 (< 9 = 75%)
    assert masks.sparsity == pytest.approx(0.9, abs=0.005)
    assert masks.is_applied(model.module) and masks.is_applied(model.ema_.model)
    report = model.weight_report(batch_size=16)
    assert report["n_params_nonzero"] < report["n_params"]
    assert report["flops_forward"] < report["flops_forward_dense"]
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m")
    assert loaded.init_args_["weight_sparsity"] == 0.9
    for name, mask in masks.masks.items():
        assert torch.equal(loaded.weight_masks_.masks[name].cpu(), mask.cpu())
    assert loaded.weight_masks_.is_applied(loaded.ema_.model)
    kw = {"sampler": "ddim", "n_steps": 4, "execution": QUIET}
    assert (loaded.generate(8, **kw).X != model.generate(8, **kw).X).nnz == 0
    # continuing training keeps the sparsity
    loaded._attach(data)
    loaded.train(max_steps=4, batch_size=16, execution=QUIET)
    assert loaded.weight_masks_.is_applied(loaded.module)
    assert loaded.weight_masks_.sparsity == pytest.approx(0.9, abs=0.005)


def test_dense_sdd_has_no_masks():
    data = make_counts_adata(n_cells=30, n_genes=6)
    model = sdd.SDD(data, **TINY)
    assert model.weight_masks_ is None and "weight_sparsity" not in model.init_args_
    assert model.weight_report()["method"] == "dense"
    with pytest.raises(ValueError, match="sparsity"):
        sdd.SDD(data, weight_sparsity=1.0, **TINY)
