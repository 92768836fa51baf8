"""Detection per gene and per cell: how often a value is non-zero, and depth bins.

The detection rate of a gene (the fraction of cells in which it is non-zero) is what
:meth:`sdd.SDD.calibrate` matches; the number of detected genes of a cell (its depth)
is what ``SDD(depth_bins=)`` conditions on, as quantile bins of the training cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .chunks import row_blocks

__all__ = [
    "row_sums",
    "nonzero_counts",
    "nonzero_counts_by_group",
    "check_depth_bins",
    "depth_bins",
    "bin_codes",
]


def nonzero_counts(matrix: Any, chunk_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero entries per row and per column of a dense, sparse or backed matrix.

    Reads ``chunk_rows`` rows at a time, so backed data are never loaded whole.

    Examples
    --------
    >>> per_row, per_column = nonzero_counts(np.array([[0, 1.5], [2, 3], [0, 0]]))
    >>> per_row.tolist(), per_column.tolist()
    ([1, 2, 0], [1, 2])
    """
    n_rows, n_cols = matrix.shape
    per_row = np.zeros(n_rows, dtype=np.int64)
    per_column = np.zeros(n_cols, dtype=np.int64)
    for start, block in row_blocks(matrix, chunk_rows):
        nonzero = (block != 0) if sp.issparse(block) else (np.asarray(block) != 0)
        per_row[start : start + chunk_rows] = np.asarray(nonzero.sum(axis=1)).ravel()
        per_column += np.asarray(nonzero.sum(axis=0)).ravel()
    return per_row, per_column


def row_sums(matrix: Any, chunk_rows: int = 1024) -> np.ndarray:
    """Sum of each row of a dense, sparse or backed matrix (float64), in chunks.

    Examples
    --------
    >>> row_sums(np.array([[0, 1.5], [2, 3]])).tolist()
    [1.5, 5.0]
    """
    out = np.zeros(matrix.shape[0], dtype=np.float64)
    for start, block in row_blocks(matrix, chunk_rows):
        out[start : start + chunk_rows] = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    return out


def nonzero_counts_by_group(
    matrix: Any, groups: np.ndarray, n_groups: int, chunk_rows: int = 1024
) -> np.ndarray:
    """Non-zero entries per column within each group of rows: ``(n_groups, n_columns)``.

    ``groups[i]`` is the group (``0 .. n_groups - 1``) of row ``i``. Reads ``chunk_rows``
    rows at a time, so backed data are never loaded whole.

    Examples
    --------
    >>> X = np.array([[0, 1.5], [2, 3], [0, 0]])
    >>> nonzero_counts_by_group(X, np.array([0, 1, 1]), 2).tolist()
    [[0, 1], [1, 1]]
    """
    groups = np.asarray(groups, dtype=np.int64)
    if groups.shape != (matrix.shape[0],):
        raise ValueError(f"groups has shape {groups.shape}, expected ({matrix.shape[0]},).")
    counts = np.zeros((n_groups, matrix.shape[1]), dtype=np.int64)
    for start, block in row_blocks(matrix, chunk_rows):
        nonzero = sp.csr_matrix((block != 0) if sp.issparse(block) else (np.asarray(block) != 0))
        rows = groups[start : start + chunk_rows]
        member = sp.csr_matrix(
            (np.ones(rows.size), (rows, np.arange(rows.size))), shape=(n_groups, rows.size)
        )
        counts += np.asarray((member @ nonzero.astype(np.float64)).todense()).astype(np.int64)
    return counts


def check_depth_bins(value: Any) -> int:
    """``value`` as a number of depth bins: 0 (no depth condition) or at least 2."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"depth_bins must be an integer, got {value!r}.")
    if value == 1 or value < 0:
        raise ValueError(f"depth_bins must be 0 (off) or at least 2, got {value}.")
    return int(value)


def depth_bins(depth: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges of ``n_bins`` quantile bins of ``depth`` (``n_bins - 1`` inner edges).

    Examples
    --------
    >>> depth_bins(np.arange(10), 2).tolist()
    [4.5]
    """
    quantiles = np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]
    return np.quantile(np.asarray(depth, dtype=np.float64), quantiles)


def bin_codes(depth: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``0`` below the first edge, ``len(edges)`` above the last.

    Examples
    --------
    >>> bin_codes(np.array([0, 4, 5, 9]), np.array([4.5])).tolist()
    [0, 0, 1, 1]
    """
    return np.searchsorted(np.asarray(edges), np.asarray(depth, dtype=np.float64), side="right")
