"""Checks on user data, with errors that name the problem."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

__all__ = [
    "get_matrix",
    "matrix_name",
    "check_matrix",
    "check_int",
    "check_seed",
    "check_unit_interval",
    "density",
    "looks_like_counts",
    "warn_all_zero",
    "warn_if_raw_counts",
]

COUNTS_MIN_MAX = 20.0
"""Integer data whose largest value exceeds this look like raw counts: ``log1p`` of any
normalised library (``expm1(20)`` is 5e8) stays far below it."""


def get_matrix(adata: AnnData, layer: str | None):
    """Return ``adata.X`` or ``adata.layers[layer]`` after checking the key exists."""
    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData object, got {type(adata).__name__}.")
    if layer is None:
        if adata.X is None:
            raise ValueError("adata.X is empty (None); pass layer= to use a layer instead.")
        return adata.X
    if layer not in adata.layers:
        known = list(adata.layers.keys())
        raise ValueError(f"Layer {layer!r} not found in adata.layers (available: {known}).")
    return adata.layers[layer]


def matrix_name(layer: str | None) -> str:
    """How error messages name the matrix: ``adata.X`` or ``adata.layers['...']``."""
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


def _values(matrix) -> np.ndarray:
    if sp.issparse(matrix):
        return matrix.data
    return np.asarray(matrix)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_matrix(matrix, *, where: str = "data", chunk_rows: int = 4096) -> None:
    """Raise if ``matrix`` is empty, non-numeric, or has NaN/inf or negative values.

    Dense and backed matrices are checked in row chunks, so memory stays bounded.
    """
    shape = getattr(matrix, "shape", None)
    if shape is None or len(shape) != 2:
        raise TypeError(f"{where} must be a 2-D matrix, got {type(matrix).__name__}.")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"{where} is empty: shape {tuple(shape)} (need at least 1 cell and 1 gene)."
        )
    dtype = getattr(matrix, "dtype", None)
    if dtype is None or not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{where} must be numeric, got dtype {dtype}.")
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{where} must be real-valued, got dtype {dtype}.")
    if np.issubdtype(dtype, np.bool_) or dtype == np.float16:
        raise TypeError(
            f"{where} has dtype {dtype}; convert it to float32 first "
            "(e.g. adata.X = adata.X.astype(np.float32))."
        )
    chunks = (
        [matrix]
        if sp.issparse(matrix)
        else (matrix[i : i + chunk_rows] for i in range(0, shape[0], chunk_rows))
    )
    for chunk in chunks:
        values = _values(chunk)
        if values.size == 0:
            continue
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{where} contains NaN or infinite values.")
        if values.max() > FLOAT32_MAX:
            raise ValueError(
                f"{where} contains values up to {values.max():.4g}, beyond float32 "
                f"(about {FLOAT32_MAX:.3g}), which the model computes in; rescale the data "
                "(e.g. sc.pp.normalize_total and sc.pp.log1p)."
            )
        if values.min() < 0:
            raise ValueError(
                f"{where} contains negative values (min {values.min():.4g}); SDD models "
                "non-negative expression such as counts or log1p-normalised counts."
            )


def looks_like_counts(matrix, *, n_rows: int = 2048) -> tuple[bool, float]:
    """Whether the first ``n_rows`` rows are all integers with a maximum above 20.

    Returns the verdict and the maximum seen. Cheap: one pass over at most ``n_rows``
    rows (sparse, dense or backed).

    Examples
    --------
    >>> import numpy as np
    >>> looks_like_counts(np.array([[0.0, 3.0], [120.0, 1.0]]))
    (True, 120.0)
    >>> looks_like_counts(np.log1p(np.array([[0.0, 3.0], [120.0, 1.0]])))[0]
    False
    """
    top = 0.0
    step = 256  # rows per chunk: bounded memory on dense data, early exit on log data
    for start in range(0, min(n_rows, matrix.shape[0]), step):
        values = np.asarray(_values(matrix[start : min(start + step, n_rows)]))
        if values.size == 0:
            continue
        top = max(top, float(values.max()))
        if not np.issubdtype(values.dtype, np.integer) and np.any(values % 1 != 0):
            return False, top
    return top > COUNTS_MIN_MAX, top


def warn_if_raw_counts(matrix, *, where: str = "adata.X", stacklevel: int = 3) -> bool:
    """Warn when ``matrix`` looks like raw counts where log-normalised values are expected.

    For models that learn log1p-normalised expression (:class:`sdd.SDD`), not for
    :class:`sdd.SDDBlackout`, which wants counts. Returns whether it warned.

    Examples
    --------
    >>> import numpy as np, warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_raw_counts(np.array([[0.0, 3.0], [120.0, 1.0]]))
    True
    """
    counts, top = looks_like_counts(matrix)
    if counts:
        warnings.warn(
            f"{where} looks like raw counts (all integers, max {top:.0f}) but the model "
            "expects log-normalised expression. Normalise first: sc.pp.normalize_total(adata) "
            "then sc.pp.log1p(adata), keeping the counts in a layer "
            "(adata.layers['counts'] = adata.X.copy() before) and passing "
            "counts_layer='counts' to setup_anndata for generate(counts=True); "
            "for a model of raw counts use sdd.SDDBlackout.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return counts


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1), or a ``ValueError``/``TypeError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}.")
    if not (np.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
    return float(value)


def check_seed(value: Any, name: str = "random_state") -> int:
    """A seed: an integer in [0, 2**63)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer in [0, 2**63), got {value!r}.")
    if not 0 <= int(value) < 2**63:
        raise ValueError(f"{name} must be an integer in [0, 2**63), got {value!r}.")
    return int(value)


def density(matrix: Any) -> float | None:
    """Fraction of non-zero entries of a sparse matrix (``None`` for dense or backed data)."""
    if sp.issparse(matrix):
        return float(matrix.nnz) / max(1, matrix.shape[0] * matrix.shape[1])
    return None


def warn_all_zero(maximum: np.ndarray, names: Sequence[str], *, stacklevel: int = 3) -> None:
    """Warn about genes (columns) that are zero in every training row."""
    empty = np.flatnonzero(np.asarray(maximum) <= 0)
    if empty.size == len(maximum):
        warnings.warn(
            "The training matrix is all zeros: the model can only generate zeros.",
            stacklevel=stacklevel,
        )
    elif empty.size:
        warnings.warn(
            f"{empty.size} gene(s) are zero in every training cell (e.g. "
            f"{[names[i] for i in empty[:5]]}); they are generated as exact zeros.",
            stacklevel=stacklevel,
        )
