"""From a cells x genes matrix (dense, CSR or backed) to scaled minibatches."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def gene_max(matrix, chunk_rows: int = 4096) -> np.ndarray:
    """Per-gene maximum, computed row-chunk by row-chunk (never densifies the whole matrix)."""
    out = np.zeros(matrix.shape[1], dtype=np.float64)
    for start in range(0, matrix.shape[0], chunk_rows):
        block = matrix[start : start + chunk_rows]
        block_max = block.max(axis=0)
        block_max = block_max.toarray() if sp.issparse(block_max) else np.asarray(block_max)
        out = np.maximum(out, block_max.ravel())
    return out


def rows_dense(matrix, index: np.ndarray) -> np.ndarray:
    """Dense float32 copy of the given rows (only these rows are densified)."""
    if not isinstance(matrix, np.ndarray | sp.spmatrix | sp.sparray):
        # anndata backed datasets want sorted, unique indices
        order = np.argsort(index)
        block = matrix[index[order]]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        out = np.empty_like(block, dtype=np.float32)
        out[order] = block
        return out
    block = matrix[index]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return block.astype(np.float32, copy=False)


class Scaler:
    """Per-gene affine map of non-negative values onto [-1, 1].

    ``z = 2 x / m_g - 1`` with ``m_g`` the largest training value of gene ``g`` (1 for
    all-zero genes). A zero maps to -1 and -1 maps back to exactly 0.
    """

    def __init__(self, scale: np.ndarray) -> None:
        scale = np.asarray(scale, dtype=np.float32).copy()
        scale[scale <= 0] = 1.0
        self.scale = scale

    @classmethod
    def fit(cls, matrix) -> Scaler:
        return cls(gene_max(matrix))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.as_tensor(self.scale, device=x.device)
        return (2.0 * x / scale - 1.0).clamp(-1.0, 1.0)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        scale = torch.as_tensor(self.scale, device=z.device)
        return ((z.clamp(-1.0, 1.0) + 1.0) * 0.5) * scale


class MinibatchSampler:
    """Shuffled epochs of minibatches, densified and scaled one batch at a time."""

    def __init__(
        self,
        matrix,
        scaler: Scaler,
        *,
        batch_size: int,
        device: torch.device,
        codes: np.ndarray | None = None,
        random_state: int = 0,
    ) -> None:
        self.matrix = matrix
        self.scaler = scaler
        self.n = matrix.shape[0]
        self.batch_size = min(int(batch_size), self.n)
        self.device = device
        self.codes = None if codes is None else torch.as_tensor(codes, dtype=torch.long)
        self.rng = np.random.default_rng(random_state)
        self._order = np.empty(0, dtype=np.int64)
        self._pos = 0

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n // self.batch_size)

    def _next_index(self) -> np.ndarray:
        if self._pos + self.batch_size > len(self._order):
            self._order = self.rng.permutation(self.n)
            self._pos = 0
        index = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return index

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``(scaled values, non-zero mask, condition codes or None)`` on the device."""
        index = self._next_index()
        x = torch.from_numpy(rows_dense(self.matrix, index)).to(self.device, non_blocking=True)
        codes = None if self.codes is None else self.codes[index].to(self.device)
        return self.scaler.transform(x), x != 0, codes
