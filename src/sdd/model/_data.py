"""From a cells x genes matrix (dense, CSR or backed) to scaled minibatches."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..train._batches import RowBatches, is_in_memory, rows_dense

__all__ = ["gene_max", "rows_dense", "is_in_memory", "Scaler", "MinibatchSampler"]


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

    ``z = 2 x / m_g - 1`` with ``m_g`` the largest training value of gene ``g`` (1 for
    all-zero genes). A zero maps to -1 and -1 maps back to exactly 0.

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
        scale = np.asarray(scale, dtype=np.float32).copy()
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
        """Map [-1, 1] back to the data's units."""
        return ((z.clamp(-1.0, 1.0) + 1.0) * 0.5) * self._scale(z.device)

    def __getstate__(self) -> dict:
        return {"scale": self.scale}

    def __setstate__(self, state: dict) -> None:
        self.scale = state["scale"]
        self._on_device = {}


class MinibatchSampler(RowBatches):
    """Shuffled epochs of minibatches, densified and scaled one batch at a time.

    A :class:`~sdd.train._batches.RowBatches` (data kept on the accelerator when it
    fits, streamed from host memory or a backed file otherwise) whose minibatches are
    scaled with ``scaler`` and returned with their non-zero mask.

    Parameters
    ----------
    matrix
        Cells x genes: NumPy array, SciPy sparse matrix or anndata backed dataset.
    scaler
        Maps raw values to [-1, 1] (``transform``).
    batch_size, device, codes, random_state, data_on_device, rank, world_size, prefetch
        See :class:`~sdd.train._batches.RowBatches`.

    Examples
    --------
    >>> x = np.array([[0.0, 2.0], [1.0, 0.0], [3.0, 1.0]])
    >>> batches = MinibatchSampler(x, Scaler.fit(x), batch_size=2, device=torch.device("cpu"))
    >>> z, nonzero, codes = batches()
    >>> tuple(z.shape), codes is None
    ((2, 2), True)
    """

    def __init__(
        self,
        matrix: Any,
        scaler: Any,
        *,
        batch_size: int,
        device: torch.device | str,
        codes: np.ndarray | None = None,
        random_state: int = 0,
        data_on_device: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        prefetch: bool | None = None,
    ) -> None:
        super().__init__(
            matrix,
            batch_size=batch_size,
            device=device,
            codes=codes,
            random_state=random_state,
            data_on_device=data_on_device,
            rank=rank,
            world_size=world_size,
            prefetch=prefetch,
        )
        self.scaler = scaler

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``(scaled values, non-zero mask, condition codes or None)`` on the device."""
        x, codes = self.next_batch()
        x = x.to(self.device, non_blocking=True)
        if codes is not None:
            codes = codes.to(self.device, non_blocking=True)
        return self.scaler.transform(x), x != 0, codes
