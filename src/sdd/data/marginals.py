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

__all__ = ["nonzero_quantiles", "map_quantiles"]


def nonzero_quantiles(
    matrix: Any,
    n_levels: int = 101,
    *,
    min_values: int = 10,
    max_rows: int = 20_000,
    chunk_rows: int = 4096,
    random_state: int = 0,
) -> np.ndarray:
    """Quantiles of each column's non-zero values, ``(n_columns, n_levels)``.

    Levels are evenly spaced from 0 to 1 (minimum to maximum). A column with fewer than
    ``min_values`` non-zeros gets a row of NaN. At most ``max_rows`` rows are read (a
    random subset beyond that), ``chunk_rows`` at a time, so backed data are never
    loaded whole.

    Examples
    --------
    >>> X = np.zeros((20, 2)); X[:, 0] = np.arange(20)
    >>> q = nonzero_quantiles(X, 3)
    >>> q[0].tolist(), bool(np.isnan(q[1]).all())
    ([1.0, 10.0, 19.0], True)
    """
    n_rows, n_cols = matrix.shape
    keep = np.ones(n_rows, dtype=bool)
    if n_rows > max_rows:
        keep[:] = False
        keep[np.random.default_rng(random_state).choice(n_rows, max_rows, replace=False)] = True
    blocks = []
    for start in range(0, n_rows, chunk_rows):
        block = matrix[start : start + chunk_rows]
        block = block if sp.issparse(block) else sp.csr_matrix(np.asarray(block))
        blocks.append(sp.csr_matrix(block)[keep[start : start + chunk_rows]])
    columns = sp.vstack(blocks, format="csc") if blocks else sp.csc_matrix((0, n_cols))
    levels = np.linspace(0.0, 1.0, int(n_levels))
    out = np.full((n_cols, levels.size), np.nan)
    for g in range(n_cols):
        values = columns.data[columns.indptr[g] : columns.indptr[g + 1]]
        values = values[values != 0]
        if values.size >= min_values:
            out[g] = np.quantile(values, levels)
    return out


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
    usable = ~(np.isnan(source).any(axis=1) | np.isnan(target).any(axis=1))
    for g in np.flatnonzero(usable):
        column = out[:, g]
        on = column != 0
        if on.any():
            x = column[on]
            column[on] = (1.0 - weight) * x + weight * np.interp(x, source[g], target[g])
    return out
