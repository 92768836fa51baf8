"""Per-gene distributions of non-zero values, and the monotone map from one to another.

:meth:`sdd.SDD.calibrate` stores, per gene, quantiles of the training cells' non-zero
values (:func:`nonzero_quantiles`) and of a generated sample's; :func:`map_quantiles`
then carries every generated non-zero value to the training value at the same quantile
(piecewise linear between quantiles), so that each gene's expressed values follow the
training distribution while zeros stay exactly zero and the order of a gene's values
across cells is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .detection import nonzero_counts

__all__ = ["nonzero_quantiles", "column_blocks", "map_quantiles", "interp_rows", "mappable"]


def nonzero_quantiles(
    matrix: Any,
    n_levels: int = 101,
    *,
    min_values: int = 10,
    rows: np.ndarray | None = None,
    per_column: np.ndarray | None = None,
    max_rows: int = 20_000,
    max_values: int = 1_000_000,
    chunk_rows: int = 1024,
    random_state: int = 0,
) -> np.ndarray:
    """Quantiles of each column's non-zero values, ``(n_columns, n_levels)``.

    Levels are evenly spaced from 0 to 1 (minimum to maximum). A column with fewer than
    ``min_values`` non-zeros gets a row of NaN. Only the rows where the boolean mask
    ``rows`` is true count (all by default); at most ``max_rows`` of them are read (a
    random subset beyond that), ``chunk_rows`` at a time, and the columns are taken in
    blocks of at most ``max_values`` non-zeros (one read of those rows per block), so
    backed data are never loaded whole and memory stays bounded whatever the number of
    genes. ``per_column``, the non-zeros per column among the chosen rows (or an upper
    bound), saves the counting read.

    Examples
    --------
    >>> X = np.zeros((20, 2)); X[:, 0] = np.arange(20)
    >>> q = nonzero_quantiles(X, 3)
    >>> q[0].tolist(), bool(np.isnan(q[1]).all())
    ([1.0, 10.0, 19.0], True)
    """
    n_rows, n_cols = matrix.shape
    kept = np.flatnonzero(_row_subset(n_rows, rows, max_rows, random_state))
    levels = np.linspace(0.0, 1.0, int(n_levels))
    out = np.full((n_cols, levels.size), np.nan)
    if per_column is None:
        per_column = np.zeros(n_cols, dtype=np.int64)
        for start in range(0, kept.size, chunk_rows):
            block = _read_rows(matrix, kept[start : start + chunk_rows])
            per_column += nonzero_counts(block, chunk_rows)[1]
    for lo, hi in column_blocks(per_column, max_values):
        columns = _nonzero_block(matrix, kept, lo, hi, chunk_rows)
        for g in range(hi - lo):
            values = columns.data[columns.indptr[g] : columns.indptr[g + 1]]
            values = values[values != 0]
            if values.size >= min_values:
                out[lo + g] = np.quantile(values, levels)
    return out


def column_blocks(per_column: np.ndarray, max_values: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` column ranges holding at most ``max_values`` non-zeros
    each (a single column above the limit is a block of its own).

    Examples
    --------
    >>> column_blocks(np.array([3, 3, 3, 9, 1]), 6)
    [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    blocks, start, held = [], 0, 0
    for column, count in enumerate(np.asarray(per_column, dtype=np.int64)):
        if column > start and held + count > max_values:
            blocks.append((start, column))
            start, held = column, 0
        held += count
    if len(per_column) > start:
        blocks.append((start, len(per_column)))
    return blocks


def _row_subset(
    n_rows: int, rows: np.ndarray | None, max_rows: int, random_state: int
) -> np.ndarray:
    keep = np.ones(n_rows, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    if keep.shape != (n_rows,):
        raise ValueError(f"rows has shape {keep.shape}, expected ({n_rows},).")
    chosen = np.flatnonzero(keep)
    if chosen.size > max_rows:
        keep = np.zeros(n_rows, dtype=bool)
        keep[np.random.default_rng(random_state).choice(chosen, max_rows, replace=False)] = True
    return keep


def _read_rows(matrix: Any, index: np.ndarray) -> sp.csr_matrix:
    """Rows ``index`` (sorted) of a dense, sparse or backed matrix, as CSR: a slice when
    they are contiguous, else one sorted selection (only these rows are read)."""
    if index.size and index[-1] - index[0] + 1 == index.size:
        block = matrix[int(index[0]) : int(index[-1]) + 1]
    else:
        block = matrix[index]
    return sp.csr_matrix(block) if sp.issparse(block) else sp.csr_matrix(np.asarray(block))


def _nonzero_block(
    matrix: Any, kept: np.ndarray, lo: int, hi: int, chunk_rows: int
) -> sp.csc_matrix:
    """Columns ``lo:hi`` of the rows ``kept``, as CSC, read ``chunk_rows`` rows at a time."""
    pieces = []
    for start in range(0, kept.size, chunk_rows):
        block = _read_rows(matrix, kept[start : start + chunk_rows])
        pieces.append(block[:, lo:hi])
        del block
    if not pieces:
        return sp.csc_matrix((0, hi - lo))
    return sp.vstack(pieces, format="csc")


def map_quantiles(
    values: np.ndarray, source: np.ndarray, target: np.ndarray, weight: float = 1.0
) -> np.ndarray:
    """Carry each column's non-zero entries from the ``source`` to the ``target`` quantiles.

    ``values`` is dense ``(rows, columns)``; ``source`` and ``target`` are
    ``(columns, levels)`` (:func:`nonzero_quantiles`). A non-zero value at the ``p``-th
    source quantile of its column becomes the ``p``-th target quantile (linear between
    levels, clamped to the ends); with ``weight`` below 1 it moves only that fraction of
    the way, ``(1 - weight) x + weight * mapped(x)``. Zeros stay zero, and columns with NaN
    quantiles on either side are left as they are. Returns a new array.

    Examples
    --------
    >>> levels = np.linspace(0, 1, 3)[None]
    >>> map_quantiles(np.array([[0.0, 0.5]]), np.vstack([levels, levels]),
    ...               np.vstack([2 * levels, 2 * levels])).tolist()
    [[0.0, 1.0]]
    """
    out = np.array(values, dtype=np.float32, copy=True)
    usable = np.flatnonzero(mappable(source, target))
    block = out[:, usable]
    cells, genes = np.nonzero(block)
    if cells.size:
        x = block[cells, genes].astype(np.float64)
        mapped = interp_rows(x, genes, source[usable], target[usable])
        block[cells, genes] = (1.0 - weight) * x + weight * mapped
        out[:, usable] = block
    return out


def mappable(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Columns whose quantiles are known on both sides (no NaN in either row).

    Examples
    --------
    >>> mappable(np.array([[0.0, 1.0], [np.nan, np.nan]]), np.ones((2, 2))).tolist()
    [True, False]
    """
    return ~(np.isnan(source).any(axis=1) | np.isnan(target).any(axis=1))


def interp_rows(x: np.ndarray, row: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x[i], xp[row[i]], fp[row[i]])`` for every ``i`` at once.

    Each row of ``xp`` must be non-decreasing and free of NaN; ``xp`` and ``fp`` are
    ``(rows, levels)``. Ties in ``xp`` and values outside a row's range are treated as
    :func:`numpy.interp` treats them.

    Examples
    --------
    >>> xp = np.array([[0.0, 1.0], [0.0, 2.0]]); fp = np.array([[0.0, 10.0], [0.0, 1.0]])
    >>> interp_rows(np.array([0.5, 1.0, 5.0]), np.array([0, 1, 1]), xp, fp).tolist()
    [5.0, 0.5, 1.0]
    """
    x, row = np.asarray(x, dtype=np.float64), np.asarray(row, dtype=np.int64)
    xp, fp = np.asarray(xp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    n_levels = xp.shape[1]
    # one sorted array: row r's quantiles shifted by r * span, where span exceeds every
    # value's range, so that one searchsorted finds each x within its own row
    low = min(xp.min(), x.min())
    span = max(xp.max(), x.max()) - low + 1.0
    keys = ((xp - low) + span * np.arange(len(xp))[:, None]).ravel()
    right = np.searchsorted(keys, (x - low) + span * row, side="right") - row * n_levels
    left = np.clip(right - 1, 0, n_levels - 1)
    right = np.clip(right, 0, n_levels - 1)
    x0, x1 = xp[row, left], xp[row, right]
    y0, y1 = fp[row, left], fp[row, right]
    inside = x1 > x0
    slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(x), where=inside)
    out = np.where(inside, y0 + slope * (x - x0), y0)
    out = np.where(x < xp[row, 0], fp[row, 0], out)
    return np.where(x >= xp[row, -1], fp[row, -1], out)
