"""Counts <-> log1p-normalised values, and per-cell library sizes (size factors).

Training values are ``x = log1p(counts / s)`` with one size factor ``s`` per cell (as
``sc.pp.normalize_total`` then ``sc.pp.log1p`` give). The helpers here read ``s`` off a
counts layer or an ``obs`` column of library sizes, check that the data have this form,
and turn generated values back into integer counts. Matrices may be dense, sparse or
backed; they are read in row chunks of about 4M entries.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .chunks import row_blocks
from .validate import check_matrix, get_matrix

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


def check_integer_counts(matrix: Any, *, where: str = "data", chunk_rows: int = 4096) -> None:
    """Raise unless ``matrix`` holds finite, non-negative whole numbers (checked in chunks).

    Examples
    --------
    >>> check_integer_counts(np.array([[0.0, 3.0]]))
    >>> check_integer_counts(np.array([[0.5]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data must hold integer counts (found 0.5); ...
    """
    check_matrix(matrix, where=where, chunk_rows=chunk_rows)
    chunks = (
        [matrix.data]
        if sp.issparse(matrix)
        else (matrix[i : i + chunk_rows] for i in range(0, matrix.shape[0], chunk_rows))
    )
    for chunk in chunks:
        values = chunk.data if sp.issparse(chunk) else np.asarray(chunk)
        if values.size and not np.array_equal(values, np.round(values)):
            bad = float(values[values != np.round(values)].ravel()[0])
            raise ValueError(
                f"{where} must hold integer counts (found {bad!r}); Blackout Diffusion models raw "
                "counts, e.g. layer='counts', not normalised or log-transformed values."
            )


def gene_mean(matrix: Any, chunk_rows: int = 4096) -> np.ndarray:
    """Per-gene mean, read ``chunk_rows`` rows at a time (dense, sparse or backed).

    Examples
    --------
    >>> gene_mean(np.array([[0.0, 2.0], [1.0, 0.0]])).tolist()
    [0.5, 1.0]
    """
    total = np.zeros(matrix.shape[1], dtype=np.float64)
    for _, block in row_blocks(matrix, chunk_rows):
        total += np.asarray(block.sum(axis=0), dtype=np.float64).ravel()
    return total / matrix.shape[0]


def check_library_setup(
    adata: AnnData,
    matrix: Any,
    *,
    layer: str | None,
    counts_layer: str | None,
    library_size_key: str | None,
    target_sum: float | None,
    n_rows: int | None = None,
) -> float | None:
    """Check where the library sizes come from (a counts layer or an ``obs`` column).

    Checks the first ``n_rows`` cells of ``counts_layer`` against ``matrix`` (all when
    ``None``) and returns ``target_sum`` (inferred from ``matrix`` for
    ``library_size_key`` when not given).
    """
    if counts_layer is not None and library_size_key is not None:
        raise ValueError("Pass counts_layer or library_size_key, not both.")
    if target_sum is not None:
        if library_size_key is None:
            raise ValueError("target_sum is only used together with library_size_key.")
        if isinstance(target_sum, bool) or not np.isfinite(target_sum) or target_sum <= 0:
            raise ValueError(f"target_sum must be a positive number, got {target_sum!r}.")
        target_sum = float(target_sum)
    if counts_layer is not None:
        if counts_layer == layer:
            raise ValueError(
                f"counts_layer={counts_layer!r} is the layer the model learns; the model "
                "learns log1p-normalised values (layer=) and reads raw counts from counts_layer."
            )
        counts = get_matrix(adata, counts_layer)
        check_matrix(counts, where=f"adata.layers[{counts_layer!r}]")
        size_factors_from_counts(matrix, counts, [str(v) for v in adata.obs_names], n_rows=n_rows)
    if library_size_key is not None:
        library_sizes(adata, library_size_key)
        if target_sum is None:
            target_sum = infer_target_sum(matrix)
    return target_sum


def training_size_factors(
    adata: AnnData, matrix: Any, setup: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Size factors of the training cells that have counts, and which cells those are.

    ``setup`` holds ``counts_layer`` or ``library_size_key`` (with ``target_sum``);
    ``None`` when it holds neither.
    """
    if setup.get("counts_layer"):
        names = [str(v) for v in adata.obs_names]
        factors = size_factors_from_counts(matrix, get_matrix(adata, setup["counts_layer"]), names)
    elif setup.get("library_size_key"):
        factors = library_sizes(adata, setup["library_size_key"]) / float(setup["target_sum"])
    else:
        return None
    ok = np.isfinite(factors) & (factors > 0)
    if not ok.any():
        raise ValueError("No training cell has counts; cannot learn library sizes.")
    return factors[ok].astype(np.float64), ok


def sample_size_factors(
    factors: np.ndarray,
    pool_codes: np.ndarray | None,
    codes: np.ndarray | None,
    n: int,
    categories: Mapping[str, list],
    rng: np.random.Generator,
    *,
    what: str = "library sizes",
) -> np.ndarray:
    """Size factors drawn (with replacement) from training cells with the same conditions.

    Any per-cell value works (``what`` names it in the warning), e.g. depth bins.

    ``codes`` (one row of condition codes per generated cell, the null code
    ``len(categories[key])`` for a condition left out) select the pool among the training
    cells' ``pool_codes``; a combination no training cell has draws from all of them,
    with a warning.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sample_size_factors(np.array([1.0, 5.0]), np.array([[0], [1]]), np.array([[1]]), 1,
    ...                     {"cell_type": ["A", "B"]}, rng).tolist()
    [5.0]
    """
    if codes is None or pool_codes is None:
        return rng.choice(factors, size=n)
    null = np.asarray([len(c) for c in categories.values()])
    out = np.empty(n)
    unique, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    for j, row in enumerate(unique):
        given = row != null
        pool = np.all(pool_codes[:, given] == row[given], axis=1)
        if not pool.any():
            asked = {
                key: cats[c]
                for (key, cats), c, g in zip(categories.items(), row, given, strict=True)
                if g
            }
            warnings.warn(
                f"No training cell has the conditions {asked}; their {what} are "
                "drawn from all training cells.",
                stacklevel=3,
            )
            pool[:] = True
        cells = inverse == j
        out[cells] = rng.choice(factors[pool], size=int(cells.sum()))
    return out
