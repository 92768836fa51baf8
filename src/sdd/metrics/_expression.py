"""Mean-expression agreement: SCC and PCC of per-gene means (as in scDiffusion and SDD)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from ._utils import as_matrix, as_pair

__all__ = ["gene_means", "scc", "pcc"]


def gene_means(x: Any) -> np.ndarray:
    """Mean of each gene (column) over cells.

    Parameters
    ----------
    x
        ``(cells, genes)`` array or scipy sparse matrix.

    Returns
    -------
    ``(genes,)`` float64 array.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> sdd.metrics.gene_means(np.array([[0.0, 2.0], [1.0, 0.0]]))
    array([0.5, 1. ])
    """
    m = as_matrix(x, "x")
    if sp.issparse(m):  # scipy sums float32 data in float32; accumulate in float64 instead
        totals = np.bincount(m.indices, weights=m.data.astype(np.float64), minlength=m.shape[1])
        return totals / m.shape[0]
    return m.mean(axis=0, dtype=np.float64)


def _correlation(real: Any, generated: Any, method: str) -> float:
    x, y = as_pair(real, generated)
    a, b = gene_means(x), gene_means(y)
    if a.size < 2:
        raise ValueError("A correlation of per-gene means needs at least 2 genes.")
    with warnings.catch_warnings():
        # a constant vector (e.g. all genes with the same mean) has no correlation: NaN
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        result = stats.spearmanr(a, b) if method == "spearman" else stats.pearsonr(a, b)
    return float(result[0])


def scc(real: Any, generated: Any) -> float:
    """Spearman correlation between the per-gene mean expression of two sets of cells.

    The SCC of the SDD paper and scDiffusion: genes are ranked by their mean over the real
    cells and over the generated cells, and the ranks are correlated. 1 means the genes
    are ordered the same way by mean expression.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes in the same
        order; the numbers of cells may differ.

    Returns
    -------
    Spearman's rho in [-1, 1] (NaN when one set's gene means are all equal).

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(np.arange(1, 6), size=(100, 5))
    >>> round(sdd.metrics.scc(x, x[::-1]), 3)
    1.0
    """
    return _correlation(real, generated, "spearman")


def pcc(real: Any, generated: Any) -> float:
    """Pearson correlation between the per-gene mean expression of two sets of cells.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes in the same
        order; the numbers of cells may differ.

    Returns
    -------
    Pearson's r in [-1, 1] (NaN when one set's gene means are all equal).

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(np.arange(1, 6), size=(100, 5))
    >>> round(sdd.metrics.pcc(x, x[:50]), 2) > 0.9
    True
    """
    return _correlation(real, generated, "pearson")
