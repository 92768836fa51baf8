"""The diffusion engine: schedule, sparsity bits, loss and samplers (no AnnData)."""

from __future__ import annotations

import pytest
import torch

from sdd.diffusion import CosineSchedule, diffusion_loss, sample, sparsity
from sdd.nn import SkipMLP


def test_schedule_endpoints_and_variance_preserving():
    s = CosineSchedule(-15, 15)
    t = torch.linspace(0, 1, 11)
    logsnr = s.logsnr(t)
    assert logsnr[0] == pytest.approx(15, abs=1e-3)
    assert logsnr[-1] == pytest.approx(-15, abs=1e-3)
    assert torch.all(logsnr[1:] < logsnr[:-1])
    alpha, sigma = s.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))


def test_schedule_rejects_bad_range():
    with pytest.raises(ValueError, match="logsnr_min"):
        CosineSchedule(5, -5)


def test_sparsity_bits_round_trip():
    raw = torch.tensor([[0.0, 2.0, 0.0, 1.5]])
    z = sparsity.encode(raw * 2 - 1, raw != 0)
    assert z.tolist() == [[-1.0, 3.0, -1.0, 2.0, -1.0, 1.0, -1.0, 1.0]]
    masked, dense, bits = sparsity.decode(z)
    assert bits.tolist() == [[0.0, 1.0, 0.0, 1.0]]
    torch.testing.assert_close(masked, raw * 2 - 1)
    torch.testing.assert_close(dense, raw * 2 - 1)


def test_decode_masks_exactly_where_bits_are_negative():
    z = torch.randn(50, 20)
    masked, dense, bits = sparsity.decode(z, zero_value=-1.0)
    logits = z[:, 10:]
    assert torch.all((masked == -1.0)[logits <= 0])
    assert torch.equal(masked[logits > 0], dense[logits > 0])
    assert torch.equal(bits, (logits > 0).float())


def test_encode_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        sparsity.encode(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool))


def test_loss_decreases_on_fixed_data():
    torch.manual_seed(0)
    net = SkipMLP(8, hidden=(32, 16), emb_dim=16)
    x0 = torch.rand(64, 8) * 2 - 1
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    s = CosineSchedule()
    g = torch.Generator().manual_seed(0)
    first = diffusion_loss(net, x0, s, generator=g).item()
    for _ in range(150):
        loss = diffusion_loss(net, x0, s, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = sum(diffusion_loss(net, x0, s, generator=g).item() for _ in range(10)) / 10
    assert last < 0.5 * first


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_oracle_denoiser_recovers_target(sampler):
    """With a perfect x0 predictor every sampler must return the target exactly."""
    target = torch.tensor([[0.5, -1.0, 0.25]]).expand(4, 3)
    out = sample(
        lambda x, t, sc: target.clone(), (4, 3), CosineSchedule(), sampler=sampler, n_steps=10
    )
    torch.testing.assert_close(out, target)


def test_ddim_is_deterministic_ddpm_is_seeded():
    net = SkipMLP(6, hidden=(16,), emb_dim=8).eval()
    fn = lambda x, t, sc: net(x, t, sc)  # noqa: E731
    s = CosineSchedule()
    a = sample(fn, (5, 6), s, sampler="ddpm", n_steps=5, generator=torch.Generator().manual_seed(1))
    b = sample(fn, (5, 6), s, sampler="ddpm", n_steps=5, generator=torch.Generator().manual_seed(1))
    c = sample(fn, (5, 6), s, sampler="ddpm", n_steps=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0


def test_inpainting_keeps_known_values():
    net = SkipMLP(6, hidden=(16,), emb_dim=8).eval()
    values = torch.full((3, 6), 0.3)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[:, :2] = True
    out = sample(
        lambda x, t, sc: net(x, t, sc), (3, 6), CosineSchedule(), n_steps=4, known=(values, mask)
    )
    assert torch.all(out[:, :2] == 0.3)


@pytest.mark.parametrize(
    "kwargs,match", [({"sampler": "euler"}, "sampler"), ({"n_steps": 0}, "n_steps")]
)
def test_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample(lambda x, t, sc: x, (2, 2), CosineSchedule(), **kwargs)


def test_mlp_param_count_near_paper_at_1000_genes():
    n = sum(p.numel() for p in SkipMLP(2000).parameters())
    assert 5e6 <= n <= 8e6
    n_plain = sum(p.numel() for p in SkipMLP(1000).parameters())
    assert n_plain < n
