"""Training objective: L2 loss on the x0 (or v) prediction, with self-conditioning.

Two parameterisations of the network output ``f``:

- ``"x0"`` (the SDD paper): ``f`` is the clean-data estimate, loss ``|f - x0|^2``.
- ``"v-data"``: ``"v"`` for the data half and ``"x0"`` for the sparsity-bit half of an
  SDD encoding ``[x, sb]`` (split along axis 1, :mod:`sdd.diffusion.sparsity`).
- ``"v"`` (Salimans & Ho 2022): ``f`` estimates ``v = alpha eps - sigma x0`` and the
  clean estimate is ``alpha x_t - sigma f``; loss ``|f - v|^2``. At low noise the clean
  estimate is then mostly the input ``x_t`` itself, so a small or briefly trained network
  no longer has to reproduce every feature of ``x_t`` through its hidden layers.

Either way the denoiser the samplers see returns the clean estimate.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import CosineSchedule

__all__ = ["diffusion_loss", "PREDICTIONS", "to_x0"]

PREDICTIONS = ("x0", "v", "v-data")

Denoiser = Callable[..., torch.Tensor]


def to_x0(
    out: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, prediction: str
) -> torch.Tensor:
    """Clean-data estimate from the network output ``out`` (``alpha``/``sigma`` broadcast)."""
    if prediction == "x0":
        return out
    return _v_where_asked(alpha * x_t - sigma * out, out, prediction)


def _target(
    x0: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, prediction: str
) -> torch.Tensor:
    if prediction == "x0":
        return x0
    return _v_where_asked(alpha * eps - sigma * x0, x0, prediction)


def _v_where_asked(v_side: torch.Tensor, x0_side: torch.Tensor, prediction: str) -> torch.Tensor:
    """``v_side`` for ``"v"``; its data half with ``x0_side``'s bit half for ``"v-data"``."""
    if prediction == "v":
        return v_side
    return torch.cat([v_side.chunk(2, dim=1)[0], x0_side.chunk(2, dim=1)[1]], dim=1)


def diffusion_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    schedule: CosineSchedule,
    *,
    cond: torch.Tensor | None = None,
    self_condition: bool = True,
    self_condition_prob: float = 0.5,
    generator: torch.Generator | None = None,
    prediction: str = "x0",
) -> torch.Tensor:
    """Mean squared error of the x0 (or v) prediction at a uniformly drawn time.

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
    prediction
        ``"x0"``, ``"v"`` or ``"v-data"``: what the denoiser's output estimates (see the
        module notes).
    """
    n = x0.shape[0]
    t = torch.rand(n, device=x0.device, generator=generator)
    eps = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)
    alpha, sigma = schedule.alpha_sigma(t)
    shape = (n,) + (1,) * (x0.ndim - 1)
    alpha, sigma = alpha.view(shape), sigma.view(shape)
    x_t = torch.addcmul(alpha * x0, sigma, eps)

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
            out = denoiser(x_t, t, self_cond, cond)
            self_cond = to_x0(out, x_t, alpha, sigma, prediction).clamp_(-1.0, 1.0)
    out = denoiser(x_t, t, self_cond, cond)
    # one fused pass (no difference and square tensors of the minibatch's size)
    return torch.nn.functional.mse_loss(out, _target(x0, eps, alpha, sigma, prediction))
