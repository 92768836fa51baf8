"""Zero pattern per gene, gene-gene correlation structure, mean-variance relation."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data.validate import check_int
from ._utils import as_pair

__all__ = ["gene_corr_similarity", "mean_var_similarity", "zero_fraction_mae"]


def _gene_zero_fraction(x: Any) -> np.ndarray:
    nonzero = x.getnnz(axis=0) if sp.issparse(x) else np.count_nonzero(x, axis=0)
    return 1.0 - np.asarray(nonzero, dtype=np.float64) / x.shape[0]


def _moments(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and (population) variance, sparse-aware."""
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    sq = x.multiply(x).mean(axis=0) if sp.issparse(x) else np.mean(np.square(x), axis=0)
    var = np.asarray(sq, dtype=np.float64).ravel() - mean**2
    return mean, np.maximum(var, 0.0)


def zero_fraction_mae(real: Any, generated: Any) -> float:
    """Mean absolute difference of per-gene zero fractions, in percentage points.

    For each gene the fraction of cells with an exact zero is computed in both sets; the
    result is ``100 * mean_g |zf_real(g) - zf_generated(g)|``. 0 is best; two samples of one
    distribution give a small positive value that shrinks like ``1/sqrt(cells)``.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes.

    Returns
    -------
    MAE in percentage points, in ``[0, 100]``.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.array([[0, 1], [2, 0]])
    >>> sdd.metrics.zero_fraction_mae(x, x)
    0.0
    >>> sdd.metrics.zero_fraction_mae(x, np.ones((2, 2)))
    50.0
    """
    x, y = as_pair(real, generated)
    return float(100.0 * np.mean(np.abs(_gene_zero_fraction(x) - _gene_zero_fraction(y))))


def _corr_matrix(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    norm = np.sqrt(np.sum(centred * centred, axis=0))
    return (centred.T @ centred) / np.outer(norm, norm)


def gene_corr_similarity(real: Any, generated: Any, *, n_top_genes: int = 200) -> float:
    """Pearson correlation of the two gene-gene correlation matrices (upper triangles).

    The ``n_top_genes`` genes of highest variance in ``real`` (among those that vary in
    both sets) are kept; in each set the gene-gene Pearson correlation matrix is computed,
    and the off-diagonal upper triangles of the two are correlated. 1 means the same
    co-expression structure; independent genes in ``generated`` give about 0.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes.
    n_top_genes
        Number of most variable real genes to use (at least 3).

    Returns
    -------
    Pearson correlation in ``[-1, 1]``.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 30))
    >>> round(sdd.metrics.gene_corr_similarity(x, x), 6)
    1.0
    """
    x, y = as_pair(real, generated, min_cells=3)
    n_top_genes = check_int(n_top_genes, "n_top_genes", 3)
    _, var_x = _moments(x)
    _, var_y = _moments(y)
    ok = np.flatnonzero((var_x > 0) & (var_y > 0))
    if ok.size < 3:
        raise ValueError(
            f"gene_corr_similarity needs 3 genes that vary in both sets, got {ok.size}."
        )
    top = ok[np.argsort(-var_x[ok], kind="stable")[:n_top_genes]]
    dense = [
        np.asarray(m[:, top].toarray() if sp.issparse(m) else m[:, top], np.float64) for m in (x, y)
    ]
    iu = np.triu_indices(top.size, k=1)
    cx, cy = (_corr_matrix(m)[iu] for m in dense)
    return float(np.corrcoef(cx, cy)[0, 1])


def mean_var_similarity(real: Any, generated: Any, *, eps: float = 1e-6) -> dict[str, float]:
    """How well ``generated`` keeps each gene's variance at its mean.

    Per gene, ``log10(var + eps)`` is computed in both sets (genes expressed in neither set
    are dropped). Returned: ``"log_var_corr"``, the Pearson correlation of the two log
    variances over genes (1 is best), and ``"log_var_mae"``, their mean absolute
    difference in decades (0 is best). Since genes are matched one to one, the variances
    are compared at each gene's own (real and generated) mean; with :func:`pcc` of the means
    near 1 this is the mean-variance relation at matched means.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes.
    eps
        Added to the variances before the log (positive).

    Returns
    -------
    ``{"log_var_corr": float, "log_var_mae": float}``.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(3.0, size=(100, 20)).astype(float)
    >>> sdd.metrics.mean_var_similarity(x, x)["log_var_mae"]
    0.0
    """
    x, y = as_pair(real, generated, min_cells=2)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}.")
    mean_x, var_x = _moments(x)
    mean_y, var_y = _moments(y)
    keep = (mean_x != 0) | (mean_y != 0)
    if keep.sum() < 2:
        raise ValueError("mean_var_similarity needs at least 2 genes expressed in a set.")
    lx, ly = np.log10(var_x[keep] + eps), np.log10(var_y[keep] + eps)
    corr = np.corrcoef(lx, ly)[0, 1] if lx.std() > 0 and ly.std() > 0 else np.nan
    return {"log_var_corr": float(corr), "log_var_mae": float(np.mean(np.abs(lx - ly)))}
