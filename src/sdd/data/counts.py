"""Counts <-> log1p-normalised values, and per-cell library sizes (size factors).

Training values are ``x = log1p(counts / s)`` with one size factor ``s`` per cell (as
``sc.pp.normalize_total`` then ``sc.pp.log1p`` give). The helpers here read ``s`` off a
counts layer or an ``obs`` column of library sizes, check that the data have this form,
and turn generated values back into integer counts. Matrices may be dense, sparse or
backed; they are read in row chunks of about 4M entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

RELATIVE_TOLERANCE = 1e-3  # allowed spread of per-cell normalisation factors


def dense_rows(matrix: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a dense, sparse or backed matrix as a dense array (own dtype)."""
    block = matrix[start:stop]
    return block.toarray() if sp.issparse(block) else np.asarray(block)


def _row_step(n_genes: int) -> int:
    return max(1, 2**22 // max(int(n_genes), 1))  # ~4M entries per dense chunk


def size_factors_from_counts(
    matrix: Any, counts: Any, obs_names: Sequence[str], n_rows: int | None = None
) -> np.ndarray:
    """Per-cell ``s`` with ``expm1(x) * s == counts`` (NaN for cells without counts).

    Raises a ValueError when ``counts`` is not integer-valued or ``x`` is not
    ``log1p(counts / s)`` with one factor per cell.
    """
    n = matrix.shape[0] if n_rows is None else min(int(n_rows), matrix.shape[0])
    out = np.full(n, np.nan)
    step = _row_step(matrix.shape[1])
    for start in range(0, n, step):
        stop = min(start + step, n)
        x = dense_rows(matrix, start, stop).astype(np.float64)
        c = dense_rows(counts, start, stop).astype(np.float64)
        if np.any(c != np.round(c)):
            raise ValueError(
                "The counts layer must hold raw integer counts, but it has non-integer values."
            )
        nonzero = c > 0
        mismatch = nonzero != (x > 0)
        if mismatch.any():
            cell = obs_names[start + int(np.flatnonzero(mismatch.any(axis=1))[0])]
            raise ValueError(
                "The counts layer and the training values have different zero patterns (e.g. "
                f"cell {str(cell)!r}); counts output needs training values that are "
                "log1p-normalised counts of the same cells and genes."
            )
        has = nonzero.any(axis=1)
        if not has.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(nonzero, c / np.expm1(x), np.nan)[has]
        factor = np.nanmedian(ratio, axis=1)
        spread = np.nanmax(np.abs(ratio / factor[:, None] - 1.0), axis=1)
        if np.any(spread > RELATIVE_TOLERANCE):
            k = int(np.argmax(spread))
            cell = obs_names[start + int(np.flatnonzero(has)[k])]
            raise ValueError(
                "Counts output needs training values x = log1p(counts / s) with one factor s "
                "per cell (natural log; e.g. sc.pp.normalize_total then sc.pp.log1p), but in "
                f"cell {str(cell)!r} counts / expm1(x) varies by {spread[k]:.2g} (relative) "
                "across genes. Is the data log1p-normalised?"
            )
        block = np.full(stop - start, np.nan)
        block[has] = factor
        out[start:stop] = block
    return out


def _expm1_sums(matrix: Any) -> np.ndarray:
    step = _row_step(matrix.shape[1])
    parts = [
        np.expm1(dense_rows(matrix, s, min(s + step, matrix.shape[0])).astype(np.float64)).sum(1)
        for s in range(0, matrix.shape[0], step)
    ]
    return np.concatenate(parts)


def library_sizes(adata: AnnData, key: str) -> np.ndarray:
    if key not in adata.obs:
        raise ValueError(
            f"Column {key!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise TypeError(f"adata.obs[{key!r}] must hold numeric library sizes, got {column.dtype}.")
    sizes = column.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(sizes)) or sizes.min() < 0:
        raise ValueError(f"adata.obs[{key!r}] must hold finite, non-negative library sizes.")
    return sizes


def infer_target_sum(matrix: Any) -> float:
    """``target_sum`` of ``normalize_total``: the per-cell sum of ``expm1(x)``, if constant."""
    sums = _expm1_sums(matrix)
    sums = sums[sums > 0]
    if not sums.size:
        raise ValueError("Every cell is all-zero; cannot infer target_sum.")
    target = float(np.median(sums))
    spread = float(np.max(np.abs(sums / target - 1.0)))
    if spread > RELATIVE_TOLERANCE:
        raise ValueError(
            "Cannot infer target_sum: the per-cell sums of expm1(x) differ by up to "
            f"{spread:.1%} (median {target:.6g}), so the values are not log1p(normalize_total) "
            "of these genes alone (e.g. genes were subset after normalising). Pass "
            "target_sum= (the value given to sc.pp.normalize_total) or counts_layer=."
        )
    return target


def invert_log1p(X: sp.csr_matrix, size_factors: np.ndarray) -> sp.csr_matrix:
    """Counts ``max(1, round(expm1(x) * s))`` on the non-zeros of ``X`` (CSR float32).

    Examples
    --------
    >>> X = sp.csr_matrix(np.log1p(np.array([[0.0, 2.0], [0.25, 0.0]])))
    >>> invert_log1p(X, np.array([3.0, 2.0])).toarray().tolist()
    [[0.0, 6.0], [1.0, 0.0]]
    """
    X = sp.csr_matrix(X, copy=True)
    X.eliminate_zeros()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    values = np.rint(np.expm1(X.data.astype(np.float64)) * size_factors[rows])
    out = X.copy()
    out.data = np.maximum(values, 1.0).astype(np.float32)
    return out


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out
