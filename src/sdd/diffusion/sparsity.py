"""Sparsity bits (SDD): encode data with its zero pattern, decode with exact zeros.

Data ``x`` (already scaled to [-1, 1] by the front end, with the scaled value of a
true zero given by ``zero_value``) is concatenated with its sparsity bits
``sb = 1[x_raw != 0]`` written as analog bits ``2 sb - 1`` in {-1, +1}
(Chen et al., "Analog Bits"). The layout is ``[x, sb]`` along ``dim`` (the feature
axis for vectors, the channel axis for images). Decoding thresholds the SB half at 0
and multiplies, so every position with a negative SB is exactly ``zero_value``.

The threshold may differ per feature: :func:`matching_thresholds` picks, from a sample
of generated SB values, the threshold that makes each feature non-zero in a given
fraction of rows (the calibration of :meth:`sdd.SDD.calibrate`).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["encode", "decode", "split", "matching_thresholds"]


def encode(
    x: torch.Tensor,
    nonzero: torch.Tensor,
    *,
    dim: int = 1,
    fill: torch.Tensor | None = None,
    reuse: torch.Tensor | None = None,
) -> torch.Tensor:
    """Concatenate scaled data ``x`` with its sparsity bits as analog bits.

    Parameters
    ----------
    x
        Scaled data.
    nonzero
        Boolean tensor of the same shape, ``True`` where the raw data is non-zero.
    dim
        Axis along which to concatenate.
    fill
        Value of the zero entries in the data half (broadcast against ``x``); ``None``
        keeps ``x`` as it is.
    reuse
        An earlier result whose memory this one may take (a training loop's minibatch
        buffer: no allocation per step); used only if its shape, dtype and device fit.

    Examples
    --------
    >>> encode(torch.tensor([[0.5, -1.0]]), torch.tensor([[True, False]])).tolist()
    [[0.5, -1.0, 1.0, -1.0]]
    """
    if x.shape != nonzero.shape:
        raise ValueError(f"x {tuple(x.shape)} and nonzero {tuple(nonzero.shape)} differ in shape.")
    shape = list(x.shape)
    shape[dim] *= 2
    fits = reuse is not None and (list(reuse.shape), reuse.dtype, reuse.device) == (
        shape,
        x.dtype,
        x.device,
    )
    out = reuse if fits else torch.empty(shape, dtype=x.dtype, device=x.device)
    values, bits = out.chunk(2, dim=dim)
    if fill is None:
        values.copy_(x)
    else:
        torch.where(nonzero, x, fill.to(x.dtype), out=values)
    bits.copy_(nonzero)
    bits.mul_(2.0).sub_(1.0)  # {0, 1} -> {-1, 1}
    return out


def split(z: torch.Tensor, *, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an encoded tensor into its data half and its SB half."""
    if z.shape[dim] % 2:
        raise ValueError(f"Encoded tensor has an odd size {z.shape[dim]} along dim {dim}.")
    return torch.chunk(z, 2, dim=dim)


def decode(
    z: torch.Tensor,
    *,
    dim: int = 1,
    zero_value: float = -1.0,
    threshold: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Threshold the SB half and mask the data half.

    Parameters
    ----------
    z
        Encoded tensor ``[x, sb]`` along ``dim``.
    dim
        Feature (or channel) axis.
    zero_value
        Scaled value written where the bit is off.
    threshold
        A bit is on where its analog value is ``> threshold``: ``0`` (the paper's) or a
        tensor broadcastable to the SB half (one threshold per feature, or per example
        and feature).

    Returns
    -------
    masked
        Data half with every position whose SB is <= 0 set exactly to ``zero_value``.
    dense
        Data half before masking.
    bits
        Thresholded sparsity bits (``1.0`` non-zero, ``0.0`` zero).
    """
    dense, logits = split(z, dim=dim)
    bits = (logits > threshold).to(dense.dtype)
    masked = torch.where(bits > 0, dense, torch.full_like(dense, zero_value))
    return masked, dense, bits


def matching_thresholds(logits: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Per-feature thresholds at which generated bits are on at the given rates.

    For feature ``j`` the threshold is the ``1 - rates[j]`` quantile of ``logits[:, j]``,
    so about ``rates[j]`` of the rows have ``logits[:, j] > threshold[j]``; a feature
    with rate 0 gets ``+inf`` (never on).

    Parameters
    ----------
    logits
        Analog SB values of generated rows, ``(rows, features)``.
    rates
        Target fraction of rows in which each feature is non-zero (e.g. the training
        data's detection rate per gene), in [0, 1].

    Examples
    --------
    >>> logits = np.array([[-0.5, 0.2], [0.1, 0.4], [0.3, -0.9], [0.9, 0.6]])
    >>> t = matching_thresholds(logits, np.array([0.5, 0.0]))
    >>> (logits > t).mean(axis=0).tolist()
    [0.5, 0.0]
    """
    logits = np.asarray(logits, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)
    if logits.ndim != 2 or rates.shape != (logits.shape[1],):
        raise ValueError(
            f"Expected logits (rows, features) and one rate per feature, got shapes "
            f"{logits.shape} and {rates.shape}."
        )
    if not len(logits):
        raise ValueError("matching_thresholds needs at least one row of logits.")
    if not np.all((rates >= 0) & (rates <= 1)):
        raise ValueError("rates must lie in [0, 1].")
    ordered = np.sort(logits, axis=0)
    n = len(ordered)
    # the k-th largest value is on iff the threshold lies below it: k = round(rate * n) on
    k = np.rint(rates * n).astype(np.int64)
    below = np.clip(n - k - 1, 0, n - 1)  # the largest value that stays off
    above = np.clip(n - k, 0, n - 1)  # the smallest value that is on
    columns = np.arange(logits.shape[1])
    threshold = 0.5 * (ordered[below, columns] + ordered[above, columns])
    threshold = np.where(k >= n, -np.inf, threshold)
    return np.where(k <= 0, np.inf, threshold)
