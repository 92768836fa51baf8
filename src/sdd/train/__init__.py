"""Training: the optimisation loop, EMA of weights, device choice."""

from ._device import resolve_device
from ._ema import EMA
from ._loop import train_denoiser

__all__ = ["EMA", "train_denoiser", "resolve_device"]
