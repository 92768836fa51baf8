"""Training paths: plain (reference) vs fast, data storages, devices, sampling splits."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.data.loader import RowBatches
from sdd.diffusion import CosineSchedule, GaussianDiffusion, diffusion_loss, sample
from sdd.nn import SkipMLP
from sdd.train import EMA, sample_split, train_denoiser
from sdd.train._device import resolve_devices, resolve_fast
from sdd.train._loop import _adam_options, _FastLoop

CPU = torch.device("cpu")


def _reference_loop(denoiser, ema, next_batch, schedule, *, max_steps, lr, generator, adam=None):
    """The training loop as it was before the fast path (the plain path must match it),
    with the plain path's Adam kernel (fused on the CPU where torch has it) unless
    ``adam`` gives other options."""
    options = _adam_options(CPU, fast=False) if adam is None else adam
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr, **options)
    denoiser.train()
    losses = []
    for _ in range(max_steps):
        x0, cond = next_batch()
        loss = diffusion_loss(denoiser, x0, schedule, cond=cond, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(denoiser)
        losses.append(loss.item())
    denoiser.eval()
    return np.asarray(losses)


def _data(n: int = 64, dim: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dim, generator=g) * 2 - 1


def _batches(data: torch.Tensor, batch: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)

    def next_batch():
        return data[rng.choice(len(data), batch, replace=False)], None

    return next_batch


def test_plain_path_matches_reference_loop():
    torch.manual_seed(0)
    net = SkipMLP(6, hidden=(16, 8), emb_dim=8)
    ref_net = copy.deepcopy(net)
    ema, ref_ema = EMA(net, 0.9), EMA(ref_net, 0.9)
    data, schedule = _data(), CosineSchedule()
    history, _ = train_denoiser(
        net, ema, _batches(data), GaussianDiffusion(schedule), max_steps=12, steps_per_epoch=4,
        loop_kwargs={"generator": torch.Generator().manual_seed(3)}, progress=False,
    )  # fmt: skip
    ref = _reference_loop(
        ref_net, ref_ema, _batches(data), schedule, max_steps=12, lr=2e-4,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    np.testing.assert_array_equal(history["loss"].to_numpy(), ref)
    for a, b in zip(net.parameters(), ref_net.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ema.model.parameters(), ref_ema.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert ema.n_updates == ref_ema.n_updates == 12
    assert history["epoch"].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_plain_path_adam_kernel_agrees_with_torch_default():
    """The CPU plain path runs the fused (or foreach) Adam: rounding-level differences
    from torch's default single-tensor Adam, and the state says which kernel ran."""
    torch.manual_seed(0)
    net = SkipMLP(6, hidden=(16, 8), emb_dim=8)
    ref_net = copy.deepcopy(net)
    data, schedule = _data(), CosineSchedule()
    history, state = train_denoiser(
        net, EMA(net, 0.9), _batches(data), GaussianDiffusion(schedule), max_steps=20,
        steps_per_epoch=4, lr=1e-3, loop_kwargs={"generator": torch.Generator().manual_seed(3)}, progress=False,
    )  # fmt: skip
    ref = _reference_loop(
        ref_net, EMA(ref_net, 0.9), _batches(data), schedule, max_steps=20, lr=1e-3,
        generator=torch.Generator().manual_seed(3), adam={"foreach": False},
    )  # fmt: skip
    options = _adam_options(CPU, fast=False)
    assert state["param_groups"][0]["fused"] == options.get("fused")
    assert state["param_groups"][0]["foreach"] == options.get("foreach")
    np.testing.assert_allclose(history["loss"].to_numpy(), ref, rtol=1e-4)
    for a, b in zip(net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _fast_loop(net, ema, next_batch, *, steps, after_step=None, log_every=5):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    loop = _FastLoop(
        net, net, ema, optimizer, GaussianDiffusion(), next_batch,
        start_step=0, after_step=after_step, cuda_graph=False, seed=0, max_steps=steps,
    )  # fmt: skip
    net.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPU autocast notes
        return loop.run(progress=False, log_every=log_every)


def test_fast_step_logic_on_cpu_trains_like_plain():
    """The fast loop's eager step (bf16 autocast, fused Adam, device-side EMA and losses)."""
    torch.manual_seed(0)
    data = _data(128, 6)
    net = SkipMLP(6, hidden=(32, 16), emb_dim=8)
    plain_net = copy.deepcopy(net)
    initial = [p.detach().clone() for p in net.parameters()]
    ema = EMA(net, 0.99)
    losses = _fast_loop(net, ema, _batches(data, 32), steps=60, log_every=7)
    assert losses.shape == (60,) and np.all(np.isfinite(losses))
    assert ema.n_updates == 60
    history, _ = train_denoiser(
        plain_net, EMA(plain_net, 0.99), _batches(data, 32), GaussianDiffusion(), max_steps=60,
        steps_per_epoch=4, lr=1e-3, loop_kwargs={"generator": torch.Generator().manual_seed(0)}, progress=False,
    )  # fmt: skip
    fast_end, plain_end = losses[-20:].mean(), history["loss"].to_numpy()[-20:].mean()
    assert fast_end < losses[:10].mean()  # it learns
    assert abs(fast_end - plain_end) < 0.5 * plain_end  # and about as well as the plain path
    # the EMA moved from the initial weights towards the trained ones, and lags them
    for start, average, trained in zip(
        initial, ema.model.parameters(), net.parameters(), strict=True
    ):
        assert not torch.equal(average, start)
        assert not torch.equal(average, trained)
        assert (average - trained).norm() < (start - trained).norm()


def test_fast_loop_hook_order_and_divergence():
    torch.manual_seed(0)
    net = SkipMLP(4, hidden=(8,), emb_dim=4)
    ema = EMA(net, 0.9)
    seen = []
    updates_at_hook = []

    def hook(step):
        seen.append(step)
        updates_at_hook.append(ema.n_updates)

    _fast_loop(net, ema, _batches(_data(32, 4), 8), steps=6, after_step=hook)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert updates_at_hook == [0, 1, 2, 3, 4, 5]  # the hook runs before the EMA update
    assert ema.n_updates == 6

    def bad_batch():
        return torch.full((8, 4), float("nan")), None

    with pytest.raises(FloatingPointError, match="diverged"):
        _fast_loop(net, EMA(net), bad_batch, steps=4, log_every=2)


def test_ema_update_on_device_matches_update():
    torch.manual_seed(0)
    net = SkipMLP(4, hidden=(8,), emb_dim=4)
    a, b = EMA(net, 0.95), EMA(net, 0.95)
    count = torch.tensor(0.0, dtype=torch.float64)
    for _ in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        a.update(net)
        b.update_on_device(net, count)
    assert int(count) == 30
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_ema_every_k_moves_every_kth_step_by_the_compounded_decay():
    torch.manual_seed(0)
    net = SkipMLP(4, hidden=(8,), emb_dim=4)
    every = EMA(net, 0.95, every=3)
    initial = [p.detach().clone() for p in net.parameters()]
    expected, carry = [p.clone() for p in initial], 1.0
    for step in range(7):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        carry *= every.current_decay()
        every.update(net)
        if (step + 1) % 3 == 0:  # by hand: ema + (1 - d_1 d_2 d_3) (w - ema)
            expected = [e + (1.0 - carry) * (p.detach() - e)
                        for e, p in zip(expected, net.parameters(), strict=True)]  # fmt: skip
            carry = 1.0
        for e, p in zip(expected, every.model.parameters(), strict=True):
            torch.testing.assert_close(p, e)
    assert every.n_updates == 7 and every.carry == pytest.approx(carry)


@pytest.mark.parametrize("every", [0, 1.5, True])
def test_ema_every_must_be_a_positive_integer(every):
    with pytest.raises(ValueError, match="every"):
        EMA(torch.nn.Linear(2, 2), every=every)


def test_self_condition_prob_one_draws_no_coin():
    net = SkipMLP(4, hidden=(8,), emb_dim=4)
    x0 = _data(8, 4)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    diffusion_loss(net, x0, CosineSchedule(), generator=g1, self_condition_prob=1.0)
    diffusion_loss(net, x0, CosineSchedule(), generator=g2, self_condition=False)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_resolve_fast_and_devices(monkeypatch):
    assert resolve_fast(None, "cpu") is False
    assert resolve_fast(False, "cpu") is False
    with pytest.raises(ValueError, match="CUDA"):
        resolve_fast(True, "cpu")
    with pytest.raises(TypeError):
        resolve_fast("yes", "cpu")
    monkeypatch.setenv("SDD_FAST", "0")
    assert resolve_fast(None, "cpu") is False
    monkeypatch.setenv("SDD_FAST", "maybe")
    with pytest.raises(ValueError, match="SDD_FAST"):
        resolve_fast(None, "cpu")
    monkeypatch.delenv("SDD_FAST")
    with pytest.raises(ValueError, match="names a GPU"):  # not silently ignored
        resolve_devices("cpu", [0, 1])
    with pytest.raises(ValueError, match="accelerator"):
        resolve_devices("tpu")
    with pytest.raises(ValueError, match="cuda"):
        train_denoiser(
            SkipMLP(4, hidden=(8,), emb_dim=4), EMA(SkipMLP(4, hidden=(8,), emb_dim=4)),
            lambda: (_data(8, 4), None), GaussianDiffusion(), max_steps=1, steps_per_epoch=1,
            loop_kwargs={"cuda_graph": True}, progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="log_every"):
        net = SkipMLP(4, hidden=(8,), emb_dim=4)
        train_denoiser(
            net, EMA(net), lambda: (_data(8, 4), None), GaussianDiffusion(), max_steps=1,
            steps_per_epoch=1, loop_kwargs={"log_every": 0}, progress=False,
        )  # fmt: skip


@pytest.mark.parametrize("kind", ["csr", "dense", "images"])
def test_row_batches_storages_serve_the_same_rows(kind):
    rng = np.random.default_rng(0)
    if kind == "images":
        matrix = rng.random((90, 2, 3, 3)).astype(np.float32)
    else:
        matrix = sp.random(90, 25, density=0.2, format="csr", random_state=0, dtype=np.float32)
        matrix = matrix.toarray() if kind == "dense" else matrix
    codes = rng.integers(0, 3, (90, 2))
    common = {"batch_size": 16, "device": CPU, "codes": codes, "random_state": 5}
    ref = RowBatches(matrix, **common)
    others = [RowBatches(matrix, data_on_device=True, **common)]
    if kind != "images":
        streamed = RowBatches(matrix, data_on_device=False, prefetch=True, fetch_rows=40, **common)
        streamed._sparse_payload = True  # the CSR -> device densification used on GPUs
        others.append(streamed)
    for _ in range(12):  # crosses epoch boundaries
        x, c = ref.next_batch()
        for other in others:
            y, d = other.next_batch()
            assert torch.equal(x, y) and torch.equal(c, d)
    for other in others:
        other.close()
    assert ref.steps_per_epoch == 5


def test_row_batches_ranks_share_epochs_and_validate():
    matrix = np.arange(40.0).reshape(20, 2)
    r0 = RowBatches(matrix, batch_size=4, device=CPU, rank=0, world_size=2)
    r1 = RowBatches(matrix, batch_size=4, device=CPU, rank=1, world_size=2)
    seen0 = np.concatenate([r0._next_index() for _ in range(2)])
    seen1 = np.concatenate([r1._next_index() for _ in range(2)])
    assert not set(seen0) & set(seen1)
    assert len(set(seen0) | set(seen1)) == 16 and r0.steps_per_epoch == 2
    with pytest.raises(ValueError, match="batch_size"):
        RowBatches(matrix, batch_size=0, device=CPU)
    with pytest.raises(ValueError, match="rank"):
        RowBatches(matrix, batch_size=4, device=CPU, rank=2, world_size=2)
    with pytest.raises(ValueError, match="codes"):
        RowBatches(matrix, batch_size=4, device=CPU, codes=np.zeros(3))
    with pytest.raises(TypeError, match="data_on_device"):
        RowBatches(matrix, batch_size=4, device=CPU, data_on_device="yes")


def test_sdd_train_storage_and_fast_switch_on_cpu():
    adata = make_counts_adata(n_cells=80, n_genes=12)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    histories = []
    for on_device in (None, True):
        torch.manual_seed(0)
        model = sdd.SDD(adata, **TINY)
        model.train(
            max_steps=6,
            batch_size=16,
            execution=QUIET.replace(data_on_device=on_device, accelerator="cpu"),
        )
        histories.append(model.history_["loss"].to_numpy())
    np.testing.assert_array_equal(*histories)
    assert model.train_args_["fast"] is False
    with pytest.raises(ValueError, match="CUDA"):
        model.train(
            max_steps=1, execution=QUIET.replace(fast=True, progress=False, accelerator="cpu")
        )
    with pytest.raises(ValueError, match="torchrun"):
        model.train(
            max_steps=1,
            execution=QUIET.replace(distributed=True, progress=False, accelerator="cpu"),
        )


def test_sample_split_over_two_devices_is_reproducible():
    torch.manual_seed(0)
    net = SkipMLP(6, hidden=(16,), emb_dim=8).eval()

    def make(m, cond):
        return lambda x, t, sc: m(x, t, sc, cond)

    kwargs = {"sampler": "ddim", "n_steps": 4}
    single = sample_split(
        net, GaussianDiffusion(), (10, 6), devices=[CPU],
        generator=torch.Generator().manual_seed(2), **kwargs,
    )  # fmt: skip
    plain = sample(
        make(net, None), (10, 6), CosineSchedule(), generator=torch.Generator().manual_seed(2),
        **kwargs,
    )  # fmt: skip
    assert torch.equal(single, plain)
    split = [
        sample_split(
            net,
            GaussianDiffusion(),
            (11, 6),
            devices=[CPU, CPU],
            generator=torch.Generator().manual_seed(2),
            **kwargs,
        )  # fmt: skip
        for _ in range(2)
    ]
    assert split[0].shape == (11, 6) and torch.equal(split[0], split[1])
    assert not torch.equal(split[0][:5], split[0][6:11])  # each share has its own noise


def test_bf16_sampling_on_cpu_matches_fp32_within_tolerance():
    torch.manual_seed(0)
    net = SkipMLP(8, hidden=(32, 16), emb_dim=8).eval()

    runs = {
        fast: sample_split(
            net,
            GaussianDiffusion(),
            (64, 8),
            devices=[CPU],
            fast=fast,
            sampler="ddim",
            n_steps=5,
            generator=torch.Generator().manual_seed(3),
        )  # fmt: skip
        for fast in (False, True)
    }
    assert runs[True].dtype == torch.float32
    assert not torch.equal(runs[True], runs[False])  # the fast path really ran in bf16
    assert (runs[True] - runs[False]).abs().max() < 0.1
    assert resolve_fast(True, CPU, allow_cpu=True) is True
    with pytest.raises(ValueError, match="CUDA"):
        resolve_fast(True, CPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_path_with_cuda_graphs_matches_plain_on_gpu():
    dev = torch.device("cuda")
    data = _data(512, 20).to(dev)
    rng = np.random.default_rng(0)

    def next_batch():
        return data[torch.as_tensor(rng.choice(512, 64, replace=False), device=dev)], None

    results = {}
    for fast in (False, True):
        torch.manual_seed(0)
        net = SkipMLP(20, hidden=(64, 32), emb_dim=16).to(dev)
        ema = EMA(net, 0.99)
        history, _ = train_denoiser(
            net, ema, next_batch, GaussianDiffusion(), max_steps=400, steps_per_epoch=8, lr=1e-3,
            loop_kwargs={"generator": torch.Generator(dev).manual_seed(0)}, progress=False,
            execution=sdd.Execution(fast=fast),
        )  # fmt: skip
        assert ema.n_updates == 400
        results[fast] = history["loss"].to_numpy()[-100:].mean()
    assert abs(results[True] - results[False]) < 0.15 * results[False]
