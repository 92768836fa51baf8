"""Per-gene scaling of non-negative data onto [-1, 1], the range the diffusion runs on."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .chunks import row_blocks

__all__ = ["gene_max", "gene_stats", "Scaler", "RANGE_TOLERANCE", "ZERO_FILLS"]

#: How the value half encodes a zero entry (see :class:`Scaler`).
ZERO_FILLS = ("min", "nonzero_mean")

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
    for _, block in row_blocks(matrix, chunk_rows):
        block_max = block.max(axis=0)
        block_max = block_max.toarray() if sp.issparse(block_max) else np.asarray(block_max)
        out = np.maximum(out, block_max.ravel())
    return out


def gene_stats(matrix: Any, chunk_rows: int = 4096) -> dict[str, np.ndarray]:
    """Per-gene maximum, mean and minimum of the non-zero values, in one chunked pass.

    Genes without a non-zero value get 0 for all three.

    Examples
    --------
    >>> s = gene_stats(np.array([[0.0, 2.0], [1.0, 4.0], [3.0, 0.0]]))
    >>> s["max"].tolist(), s["nonzero_mean"].tolist(), s["nonzero_min"].tolist()
    ([3.0, 4.0], [2.0, 3.0], [1.0, 2.0])
    """
    n_genes = matrix.shape[1]
    high, total = np.zeros(n_genes), np.zeros(n_genes)
    count, low = np.zeros(n_genes), np.full(n_genes, np.inf)
    for _, block in row_blocks(matrix, chunk_rows):
        block = sp.csc_matrix(block) if sp.issparse(block) else sp.csc_matrix(np.asarray(block))
        block.eliminate_zeros()
        high = np.maximum(high, block.max(axis=0).toarray().ravel())
        total += np.asarray(block.sum(axis=0)).ravel()
        nnz = np.diff(block.indptr)
        count += nnz
        lows = np.full(n_genes, np.inf)
        has = nnz > 0
        lows[has] = np.minimum.reduceat(block.data, block.indptr[:-1][has])
        low = np.minimum(low, lows)
    mean = np.divide(total, count, out=np.zeros(n_genes), where=count > 0)
    low[~np.isfinite(low)] = 0.0
    return {"max": high, "nonzero_mean": mean, "nonzero_min": low}


class Scaler:
    """Per-gene affine map of non-negative values onto [-1, 1].

    ``z = 2 x / m_g - 1`` with ``m_g`` the largest training value of gene ``g``. A zero
    maps to -1 and -1 maps back to exactly 0; a gene that is zero in all training rows
    (``m_g = 0``) maps back to exactly 0 whatever its value, so the output stays in
    ``[0, m_g]``.

    With sparsity bits the zero pattern is carried by the bits, and the value half of a
    zero entry only has to be *some* value. ``fill`` sets it per gene (e.g. the scaled
    mean of the gene's non-zero values, so the value half models "how much, if
    expressed" instead of mixing it with "whether"), and ``floor`` (the smallest
    non-zero training value) keeps an entry whose bit is on non-zero when decoded with
    :meth:`inverse` ``(z, nonzero)``: the zeros are then exactly the bits' zeros.

    Parameters
    ----------
    scale
        ``m_g`` per gene (any shape that broadcasts against a minibatch).
    fill
        Scaled value of a zero entry per gene (:meth:`fill_zeros`); ``None``: -1.
    floor
        Smallest value an entry with its bit on decodes to; ``None``: 0.

    Examples
    --------
    >>> s = Scaler(np.array([2.0, 4.0]))
    >>> s.transform(torch.tensor([[1.0, 4.0]])).tolist()
    [[0.0, 1.0]]
    """

    def __init__(
        self, scale: np.ndarray, fill: np.ndarray | None = None, floor: np.ndarray | None = None
    ) -> None:
        self.gene_max = np.asarray(scale, dtype=np.float32).copy()
        scale = self.gene_max.copy()
        scale[scale <= 0] = 1.0
        self.scale = scale
        self.fill = (
            None if fill is None else np.asarray(fill, dtype=np.float32).reshape(scale.shape)
        )
        self.floor = (
            None if floor is None else np.asarray(floor, dtype=np.float32).reshape(scale.shape)
        )
        self._on_device: dict[str, tuple[int, torch.Tensor]] = {}

    @classmethod
    def fit(cls, matrix: Any, zero_fill: str = "min") -> Scaler:
        """Scaler fitted on ``matrix`` (read in row chunks).

        ``zero_fill="min"`` encodes zeros as -1 (the plain map); ``"nonzero_mean"`` as
        the scaled mean of the gene's non-zero values, with the smallest non-zero value
        as the decoding floor.
        """
        if zero_fill not in ZERO_FILLS:
            raise ValueError(f"zero_fill must be one of {ZERO_FILLS}, got {zero_fill!r}.")
        if zero_fill == "min":
            return cls(gene_max(matrix))
        stats = gene_stats(matrix)
        top = np.where(stats["max"] > 0, stats["max"], 1.0)
        fill = np.where(stats["max"] > 0, 2.0 * stats["nonzero_mean"] / top - 1.0, -1.0)
        return cls(stats["max"], fill=fill, floor=stats["nonzero_min"])

    def _cached(self, name: str, values: np.ndarray, device: torch.device) -> torch.Tensor:
        key = f"{name}:{device}"
        cached = self._on_device.get(key)
        if cached is None or cached[0] != id(values):
            cached = (id(values), torch.as_tensor(values).to(device))
            self._on_device[key] = cached
        return cached[1]

    def fill_zeros(self, z: torch.Tensor, nonzero: torch.Tensor) -> torch.Tensor:
        """Scaled data with the zero entries set to the per-gene ``fill`` (if any)."""
        fill = self.fill_value(z.device)
        return z if fill is None else torch.where(nonzero, z, fill.to(z.dtype))

    def fill_value(self, device: torch.device) -> torch.Tensor | None:
        """The per-gene scaled value of a zero entry on ``device`` (``None``: none set)."""
        return None if self.fill is None else self._cached("fill", self.fill, device)

    def _scale(self, device: torch.device) -> torch.Tensor:
        # cached per device: no host-to-device copy per minibatch
        return self._cached("scale", self.scale, device)

    def transform(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Map values to [-1, 1] (into ``out`` when given, which may be ``x`` itself)."""
        out = torch.mul(x, 2.0, out=out) if out is not None else 2.0 * x
        return out.div_(self._scale(x.device)).sub_(1.0).clamp_(-1.0, 1.0)

    def inverse(self, z: torch.Tensor, nonzero: torch.Tensor | None = None) -> torch.Tensor:
        """Map [-1, 1] back to the data's units (``[0, m_g]``).

        With ``nonzero`` (the thresholded sparsity bits), entries whose bit is off are
        exactly 0 and entries whose bit is on are at least ``floor`` (when set).
        """
        x = ((z.clamp(-1.0, 1.0) + 1.0) * 0.5) * self._upper(z.device)
        if nonzero is None:
            return x
        if self.floor is not None:
            x = torch.maximum(x, self._cached("floor", self.floor, z.device).to(x.dtype))
        return torch.where(nonzero.bool(), x, torch.zeros_like(x))

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
        return self._cached("upper", self.gene_max, device)  # same shape as ``scale``

    def __getstate__(self) -> dict:
        state = {"scale": self.gene_max}
        if self.fill is not None:
            state.update(fill=self.fill, floor=self.floor)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["scale"], state.get("fill"), state.get("floor"))
