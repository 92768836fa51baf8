"""Learning-rate schedules over one ``train()`` call: constant, or warm-up + cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["LR_SCHEDULES", "lr_multiplier"]

LR_SCHEDULES = ("constant", "cosine")


def lr_multiplier(
    name: str, *, start: int, total: int, warmup: int = 0
) -> Callable[[int], float] | None:
    """Multiplier of the learning rate at global step ``step`` (1-based) of a call.

    ``"constant"`` returns ``None`` (no schedule). ``"cosine"``: linear warm-up from
    ``1 / warmup`` to 1 over the first ``warmup`` steps of the call, then a half cosine
    from 1 down to 0 at its last step (Loshchilov & Hutter 2017).

    Parameters
    ----------
    name
        ``"constant"`` or ``"cosine"``.
    start
        Steps done before this call.
    total
        Steps of this call.
    warmup
        Warm-up steps (at most ``total``).

    Examples
    --------
    >>> f = lr_multiplier("cosine", start=0, total=10, warmup=2)
    >>> [round(f(s), 2) for s in (1, 2, 6, 10)]
    [0.5, 1.0, 0.5, 0.0]
    """
    if name not in LR_SCHEDULES:
        raise ValueError(f"Unknown lr_schedule {name!r}; choose one of {LR_SCHEDULES}.")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup!r}.")
    if name == "constant":
        return None
    warmup = min(warmup, total)

    def multiplier(step: int) -> float:
        k = step - start  # 1..total
        if k <= warmup:
            return k / warmup
        span = max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (k - warmup) / span))

    return multiplier
