"""Blackout Diffusion (Santos et al., ICML 2023, arXiv 2305.11089) for non-negative counts.

Forward process: a pure death process. Every unit of a count dies independently at
rate 1, so a unit survives to time ``t`` with probability ``p(t) = exp(-t)`` and

    x_t | x_0 ~ Binomial(x_0, p(t)).

At the end time ``t_end`` (15 by default) the survival probability is ``exp(-15)``, so
the data have "blacked out" to the empty (all-zero) state, from which generation starts.

Observation times (the paper's schedule): ``T`` times ``t_0 < ... < t_{T-1}`` with the
log-odds of survival ``logit(p(t_k))`` evenly spaced from ``+L`` to ``-L``, where
``p(t_{T-1}) = exp(-t_end)`` (so ``L ~= t_end``).

Loss: the reverse process is a birth process. Given ``x_0``, the reverse-time birth rate
at time ``t`` is ``(x_0 - x_t) p(t) / (1 - p(t))``: the network only has to estimate
the number of missing units ``x_0 - x_t``. With a non-negative estimate ``y`` the exact
(continuous-time, not variational) objective is the Poisson-type loss
``y - (x_0 - x_t) log y`` weighted per observation time; its minimiser is
``y = E[x_0 - x_t | x_t]``. Two weightings from the paper's reference code are offered:
``"instantaneous"`` (``p(t_k) (t_k - t_{k-1})``) and ``"finite_time"``
(``p(t_{k-1}) - p(t_k)``); ``"elbo"`` adds the rate factor ``1 / (1 - p)`` of the
continuous-time bound (all normalised to mean 1 over the times). We add the
constant that makes the loss a Poisson deviance (zero at the optimum, never negative);
the gradients are unchanged.

Reverse step (the paper's binomial bridge): for ``s < t``, each of the ``x_0 - x_t``
units that are missing at ``t`` is alive at ``s`` with probability
``(p(s) - p(t)) / (1 - p(t))``, so ``x_s = x_t + Binomial(n, q)`` with ``n`` the
network's estimate of the missing units made an integer. Counts only ever grow from
zero, so every output is a non-negative integer and untouched entries are exact zeros.
The bridge is exact between any two observation times, so sampling may skip times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

__all__ = [
    "BlackoutSchedule",
    "q_sample",
    "thin",
    "birth_loss",
    "bridge_probability",
    "bridge_step",
    "sample",
    "WEIGHTINGS",
    "BRIDGE_METHODS",
    "ROUNDINGS",
]

WEIGHTINGS = ("instantaneous", "finite_time", "elbo")
BRIDGE_METHODS = ("binomial", "poisson")
ROUNDINGS = ("stochastic", "nearest")

BirthsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BlackoutSchedule:
    """The paper's observation times of the death process.

    Parameters
    ----------
    n_times
        Number of observation times ``T`` (paper: 1000).
    t_end
        Final time; the survival probability there is ``exp(-t_end)`` (paper: 15).

    Attributes
    ----------
    times
        ``t_k`` (float64, increasing), shape ``(T,)``.
    survival
        ``p(t_k) = exp(-t_k)`` (float64, decreasing from about 1 to ``exp(-t_end)``).
    weights
        Per-time loss weights of the ``"instantaneous"`` loss (float64, mean 1).

    Examples
    --------
    >>> s = BlackoutSchedule(n_times=100)
    >>> float(s.survival[-1]) == math.exp(-15.0)
    True
    """

    def __init__(self, n_times: int = 1000, t_end: float = 15.0) -> None:
        if isinstance(n_times, bool) or int(n_times) != n_times or int(n_times) < 2:
            raise ValueError(f"n_times must be an integer >= 2, got {n_times!r}.")
        if not (math.isfinite(t_end) and 0.0 < t_end <= 40.0):
            raise ValueError(f"t_end must be in (0, 40], got {t_end!r}.")
        self.n_times = int(n_times)
        self.t_end = float(t_end)
        p_end = math.exp(-self.t_end)
        half = -math.log(p_end / (1.0 - p_end))  # logit of the first survival probability
        logits = np.linspace(half, -half, self.n_times)
        survival = 1.0 / (1.0 + np.exp(-logits))
        survival[-1] = p_end
        self.survival = torch.from_numpy(survival)
        self.times = -torch.log(self.survival)
        self.weights = self.loss_weights("instantaneous")

    def loss_weights(
        self, weighting: Literal["instantaneous", "finite_time", "elbo"] = "instantaneous"
    ) -> torch.Tensor:
        """Per-time weights of the birth loss for uniformly drawn times, mean 1.

        ``"instantaneous"``: ``p(t_k) (t_k - t_{k-1})`` and ``"finite_time"``:
        ``p(t_{k-1}) - p(t_k)`` (the paper's reference code); ``"elbo"``:
        ``p(t_k) / (1 - p(t_k)) (t_k - t_{k-1})``, the factor of the reverse birth rate
        in the continuous-time bound, which does not down-weight the last (small-``t``)
        times where the sampler adds the final units.
        """
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown weighting {weighting!r}; choose one of {WEIGHTINGS}.")
        t_prev = torch.cat([torch.zeros(1, dtype=self.times.dtype), self.times[:-1]])
        if weighting == "instantaneous":
            w = self.survival * (self.times - t_prev)
        elif weighting == "finite_time":
            w = torch.exp(-t_prev) - self.survival
        else:
            w = self.survival / (1.0 - self.survival) * (self.times - t_prev)
        return w / w.mean()

    def time_input(self, index: torch.Tensor) -> torch.Tensor:
        """Network time input in [0, 1] for observation-time indices (linear in log-odds)."""
        return index.to(torch.float32) / (self.n_times - 1)

    def step_indices(self, n_steps: int | None = None) -> list[int]:
        """Observation-time indices visited by the sampler, last time first.

        ``n_steps=None`` visits all ``T`` times; fewer steps visit evenly spaced ones
        (always including the last and the first).
        """
        if n_steps is None:
            return list(range(self.n_times - 1, -1, -1))
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or not 1 <= n_steps <= self.n_times:
            raise ValueError(f"n_steps must be an integer in [1, {self.n_times}], got {n_steps!r}.")
        idx = np.unique(np.round(np.linspace(0, self.n_times - 1, int(n_steps))).astype(int))
        if int(n_steps) == 1:
            idx = np.array([self.n_times - 1])
        return [int(i) for i in idx[::-1]]

    def __repr__(self) -> str:
        return f"BlackoutSchedule(n_times={self.n_times}, t_end={self.t_end})"


def _check_counts(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be a real tensor of counts, got dtype {x.dtype}.")
    if x.numel() and (bool((x < 0).any()) or not bool(torch.isfinite(x.float()).all())):
        raise ValueError(f"{name} must hold finite non-negative counts.")


def q_sample(
    x0: torch.Tensor, p: torch.Tensor | float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``x_t ~ Binomial(x0, p)`` (each unit survives with probability ``p``).

    Parameters
    ----------
    x0
        Non-negative integer counts (any float or integer dtype), batch first.
    p
        Survival probability, broadcastable to ``x0`` (e.g. shape ``(batch, 1)``).
    generator
        Random number generator on ``x0``'s device.

    Returns
    -------
    Float32 tensor of the surviving counts, same shape as ``x0``.

    Examples
    --------
    >>> x0 = torch.full((4, 3), 10.0)
    >>> bool((q_sample(x0, 0.5) <= x0).all())
    True
    """
    _check_counts(x0, "x0")
    p = torch.as_tensor(p, dtype=torch.float32, device=x0.device)
    if p.numel() and (bool((p < 0).any()) or bool((p > 1).any())):
        raise ValueError("Survival probabilities p must lie in [0, 1].")
    return thin(x0, p, generator=generator)


def thin(
    x0: torch.Tensor, p: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`q_sample` without its checks, for callers whose counts and probabilities
    were checked elsewhere (the training loop: counts by the loader, once per minibatch;
    survival probabilities when the schedule was built), so the loss pays no second
    pass over the minibatch and no device read-back for them.

    Examples
    --------
    >>> x0 = torch.full((2, 3), 5.0)
    >>> thin(x0, torch.zeros(2, 1)).sum().item()
    0.0
    """
    counts = x0.to(torch.float32)
    prob = torch.broadcast_to(p, counts.shape).contiguous()
    return torch.binomial(counts, prob, generator=generator)


def birth_loss(
    births_hat: torch.Tensor,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Blackout loss: Poisson deviance of the estimated missing units ``x0 - x_t``.

    ``w * (y - n + n log(n / y))`` with ``y = births_hat`` and ``n = x0 - x_t``,
    averaged over all entries; per-sample ``weight`` of shape ``(batch,)``.

    Parameters
    ----------
    births_hat
        Network estimate of ``x0 - x_t`` (non-negative, e.g. after softplus).
    x0, x_t
        Clean counts and their thinned version at the sampled times.
    weight
        Optional per-sample weights (see :meth:`BlackoutSchedule.loss_weights`).
    eps
        Floor on ``births_hat`` inside the logarithm.

    Examples
    --------
    >>> x0 = torch.tensor([[3.0, 0.0]]); x_t = torch.tensor([[1.0, 0.0]])
    >>> float(birth_loss(torch.tensor([[2.0, 0.0]]), x0, x_t))
    0.0
    """
    if births_hat.shape != x0.shape or x0.shape != x_t.shape:
        raise ValueError(
            f"births_hat {tuple(births_hat.shape)}, x0 {tuple(x0.shape)} and x_t "
            f"{tuple(x_t.shape)} must have the same shape."
        )
    if weight is not None and weight.shape != (x0.shape[0],):
        raise ValueError(f"weight must have shape ({x0.shape[0]},), got {tuple(weight.shape)}.")
    with torch.no_grad():  # n log n - n does not depend on the estimate: built in place
        n = (x0 - x_t).to(births_hat.dtype)
        constant = torch.special.xlogy(n, n).sub_(n)
    loss = (births_hat - torch.special.xlogy(n, births_hat.clamp_min(eps))).add_(constant)
    if weight is None:
        return loss.mean()
    per_sample = loss.flatten(1).mean(1)  # weights per sample: no full-size weighted copy
    return (weight.to(loss.dtype) * per_sample).mean()


def bridge_probability(p_t: float | torch.Tensor, p_s: float | torch.Tensor):
    """Chance that a unit missing at time ``t`` is alive at the earlier time ``s``."""
    return (p_s - p_t) / (1.0 - p_t)


def _to_integer(y: torch.Tensor, rounding: str, generator: torch.Generator | None) -> torch.Tensor:
    if rounding == "nearest":
        return torch.round(y)
    floor = torch.floor(y)
    u = torch.rand(y.shape, device=y.device, generator=generator)
    return floor + (u < (y - floor)).to(y.dtype)


def bridge_step(
    x_t: torch.Tensor,
    births_hat: torch.Tensor,
    p_t: float,
    p_s: float,
    *,
    method: Literal["binomial", "poisson"] = "binomial",
    rounding: Literal["stochastic", "nearest"] = "stochastic",
    max_value: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One reverse step from time ``t`` to the earlier time ``s`` (``p_s > p_t``).

    ``method="binomial"`` (the paper's binomial bridge) draws
    ``Binomial(n, (p_s - p_t) / (1 - p_t))`` births with ``n`` the estimate of the
    missing units made an integer: ``"nearest"`` rounding as in the reference code, or
    unbiased ``"stochastic"`` rounding (floor plus a Bernoulli draw of the fraction),
    which keeps units of rarely expressed genes whose expected count is below 0.5.
    ``method="poisson"`` (tau-leaping) draws ``Poisson(births_hat * q)`` births.

    Parameters
    ----------
    x_t
        Current counts (float, integer-valued).
    births_hat
        Estimated missing units ``E[x0 - x_t | x_t]`` (non-negative).
    p_t, p_s
        Survival probabilities at the current and the earlier time.
    max_value
        Optional cap on the counts (e.g. 255 for 8-bit pixels), scalar or per feature.
    generator
        Random number generator on ``x_t``'s device.

    Returns
    -------
    Counts at time ``s``: ``x_t`` plus non-negative integer births.
    """
    if method not in BRIDGE_METHODS:
        raise ValueError(f"Unknown bridge method {method!r}; choose one of {BRIDGE_METHODS}.")
    if rounding not in ROUNDINGS:
        raise ValueError(f"Unknown rounding {rounding!r}; choose one of {ROUNDINGS}.")
    if not 0.0 <= float(p_t) < float(p_s) <= 1.0:
        raise ValueError(f"Need 0 <= p_t < p_s <= 1, got p_t={p_t}, p_s={p_s}.")
    q = float(bridge_probability(float(p_t), float(p_s)))
    y = births_hat.detach().to(torch.float32).clamp_min(0.0)
    room = (
        None
        if max_value is None
        else (torch.as_tensor(max_value, device=x_t.device) - x_t).clamp_min(0)
    )
    if method == "binomial":
        n = _to_integer(y, rounding, generator)
        if room is not None:
            n = torch.minimum(n, room)
        births = torch.binomial(n, torch.full_like(n, min(q, 1.0)), generator=generator)
    else:
        births = torch.poisson(y * q, generator=generator)
        if room is not None:
            births = torch.minimum(births, room)
    return x_t + births


@torch.no_grad()
def sample(
    births_fn: BirthsFn,
    shape: tuple[int, ...],
    schedule: BlackoutSchedule,
    *,
    n_steps: int | None = None,
    method: Literal["binomial", "poisson"] = "binomial",
    rounding: Literal["stochastic", "nearest"] = "stochastic",
    max_value: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    step_callback: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Generate counts from the empty state with binomial-bridge (or Poisson) steps.

    Parameters
    ----------
    births_fn
        ``births_fn(x_t, index) -> E[x0 - x_t | x_t]`` with ``index`` the observation-time
        index (long tensor of shape ``(batch,)``; see :meth:`BlackoutSchedule.time_input`
        for a network time input and ``schedule.survival[index]`` for ``p(t)``).
    shape
        Shape of the generated batch, batch first.
    schedule
        The observation times used in training.
    n_steps
        Number of reverse steps (network calls); ``None`` uses all ``T`` times.
    method, rounding, max_value
        See :func:`bridge_step`.
    generator
        Random number generator on ``device``.
    step_callback
        Called after every network evaluation (e.g. ``bar.update`` of a progress bar).

    Returns
    -------
    Float32 tensor of non-negative integer counts.
    """
    indices = schedule.step_indices(n_steps)
    if method not in BRIDGE_METHODS:
        raise ValueError(f"Unknown bridge method {method!r}; choose one of {BRIDGE_METHODS}.")
    n = shape[0]
    x = torch.zeros(shape, device=device)
    survival = schedule.survival.tolist()
    for j, k in enumerate(indices):
        births_hat = births_fn(x, torch.full((n,), k, device=device, dtype=torch.long))
        p_s = survival[indices[j + 1]] if j + 1 < len(indices) else 1.0
        x = bridge_step(
            x,
            births_hat,
            survival[k],
            p_s,
            method=method,
            rounding=rounding,
            max_value=max_value,
            generator=generator,
        )
        if step_callback is not None:
            step_callback()
    return x
