"""Roll a failed training run back: a copy of the weights, EMA and weight masks."""

from __future__ import annotations

import copy
from typing import Any

import torch


class Snapshot:
    """The state of a network, its :class:`~sdd.train.EMA` and weight masks at one moment.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2)
    >>> from sdd.train import EMA
    >>> snap = Snapshot(net, EMA(net))
    >>> _ = net.weight.data.fill_(float("nan"))
    >>> snap.restore()
    >>> check_finite(net)
    """

    def __init__(self, module: torch.nn.Module, ema: Any, masks: Any = None) -> None:
        self.module, self.ema, self.masks = module, ema, masks
        self.state = {
            "module": _clone(module),
            "ema": _clone(ema.model),
            "ema_updates": ema.n_updates,
            "ema_carry": ema.carry,
            "ema_decay": ema.decay,
            "masks": None if masks is None else copy.deepcopy(masks.state_dict()),
        }

    def restore(self) -> None:
        """Put the network, EMA and masks back as they were."""
        self.module.load_state_dict(self.state["module"])
        self.ema.model.load_state_dict(self.state["ema"])
        self.ema.n_updates, self.ema.decay = self.state["ema_updates"], self.state["ema_decay"]
        self.ema.carry = self.state["ema_carry"]
        if self.masks is not None:
            self.masks.load_state_dict(self.state["masks"])


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_finite(*modules: torch.nn.Module) -> None:
    """Raise ``FloatingPointError`` naming the first non-finite floating-point weight."""
    for module in modules:
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            # a NaN or inf anywhere makes the sum non-finite: one reduction decides
            # almost always; only an overflowing sum needs the element-wise check
            if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
                raise FloatingPointError(f"Training diverged: weight {name!r} is not finite.")
