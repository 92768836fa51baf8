"""Sparsity agreement: exact-zero fractions overall, per gene and per cell."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from ._utils import as_matrix, as_pair

__all__ = ["zero_fraction", "cell_sparsity", "gene_sparsity", "sparsity_metrics"]


def _nonzero_counts(m: np.ndarray | sp.csr_matrix, axis: int | None) -> np.ndarray | int:
    """Non-zero entries of a checked matrix (see :func:`as_matrix`), overall or per axis."""
    if sp.issparse(m):
        nz = m != 0  # drops explicitly stored zeros
        return int(nz.nnz) if axis is None else np.asarray(nz.sum(axis=axis)).ravel()
    return np.count_nonzero(m, axis=axis)


def zero_fraction(x: Any) -> float:
    """Fraction of exact zeros in a matrix (the "sparsity" column of the SDD paper).

    Parameters
    ----------
    x
        Array or scipy sparse matrix; explicitly stored zeros of a sparse matrix count as
        zeros.

    Returns
    -------
    Fraction in [0, 1].

    Examples
    --------
    >>> import numpy as np, sdd
    >>> sdd.metrics.zero_fraction(np.array([[0.0, 1.0], [0.0, 0.0]]))
    0.75
    """
    m = as_matrix(x, "x")
    return float(1.0 - _nonzero_counts(m, None) / (m.shape[0] * m.shape[1]))


def cell_sparsity(x: Any) -> np.ndarray:
    """Fraction of exact zeros in each row (cell).

    Parameters
    ----------
    x
        ``(cells, genes)`` array or scipy sparse matrix.

    Returns
    -------
    ``(cells,)`` float64 array in [0, 1].

    Examples
    --------
    >>> import numpy as np, sdd
    >>> sdd.metrics.cell_sparsity(np.array([[0.0, 1.0], [0.0, 0.0]]))
    array([0.5, 1. ])
    """
    m = as_matrix(x, "x")
    return 1.0 - _nonzero_counts(m, 1) / m.shape[1]


def gene_sparsity(x: Any) -> np.ndarray:
    """Fraction of exact zeros in each column (gene).

    Parameters
    ----------
    x
        ``(cells, genes)`` array or scipy sparse matrix.

    Returns
    -------
    ``(genes,)`` float64 array in [0, 1].

    Examples
    --------
    >>> import numpy as np, sdd
    >>> sdd.metrics.gene_sparsity(np.array([[0.0, 1.0], [0.0, 0.0]]))
    array([1. , 0.5])
    """
    m = as_matrix(x, "x")
    return 1.0 - _nonzero_counts(m, 0) / m.shape[0]


def sparsity_metrics(real: Any, generated: Any) -> dict[str, float]:
    """Compare the zero patterns of real and generated cells.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes in the same
        order; the numbers of cells may differ.

    Returns
    -------
    dict with

    ``"sparsity_real"``, ``"sparsity_generated"``
        Overall fraction of exact zeros (:func:`zero_fraction`).
    ``"sparsity_gene_corr"``
        Pearson correlation of the per-gene zero fractions (:func:`gene_sparsity`); NaN
        when either set has the same zero fraction in every gene, e.g. a model that
        never outputs an exact zero.
    ``"sparsity_cell_w1"``
        1-D Wasserstein distance between the distributions of per-cell zero fractions
        (:func:`cell_sparsity`, :func:`scipy.stats.wasserstein_distance`); 0 when they
        match, at most 1.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(0.5, size=(200, 30)).astype(float)
    >>> m = sdd.metrics.sparsity_metrics(x, x + 1.0)  # no zeros at all in "generated"
    >>> m["sparsity_generated"], round(m["sparsity_cell_w1"], 2) == round(m["sparsity_real"], 2)
    (0.0, True)
    """
    x, y = as_pair(real, generated)
    gx, gy = gene_sparsity(x), gene_sparsity(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        gene_corr = float(stats.pearsonr(gx, gy)[0]) if gx.size > 1 else float("nan")
    return {
        "sparsity_real": zero_fraction(x),
        "sparsity_generated": zero_fraction(y),
        "sparsity_gene_corr": gene_corr,
        "sparsity_cell_w1": float(stats.wasserstein_distance(cell_sparsity(x), cell_sparsity(y))),
    }
