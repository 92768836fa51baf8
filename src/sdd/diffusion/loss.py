"""Training objective: x0-prediction with L2 loss and self-conditioning."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import CosineSchedule

__all__ = ["diffusion_loss"]

Denoiser = Callable[..., torch.Tensor]


def diffusion_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    schedule: CosineSchedule,
    *,
    cond: torch.Tensor | None = None,
    self_condition: bool = True,
    self_condition_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of the x0 prediction at a uniformly drawn time.

    With ``self_condition``, a fraction ``self_condition_prob`` of the steps first run
    the denoiser without self-conditioning and feed its detached estimate back as input
    (Chen et al., "Analog Bits"); the other steps feed zeros.

    Parameters
    ----------
    denoiser
        ``denoiser(x_t, t, self_cond, cond) -> x0_hat``.
    x0
        Clean (encoded) data, batch first.
    schedule
        Noise schedule.
    cond
        Optional conditioning passed through to the denoiser.
    self_condition_prob
        Probability of a self-conditioning step. ``0`` and ``1`` draw no random number
        (and read nothing back from the device).
    """
    n = x0.shape[0]
    t = torch.rand(n, device=x0.device, generator=generator)
    eps = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)
    alpha, sigma = schedule.alpha_sigma(t)
    shape = (n,) + (1,) * (x0.ndim - 1)
    x_t = alpha.view(shape) * x0 + sigma.view(shape) * eps

    self_cond = torch.zeros_like(x0)
    # probabilities 0 and 1 draw no coin: no device read-back, so the step can be
    # captured in a CUDA graph (the fast training path tosses the coin on the host)
    if self_condition and (
        self_condition_prob >= 1.0
        or (
            self_condition_prob > 0.0
            and torch.rand((), device=x0.device, generator=generator).item() < self_condition_prob
        )
    ):
        with torch.no_grad():
            self_cond = denoiser(x_t, t, self_cond, cond).clamp(-1.0, 1.0)
    x0_hat = denoiser(x_t, t, self_cond, cond)
    return torch.mean((x0_hat - x0) ** 2)
