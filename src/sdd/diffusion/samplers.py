"""DDPM (ancestral), DDIM and DPM-Solver++(2M) samplers for continuous-time x0-prediction models.

The samplers know nothing about networks, genes or pixels: they call
``denoise(x_t, t, self_cond) -> x0_hat`` on a uniform time grid from 1 to 0 and return
the final clean estimate. Self-conditioning feeds the previous step's estimate back in.

``"dpm++2m"`` is the multistep second-order solver of the probability-flow ODE in data
prediction form (Lu et al. 2022, "DPM-Solver++", Algorithm 2): its first step is DDIM's,
every later one extrapolates the clean estimate linearly in log-SNR from the last two
network calls, so it reaches DDIM's accuracy with far fewer steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from .schedule import CosineSchedule

__all__ = ["sample", "SAMPLERS"]

SAMPLERS = ("ddpm", "ddim", "dpm++2m")
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _ddpm_step(x_t, x0_hat, alpha_t, sigma_t, alpha_s, sigma_s, generator):
    # Posterior q(x_s | x_t, x0) of the variance-preserving process (Kingma et al. 2021).
    alpha_ts = alpha_t / alpha_s
    sigma2_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
    mean = (alpha_ts * sigma_s**2 / sigma_t**2) * x_t + (alpha_s * sigma2_ts / sigma_t**2) * x0_hat
    std = (sigma2_ts * sigma_s**2 / sigma_t**2).clamp_min(0).sqrt()
    noise = torch.randn(x_t.shape, device=x_t.device, dtype=x_t.dtype, generator=generator)
    return mean + std * noise


def _ddim_step(x_t, x0_hat, alpha_t, sigma_t, alpha_s, sigma_s, eta=None, generator=None):
    # Song et al. 2021, eq. 12: eta = 0 is deterministic, eta = 1 the DDPM posterior.
    eps_hat = (x_t - alpha_t * x0_hat) / sigma_t
    if eta is None:
        return alpha_s * x0_hat + sigma_s * eps_hat
    ddpm_std = (sigma_s / sigma_t) * (1 - alpha_t**2 / alpha_s**2).clamp_min(0).sqrt()
    std = eta * ddpm_std
    noise = torch.randn(x_t.shape, device=x_t.device, dtype=x_t.dtype, generator=generator)
    return alpha_s * x0_hat + (sigma_s**2 - std**2).clamp_min(0).sqrt() * eps_hat + std * noise


def _dpmpp_2m_step(x_t, x0_hat, previous, alpha_t, sigma_t, alpha_s, sigma_s):
    # Lu et al. 2022, DPM-Solver++(2M): ``previous`` = (x0 estimate, step in log-SNR) of
    # the last step, or None (first-order, = DDIM). h = lambda_s - lambda_t > 0.
    h = torch.log(alpha_s / sigma_s) - torch.log(alpha_t / sigma_t)
    estimate = x0_hat
    if previous is not None:
        x0_last, h_last = previous
        r = h_last / h
        estimate = (1 + 1 / (2 * r)) * x0_hat - (1 / (2 * r)) * x0_last
    return (sigma_s / sigma_t) * x_t - alpha_s * torch.expm1(-h) * estimate, (x0_hat, h)


def time_grid(
    schedule: CosineSchedule, n_steps: int, sampler: str, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The ``n_steps + 1`` times of a sampler, from 1 to 0; the network is called at the
    first ``n_steps``. DDPM and DDIM: uniform in ``t`` (the last call at ``t = 1 / n``).
    DPM-Solver++: uniform in log-SNR over the schedule's range, so that its last call
    sees the cleanest input (``t = 0``) whatever the number of steps."""
    if sampler != "dpm++2m" or n_steps < 2:
        return torch.linspace(1.0, 0.0, n_steps + 1, device=device)
    logsnr = torch.linspace(schedule.logsnr_min, schedule.logsnr_max, n_steps, device=device)
    return torch.cat([schedule.time(logsnr), torch.zeros(1, device=device)])


@torch.no_grad()
def sample(
    denoise: DenoiseFn,
    shape: tuple[int, ...],
    schedule: CosineSchedule,
    *,
    sampler: Literal["ddpm", "ddim", "dpm++2m"] = "ddpm",
    n_steps: int = 1000,
    self_condition: bool = True,
    clip: bool = True,
    known: tuple[torch.Tensor, torch.Tensor] | None = None,
    eta: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    step_callback: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run the reverse process from pure noise and return the final x0 estimate.

    Parameters
    ----------
    denoise
        ``denoise(x_t, t, self_cond) -> x0_hat`` with ``t`` of shape ``(batch,)``.
    shape
        Shape of the generated batch, batch first.
    schedule
        Noise schedule used in training.
    sampler
        ``"ddpm"`` (ancestral, stochastic), ``"ddim"`` (deterministic, eta = 0) or
        ``"dpm++2m"`` (deterministic, second order: good in 10-25 steps).
    n_steps
        Number of reverse steps on a uniform grid of ``t`` from 1 to 0.
    self_condition
        Feed the previous estimate back into the denoiser.
    clip
        Clip x0 estimates to [-1, 1] (the data range).
    eta
        DDIM's noise level (Song et al. 2021): ``None`` or 0 deterministic, 1 the DDPM
        posterior (same draws from ``generator``); a float or a tensor broadcastable to
        one example (e.g. a different level per feature). Ignored by ``"ddpm"``.
    known
        Optional ``(values, mask)`` for inpainting: after each step, positions where
        ``mask`` is true are replaced by ``values`` noised to the current time
        (RePaint-style replacement), and the output keeps ``values`` there exactly.
    generator
        Random number generator (on ``device``) for reproducible samples.
    step_callback
        Called after every network evaluation (e.g. ``bar.update`` of a progress bar,
        which may span several batches).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    if eta is not None:
        eta = torch.as_tensor(eta, dtype=torch.float32, device=device)
        if eta.numel() == 0 or not bool(((eta >= 0) & (eta <= 1)).all()):
            raise ValueError("eta must lie in [0, 1] (0: DDIM, 1: the DDPM posterior).")
    n_steps = int(n_steps)
    n = shape[0]
    x = torch.randn(shape, device=device, generator=generator)
    x0_hat = torch.zeros(shape, device=device)
    times = time_grid(schedule, n_steps, sampler, device)

    previous = None  # DPM-Solver++(2M): the last clean estimate and log-SNR step
    for i in range(n_steps):
        t, s = times[i], times[i + 1]
        self_cond = x0_hat if self_condition else torch.zeros_like(x0_hat)
        x0_hat = denoise(x, t.expand(n), self_cond)
        if clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        if step_callback is not None:
            step_callback()
        if i == n_steps - 1:
            break
        alpha_t, sigma_t = (v.view(()) for v in schedule.alpha_sigma(t))
        alpha_s, sigma_s = (v.view(()) for v in schedule.alpha_sigma(s))
        if sampler == "ddpm":
            x = _ddpm_step(x, x0_hat, alpha_t, sigma_t, alpha_s, sigma_s, generator)
        elif sampler == "dpm++2m":
            x, previous = _dpmpp_2m_step(x, x0_hat, previous, alpha_t, sigma_t, alpha_s, sigma_s)
        else:
            x = _ddim_step(x, x0_hat, alpha_t, sigma_t, alpha_s, sigma_s, eta, generator)
        if known is not None:
            values, mask = known
            noise = torch.randn(shape, device=device, generator=generator)
            x = torch.where(mask, alpha_s * values + sigma_s * noise, x)

    if known is not None:
        values, mask = known
        x0_hat = torch.where(mask, values, x0_hat)
    return x0_hat
