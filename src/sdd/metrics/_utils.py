"""Input checks shared by the metrics: cells x genes matrices, dense or scipy sparse."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def as_matrix(x: Any, name: str = "x") -> np.ndarray | sp.csr_matrix:
    """Return ``x`` as a 2-D float array or CSR matrix after checking it.

    Raises
    ------
    TypeError
        If ``x`` is not array-like or not real-valued numeric.
    ValueError
        If ``x`` is not 2-D, is empty, or holds NaN or infinite values.
    """
    if type(x).__name__ == "AnnData":
        raise TypeError(
            f"{name} is an AnnData; pass a matrix (e.g. adata.X) or use sdd.tl.evaluate."
        )
    if sp.issparse(x):
        matrix = sp.csr_matrix(x)
        values = matrix.data
    else:
        try:
            matrix = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - anything that cannot become an array
            raise TypeError(f"{name} must be an array or scipy sparse matrix: {err}") from err
        values = matrix
    dtype = matrix.dtype
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{name} must be numeric, got dtype {dtype}.")
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {dtype}.")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (cells x features), got shape {matrix.shape}.")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {matrix.shape}.")
    if not np.issubdtype(dtype, np.floating):
        matrix = matrix.astype(np.float64)
        values = matrix.data if sp.issparse(matrix) else matrix
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return matrix


def as_pair(
    real: Any, generated: Any, *, min_cells: int = 1
) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray | sp.csr_matrix]:
    """Check two matrices with the same features (columns) and at least ``min_cells`` rows."""
    x = as_matrix(real, "real")
    y = as_matrix(generated, "generated")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"real has {x.shape[1]} features (genes) but generated has {y.shape[1]}; "
            "both must have the same features in the same order."
        )
    for name, m in (("real", x), ("generated", y)):
        if m.shape[0] < min_cells:
            raise ValueError(
                f"{name} has {m.shape[0]} rows; this metric needs at least {min_cells}."
            )
    return x, y


def as_points(x: Any, name: str) -> np.ndarray:
    """A dense float64 ``(n, d)`` array of points (e.g. PCA coordinates)."""
    m = as_matrix(x, name)
    return np.asarray(m.toarray() if sp.issparse(m) else m, dtype=np.float64)


def points_pair(x: Any, y: Any, *, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two dense point sets in the same space, each with at least ``min_points`` rows."""
    a, b = as_points(x, "x"), as_points(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"x has {a.shape[1]} dimensions but y has {b.shape[1]}; both must live in the same space."
        )
    for name, m in (("x", a), ("y", b)):
        if m.shape[0] < min_points:
            raise ValueError(
                f"{name} has {m.shape[0]} points; this metric needs at least {min_points}."
            )
    return a, b
