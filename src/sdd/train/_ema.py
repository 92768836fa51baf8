"""Exponential moving average of model weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """EMA of a module's parameters with the usual warm-up.

    The decay at update ``n`` is ``min(decay, (1 + n) / (10 + n))``, so short runs are
    not dominated by the random initial weights while long runs reach ``decay``
    (paper: 0.9999).

    Parameters
    ----------
    model
        The trained module (copied; the copy holds the averaged weights).
    decay
        Target decay in [0, 1).

    Examples
    --------
    >>> ema = EMA(nn.Linear(2, 2), decay=0.999)
    >>> ema.current_decay()
    0.1
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.n_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """Decay of the next update."""
        n = self.n_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights towards ``model``'s (decay from the host counter)."""
        d = self.current_decay()
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.n_updates += 1

    @torch.no_grad()
    def update_on_device(self, model: nn.Module, count: torch.Tensor) -> None:
        """The same update with the update counter held in a device tensor.

        Capturable in a CUDA graph (the decay is computed on the device and no value is
        read back). ``count`` (float64, 0-dim, on the weights' device) is the number of
        updates so far and is incremented in place; the caller adds the number of
        updates to :attr:`n_updates` afterwards.
        """
        decay = torch.clamp((1.0 + count) / (10.0 + count), max=self.decay)
        weight = (1.0 - decay).to(torch.float32)
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        # ema + w * (p - ema): lerp's value, up to rounding
        diff = torch._foreach_sub(params, ema_params)
        torch._foreach_mul_(diff, weight)
        torch._foreach_add_(ema_params, diff)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        count.add_(1.0)
