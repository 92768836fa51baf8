"""Sparsity bits (SDD): encode data with its zero pattern, decode with exact zeros.

Data ``x`` (already scaled to [-1, 1] by the front end, with the scaled value of a
true zero given by ``zero_value``) is concatenated with its sparsity bits
``sb = 1[x_raw != 0]`` written as analog bits ``2 sb - 1`` in {-1, +1}
(Chen et al., "Analog Bits"). The layout is ``[x, sb]`` along ``dim`` (the feature
axis for vectors, the channel axis for images). Decoding thresholds the SB half at 0
and multiplies, so every position with a negative SB is exactly ``zero_value``.
"""

from __future__ import annotations

import torch

__all__ = ["encode", "decode", "split"]


def encode(x: torch.Tensor, nonzero: torch.Tensor, *, dim: int = 1) -> torch.Tensor:
    """Concatenate scaled data ``x`` with its sparsity bits as analog bits.

    Parameters
    ----------
    x
        Scaled data.
    nonzero
        Boolean tensor of the same shape, ``True`` where the raw data is non-zero.
    dim
        Axis along which to concatenate.
    """
    if x.shape != nonzero.shape:
        raise ValueError(f"x {tuple(x.shape)} and nonzero {tuple(nonzero.shape)} differ in shape.")
    bits = nonzero.to(x.dtype) * 2.0 - 1.0
    return torch.cat([x, bits], dim=dim)


def split(z: torch.Tensor, *, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an encoded tensor into its data half and its SB half."""
    if z.shape[dim] % 2:
        raise ValueError(f"Encoded tensor has an odd size {z.shape[dim]} along dim {dim}.")
    return torch.chunk(z, 2, dim=dim)


def decode(
    z: torch.Tensor, *, dim: int = 1, zero_value: float = -1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Threshold the SB half and mask the data half.

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
    bits = (logits > 0).to(dense.dtype)
    masked = torch.where(bits > 0, dense, torch.full_like(dense, zero_value))
    return masked, dense, bits
