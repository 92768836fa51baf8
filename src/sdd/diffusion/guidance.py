"""Conditioning for every process: classifier-free guidance and label dropout.

Labels are integer codes ``(batch, n_covariates)``; a network with a label embedding
(``net.labels``) reserves code ``n_categories`` of each covariate as the null token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["check_guidance", "classifier_free_guidance", "label_dropout"]


def classifier_free_guidance(
    fn: Callable[..., torch.Tensor],
    net: torch.nn.Module,
    cond: torch.Tensor | None,
    guidance_scale: float,
) -> Callable[..., torch.Tensor]:
    """``f(*inputs)``: ``fn(*inputs, cond)`` with classifier-free guidance weight ``w``.

    With ``cond`` and ``w != 0``, ``fn`` runs once on the inputs stacked twice, with the
    labels and with the null tokens of ``net.labels.unconditional`` (covariates that
    guidance does not act on are kept), and ``f`` returns
    ``(1 + w) f_cond - w f_uncond``; otherwise plain ``fn(*inputs, cond)``.

    Parameters
    ----------
    fn
        Called as ``fn(*inputs, codes)``, batch first.
    net
        The network; its label embedding ``net.labels`` supplies the null token.
    cond
        Label codes ``(batch, n_covariates)``, or ``None`` for unconditional sampling.
    guidance_scale
        Guidance weight ``w``.

    Returns
    -------
    The (guided) function of the inputs.
    """
    if cond is None or guidance_scale == 0:
        return lambda *inputs: fn(*inputs, cond)
    null = net.labels.unconditional(cond)
    w = float(guidance_scale)

    def guided(*inputs: torch.Tensor) -> torch.Tensor:
        both = fn(*(torch.cat([v, v]) for v in inputs), torch.cat([cond, null]))
        f_cond, f_uncond = both.chunk(2)
        return (1 + w) * f_cond - w * f_uncond

    return guided


def label_dropout(
    net: torch.nn.Module,
    p: float,
    device: torch.device,
    generator: torch.Generator,
) -> Callable[[torch.Tensor | None], torch.Tensor | None]:
    """``drop(codes)``: each label replaced by the null token with probability ``p``.

    Trains the unconditional model of classifier-free guidance alongside the
    conditional one. ``None`` codes, and any codes when ``p`` is 0, pass unchanged
    (and draw no random numbers).

    Parameters
    ----------
    net
        The network; ``net.labels.n_categories`` are the null tokens.
    p
        Drop probability.
    device, generator
        Where the codes live; the random generator of the training run.

    Returns
    -------
    The dropout function.
    """
    null = None
    if net.labels is not None:
        null = torch.tensor(net.labels.n_categories, device=device)

    def drop(codes: torch.Tensor | None) -> torch.Tensor | None:
        if codes is not None and p > 0:
            dropped = torch.rand(codes.shape, device=device, generator=generator) < p
            codes = torch.where(dropped, null.expand_as(codes), codes)
        return codes

    return drop


def check_guidance(guidance_scale: Any) -> float:
    """``guidance_scale`` as a float: a finite number (``TypeError``/``ValueError`` otherwise)."""
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float | np.number):
        raise TypeError(f"guidance_scale must be a number, got {guidance_scale!r}.")
    if not np.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be finite, got {guidance_scale!r}.")
    return float(guidance_scale)
