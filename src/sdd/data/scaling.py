"""Per-gene scaling of non-negative data onto [-1, 1], the range the diffusion runs on."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["gene_max", "Scaler", "RANGE_TOLERANCE"]

#: Relative slack above the fitted maximum that :meth:`Scaler.out_of_range` tolerates.
RANGE_TOLERANCE = 1e-5


def gene_max(matrix: Any, chunk_rows: int = 4096) -> np.ndarray:
    """Per-gene maximum, computed row-chunk by row-chunk (never densifies the whole matrix).

    Works on NumPy arrays, SciPy sparse matrices and backed datasets (anndata
    ``backed="r"``), reading ``chunk_rows`` rows at a time.

    Examples
    --------
    >>> gene_max(np.array([[0.0, 2.0], [1.0, 0.0]])).tolist()
    [1.0, 2.0]
    """
    out = np.zeros(matrix.shape[1], dtype=np.float64)
    for start in range(0, matrix.shape[0], chunk_rows):
        block = matrix[start : start + chunk_rows]
        block_max = block.max(axis=0)
        block_max = block_max.toarray() if sp.issparse(block_max) else np.asarray(block_max)
        out = np.maximum(out, block_max.ravel())
    return out


class Scaler:
    """Per-gene affine map of non-negative values onto [-1, 1].

    ``z = 2 x / m_g - 1`` with ``m_g`` the largest training value of gene ``g``. A zero
    maps to -1 and -1 maps back to exactly 0; a gene that is zero in all training rows
    (``m_g = 0``) maps back to exactly 0 whatever its value, so the output stays in
    ``[0, m_g]``.

    Parameters
    ----------
    scale
        ``m_g`` per gene (any shape that broadcasts against a minibatch).

    Examples
    --------
    >>> s = Scaler(np.array([2.0, 4.0]))
    >>> s.transform(torch.tensor([[1.0, 4.0]])).tolist()
    [[0.0, 1.0]]
    """

    def __init__(self, scale: np.ndarray) -> None:
        self.gene_max = np.asarray(scale, dtype=np.float32).copy()
        scale = self.gene_max.copy()
        scale[scale <= 0] = 1.0
        self.scale = scale
        self._on_device: dict[str, tuple[int, torch.Tensor]] = {}

    @classmethod
    def fit(cls, matrix: Any) -> Scaler:
        """Scaler with the per-gene maxima of ``matrix`` (read in row chunks)."""
        return cls(gene_max(matrix))

    def _scale(self, device: torch.device) -> torch.Tensor:
        # cached per device: no host-to-device copy per minibatch
        key = str(device)
        cached = self._on_device.get(key)
        if cached is None or cached[0] != id(self.scale):
            cached = (id(self.scale), torch.as_tensor(self.scale).to(device))
            self._on_device[key] = cached
        return cached[1]

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Map values to [-1, 1]."""
        return (2.0 * x / self._scale(x.device) - 1.0).clamp(-1.0, 1.0)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Map [-1, 1] back to the data's units (``[0, m_g]``)."""
        return ((z.clamp(-1.0, 1.0) + 1.0) * 0.5) * self._upper(z.device)

    @property
    def maximum(self) -> np.ndarray:
        """The fitted per-gene maximum ``m_g`` in data units."""
        return self.gene_max

    def out_of_range(self, x: torch.Tensor) -> torch.Tensor:
        """Per feature (axis 1 of ``x``): whether any value is outside ``[0, m_g]`` (or NaN).

        A boolean tensor on ``x``'s device, computed without a host synchronisation, so
        a training loop can check every minibatch for data that changed after the scale
        was fitted (values :meth:`transform` would otherwise clip silently). Values up
        to ``m_g (1 + 1e-5)`` count as in range (float rounding).

        Examples
        --------
        >>> Scaler(np.array([2.0, 4.0])).out_of_range(torch.tensor([[3.0, 4.0]])).tolist()
        [True, False]
        """
        key = f"limit:{x.device}"
        cached = self._on_device.get(key)
        if cached is None or cached[0] != id(self.gene_max):
            limit = self.gene_max.ravel() * (1.0 + RANGE_TOLERANCE)
            cached = (id(self.gene_max), torch.as_tensor(limit).to(x.device))
            self._on_device[key] = cached
        y = x.reshape(x.shape[0], x.shape[1], -1)
        high, low = y.amax(dim=(0, 2)), y.amin(dim=(0, 2))  # NaN propagates into high
        return ~((low >= 0) & (high <= cached[1]))

    def _upper(self, device: torch.device) -> torch.Tensor:
        key = f"upper:{device}"
        cached = self._on_device.get(key)
        if cached is None or cached[0] != id(self.gene_max):
            cached = (
                id(self.gene_max),
                torch.as_tensor(self.gene_max.reshape(self.scale.shape)).to(device),
            )
            self._on_device[key] = cached
        return cached[1]

    def __getstate__(self) -> dict:
        return {"scale": self.gene_max}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["scale"])
