"""Exponential moving average of model weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """EMA of a module's parameters with the usual warm-up.

    The decay at step ``n`` is ``min(decay, (1 + n) / (10 + n))``, so short runs are
    not dominated by the random initial weights while long runs reach ``decay``
    (paper: 0.9999). With ``every=k`` the averaged weights move every ``k``-th step only,
    by the decays of the ``k`` steps compounded (``carry``), so the average keeps its
    horizon at a ``k``-th of the memory traffic; it then lags the weights by at most
    ``k - 1`` steps.

    Parameters
    ----------
    model
        The trained module (copied; the copy holds the averaged weights).
    decay
        Target decay in [0, 1).
    every
        Steps between updates of the averaged weights (1: every step).

    Examples
    --------
    >>> ema = EMA(nn.Linear(2, 2), decay=0.999)
    >>> ema.current_decay()
    0.1
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, every: int = 1) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}.")
        self.decay = float(decay)
        self.every = every
        self.n_updates = 0  # steps seen
        self.carry = 1.0  # the decays of the steps since the last move, compounded
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """Decay of the next update."""
        n = self.n_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Count one step; on every ``every``-th, move the averaged weights towards
        ``model``'s by the compounded decay (decays from the host counter)."""
        self.carry *= self.current_decay()
        self.n_updates += 1
        if self.n_updates % self.every:
            return
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - self.carry)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.carry = 1.0

    @torch.no_grad()
    def update_on_device(self, model: nn.Module, count: torch.Tensor) -> None:
        """The same update, every step, with the update counter held in a device tensor.

        Capturable in a CUDA graph (the decay is computed on the device and no value is
        read back). ``count`` (float64, 0-dim, on the weights' device) is the number of
        updates so far and is incremented in place; the caller adds the number of
        updates to :attr:`n_updates` afterwards. ``every`` does not apply here: a step
        count kept on the device cannot choose on the host which steps update.
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
