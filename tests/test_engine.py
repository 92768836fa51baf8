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


@pytest.mark.parametrize("dim", [1, 2])
def test_encode_fills_zeros_and_reuses_a_fitting_buffer(dim):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 5) * (torch.rand(4, 3, 5) > 0.5)
    nonzero = x != 0
    fill = torch.tensor([0.25]).expand_as(x)
    plain = torch.cat([torch.where(nonzero, x, fill), nonzero.float() * 2 - 1], dim=dim)
    first = sparsity.encode(x, nonzero, dim=dim, fill=fill)
    assert torch.equal(first, plain)
    y = torch.rand_like(x)
    again = sparsity.encode(y, y != 0, dim=dim, reuse=first)
    assert again.data_ptr() == first.data_ptr()  # the same memory, new contents
    assert torch.equal(again, torch.cat([y, (y != 0).float() * 2 - 1], dim=dim))
    other = sparsity.encode(x[:2], nonzero[:2], dim=dim, reuse=first)  # does not fit
    assert other.data_ptr() != first.data_ptr() and other.shape[0] == 2


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


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_oracle_denoiser_recovers_target(sampler):
    """With a perfect x0 predictor every sampler must return the target exactly."""
    target = torch.tensor([[0.5, -1.0, 0.25]]).expand(4, 3)
    out = sample(
        lambda x, t, sc: target.clone(), (4, 3), CosineSchedule(), sampler=sampler, n_steps=10
    )
    torch.testing.assert_close(out, target)


def _gaussian_posterior_mean(schedule, mu, std):
    """E[x0 | x_t] for x0 ~ N(mu, std^2) per coordinate: the exact x0 denoiser."""

    def denoise(x, t, self_cond):
        alpha, sigma = (v.view(-1, 1) for v in schedule.alpha_sigma(t))
        gain = alpha * std**2 / (alpha**2 * std**2 + sigma**2)
        return mu + gain * (x - alpha * mu)

    return denoise


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_samplers_draw_a_gaussian_target_with_its_analytic_denoiser(sampler):
    """A wrong posterior mean/variance (DDPM) or a wrong eps estimate (DDIM) fails this."""
    s = CosineSchedule()
    mu, std = torch.tensor([0.2, -0.3]), torch.tensor([0.25, 0.1])
    out = sample(
        _gaussian_posterior_mean(s, mu, std), (8000, 2), s, sampler=sampler, n_steps=500,
        self_condition=False, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(out.mean(0), mu, atol=0.012, rtol=0)
    torch.testing.assert_close(out.std(0), std, atol=0.0, rtol=0.05)


def test_dpm_solver_reaches_ddim_500_in_few_steps():
    """With the exact denoiser, DPM-Solver++(2M) in 10 steps lands where DDIM does in 500
    (the ODE's end point, deterministic from the same noise); DDIM in 10 steps does not."""
    s = CosineSchedule()
    mu, std = torch.tensor([0.2, -0.3]), torch.tensor([0.25, 0.1])

    def run(sampler, n_steps):
        return sample(
            _gaussian_posterior_mean(s, mu, std), (4000, 2), s, sampler=sampler,
            n_steps=n_steps, self_condition=False, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip

    reference = run("ddim", 500)
    fast = (run("dpm++2m", 10) - reference).abs().mean()
    slow = (run("ddim", 10) - reference).abs().mean()
    assert fast < 0.2 * slow
    torch.testing.assert_close(run("dpm++2m", 10).std(0), std, atol=0.0, rtol=0.05)


def test_ddim_eta_one_is_ddpm_and_eta_mixes_per_feature():
    """eta = 1 is the DDPM posterior draw for draw; a per-feature eta gives each feature
    its own sampler (0: the deterministic DDIM path)."""
    net = SkipMLP(6, hidden=(16,), emb_dim=8).eval()
    fn = lambda x, t, sc: net(x, t, sc)  # noqa: E731
    s = CosineSchedule()

    def run(sampler, eta=None):
        gen = torch.Generator().manual_seed(5)
        return sample(fn, (4, 6), s, sampler=sampler, n_steps=6, generator=gen, eta=eta)

    torch.testing.assert_close(run("ddim", 1.0), run("ddpm"), atol=1e-5, rtol=0)
    assert torch.equal(run("ddim", 0.0), run("ddim"))
    mixed = run("ddim", torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    assert not torch.equal(mixed[:, 3:], run("ddim")[:, 3:])
    assert not torch.equal(mixed, run("ddim", 1.0))
    for bad in (1.5, -0.1, torch.tensor([0.0, 2.0])):
        with pytest.raises(ValueError, match="eta"):
            run("ddim", bad)


def test_intermediate_eta_draws_the_gaussian_target():
    s = CosineSchedule()
    mu, std = torch.tensor([0.2, -0.3]), torch.tensor([0.25, 0.1])
    out = sample(
        _gaussian_posterior_mean(s, mu, std), (8000, 2), s, sampler="ddim", n_steps=500,
        eta=0.5, self_condition=False, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(out.mean(0), mu, atol=0.012, rtol=0)
    torch.testing.assert_close(out.std(0), std, atol=0.0, rtol=0.05)


def test_ddpm_step_is_the_closed_form_posterior():
    from sdd.diffusion.samplers import _ddpm_step

    s = CosineSchedule()
    (a_t, s_t), (a_s, s_s) = (
        tuple(v.view(()) for v in s.alpha_sigma(torch.tensor(t))) for t in (0.6, 0.5)
    )
    x_t, x0 = torch.full((200000, 1), 0.4), torch.full((200000, 1), -0.2)
    step = _ddpm_step(x_t, x0, a_t, s_t, a_s, s_s, torch.Generator().manual_seed(0))
    # q(x_s | x_t, x0) by Bayes on x_s ~ N(a_s x0, s_s^2), x_t | x_s ~ N((a_t/a_s) x_s, s_ts^2)
    a_ts = a_t / a_s
    s2_ts = s_t**2 - a_ts**2 * s_s**2
    precision = 1 / s_s**2 + a_ts**2 / s2_ts
    mean = (a_s * (-0.2) / s_s**2 + a_ts * 0.4 / s2_ts) / precision
    assert float(step.mean()) == pytest.approx(float(mean), abs=4e-3)
    assert float(step.std()) == pytest.approx(float(precision**-0.5), rel=0.01)


def test_ddim_is_deterministic_ddpm_is_seeded():
    net = SkipMLP(6, hidden=(16,), emb_dim=8).eval()
    fn = lambda x, t, sc: net(x, t, sc)  # noqa: E731
    s = CosineSchedule()

    def run(sampler, seed, **kw):
        gen = torch.Generator().manual_seed(seed)
        return sample(fn, (5, 6), s, sampler=sampler, n_steps=5, generator=gen, **kw)

    assert torch.equal(run("ddpm", 1), run("ddpm", 1)) and not torch.equal(
        run("ddpm", 1), run("ddpm", 2)
    )
    # DDIM's only randomness is the starting noise: the same x_T gives the same output
    # whatever generator state follows, so two generators seeded alike but advanced
    # differently after the first draw still agree
    assert torch.equal(run("ddim", 3), run("ddim", 3))
    assert not torch.equal(run("ddim", 3), run("ddim", 4))
    assert run("ddpm", 1).abs().max() <= 1.0


def test_inpainting_replaces_known_coordinates_at_every_step():
    s = CosineSchedule()
    seen = []

    def denoise(x, t, sc):
        seen.append((float(t[0]), x[:, 0].clone(), x[:, 1].clone()))
        return torch.zeros_like(x)

    values = torch.full((4000, 2), 0.9)
    mask = torch.zeros(4000, 2, dtype=torch.bool)
    mask[:, 0] = True
    out = sample(denoise, (4000, 2), s, n_steps=6, known=(values, mask),
                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.all(out[:, 0] == 0.9) and torch.all(out[:, 1] == 0.0)
    for t, known, free in seen[1:]:  # inputs after the first step: x_t of the known values
        alpha, sigma = (float(v) for v in s.alpha_sigma(torch.tensor(t)))
        assert float(known.mean()) == pytest.approx(alpha * 0.9, abs=0.05)
        assert float(known.std()) == pytest.approx(sigma, rel=0.1)
        assert abs(float(free.mean())) < 0.05  # the free coordinate follows the denoiser (0)


def test_blackout_process_implements_the_protocol():
    from sdd.diffusion import BlackoutDiffusion, DiffusionProcess, GaussianDiffusion, blackout

    process = BlackoutDiffusion(blackout.BlackoutSchedule(20), torch.full((3,), 5.0), torch.ones(3))
    assert isinstance(process, DiffusionProcess) and isinstance(
        GaussianDiffusion(), DiffusionProcess
    )
    net = SkipMLP(3, hidden=(8,), emb_dim=4)
    x0 = torch.randint(0, 5, (16, 3)).float()
    loss = process.loss(net, x0, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and float(loss.detach()) >= 0
    out = process.sample(process.denoiser(net, None, 0.0), (6, 3), n_steps=5)
    assert torch.equal(out, out.round()) and float(out.min()) >= 0 and float(out.max()) <= 5
    with pytest.raises(ValueError, match="inpainting"):
        process.sample(process.denoiser(net, None, 0.0), (6, 3), known=(x0, x0 > 0))


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


def test_adaptive_layernorm_starts_unconditioned_and_learns_the_condition():
    torch.manual_seed(0)
    net = SkipMLP(4, hidden=(8, 4), emb_dim=8, n_categories=[3], conditioning="adaln")
    x, t = torch.randn(6, 4), torch.rand(6)
    codes = torch.tensor([[0], [1], [2], [0], [1], [2]])

    def spread() -> float:
        with torch.no_grad():
            out = net(x[:1].expand(3, 4), t[:1].expand(3), torch.zeros(3, 4), codes[:3])
        return float((out - out[0]).abs().max())

    assert spread() == 0.0  # zero-initialised scale and shift: the label has no effect yet
    target = codes.float().expand(6, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x, t, torch.zeros(6, 4), codes), target).backward()
        opt.step()
    assert spread() > 0.1


def test_mlp_rejects_an_unknown_conditioning():
    with pytest.raises(ValueError, match="conditioning"):
        SkipMLP(4, hidden=(8,), conditioning="film")
