"""Noise schedules for continuous-time Gaussian diffusion.

Time ``t`` runs from 0 (data) to 1 (noise). A schedule is described by its log
signal-to-noise ratio ``logsnr(t)``; for the variance-preserving process used here
``alpha(t)^2 = sigmoid(logsnr)`` and ``sigma(t)^2 = sigmoid(-logsnr)``, so that
``x_t = alpha(t) x_0 + sigma(t) eps``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CosineSchedule"]


class CosineSchedule:
    """Cosine schedule in log-SNR form (Nichol & Dhariwal 2021; Kingma et al. 2021).

    ``logsnr(t) = -2 log tan(a t + b)``, with ``a`` and ``b`` chosen so that
    ``logsnr(0) = logsnr_max`` and ``logsnr(1) = logsnr_min``.

    Parameters
    ----------
    logsnr_min, logsnr_max
        Log-SNR at ``t = 1`` and ``t = 0``.
    """

    def __init__(self, logsnr_min: float = -15.0, logsnr_max: float = 15.0) -> None:
        if not logsnr_min < logsnr_max:
            raise ValueError("logsnr_min must be smaller than logsnr_max.")
        self.logsnr_min = float(logsnr_min)
        self.logsnr_max = float(logsnr_max)
        self._b = math.atan(math.exp(-0.5 * self.logsnr_max))
        self._a = math.atan(math.exp(-0.5 * self.logsnr_min)) - self._b

    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        """Log signal-to-noise ratio at time ``t`` in [0, 1]."""
        return -2.0 * torch.log(torch.tan(self._a * t + self._b))

    def time(self, logsnr: torch.Tensor) -> torch.Tensor:
        """The time ``t`` at which the log-SNR is ``logsnr`` (the inverse of :meth:`logsnr`)."""
        return ((torch.atan(torch.exp(-0.5 * logsnr)) - self._b) / self._a).clamp(0.0, 1.0)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal and noise scales ``(alpha(t), sigma(t))``."""
        logsnr = self.logsnr(t)
        return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()

    def __repr__(self) -> str:
        return f"CosineSchedule(logsnr_min={self.logsnr_min}, logsnr_max={self.logsnr_max})"
