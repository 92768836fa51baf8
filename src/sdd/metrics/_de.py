"""Differential-expression recovery: log-fold changes and top-k DE genes, real vs generated."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ..data.validate import check_int
from ._utils import as_matrix

__all__ = ["de_genes", "de_recovery", "log_fold_change"]


def _check_groups(a: Any, b: Any, what: str) -> tuple[Any, Any]:
    x, y = as_matrix(a, f"{what} group a"), as_matrix(b, f"{what} group b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{what} groups have {x.shape[1]} and {y.shape[1]} genes; they must be the same genes."
        )
    for name, m in (("a", x), ("b", y)):
        if m.shape[0] < 2:
            raise ValueError(f"{what} group {name} has {m.shape[0]} cells; DE needs at least 2.")
    return x, y


def _linear_mean(x: Any, log1p: bool) -> np.ndarray:
    if log1p:
        x = x.expm1() if sp.issparse(x) else np.expm1(x)
    return np.asarray(x.mean(axis=0), dtype=np.float64).ravel()


def log_fold_change(
    group_a: Any, group_b: Any, *, log1p: bool = True, pseudo_count: float = 1.0
) -> np.ndarray:
    """Per-gene log2 fold change of group ``a`` over group ``b``.

    ``log2((mean_a + c) / (mean_b + c))`` with the means taken on the linear scale: for
    log1p-normalised data (``log1p=True``, e.g. after ``normalize_total(1e4)`` + ``log1p``)
    the values are first mapped back with ``expm1``, as scanpy does. The pseudo-count ``c``
    (default 1, one normalised count per 10k, the same pseudo-count as ``log1p``) keeps genes barely expressed in both
    groups near 0 instead of letting their ratio of tiny means dominate the correlations.

    Parameters
    ----------
    group_a, group_b
        ``(cells, genes)`` matrices of the two groups.
    log1p
        Whether the values are ``log1p`` of linear expression.
    pseudo_count
        Non-negative value added to both means (0 only if no gene is all-zero).

    Returns
    -------
    ``(genes,)`` float64 array.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> a, b = np.full((3, 2), 4.0), np.full((3, 2), 1.0)
    >>> sdd.metrics.log_fold_change(a, b, log1p=False, pseudo_count=0.0)
    array([2., 2.])
    """
    x, y = _check_groups(group_a, group_b, "")
    if not pseudo_count >= 0:
        raise ValueError(f"pseudo_count must be non-negative, got {pseudo_count!r}.")
    ma, mb = _linear_mean(x, log1p) + pseudo_count, _linear_mean(y, log1p) + pseudo_count
    if np.any(ma <= 0) or np.any(mb <= 0):
        raise ValueError("a gene has zero mean in a group; pass a positive pseudo_count.")
    return np.log2(ma / mb)


def de_genes(
    group_a: Any,
    group_b: Any,
    *,
    method: Literal["wilcoxon", "t-test"] = "wilcoxon",
) -> tuple[np.ndarray, np.ndarray]:
    """Genes ranked by :func:`scanpy.tl.rank_genes_groups` for group ``a`` against ``b``.

    Returns
    -------
    ``(scores, order)``: the test score of each gene (positive = higher in ``a``) and the
    gene indices sorted by decreasing score.
    """
    import anndata as ad
    import scanpy as sc

    if method not in ("wilcoxon", "t-test"):
        raise ValueError(f"method must be 'wilcoxon' or 't-test', got {method!r}.")
    x, y = _check_groups(group_a, group_b, "")
    stacked = sp.vstack([sp.csr_matrix(x), sp.csr_matrix(y)], format="csr")
    adata = ad.AnnData(stacked.astype(np.float32))
    adata.var_names = [str(i) for i in range(x.shape[1])]
    adata.obs["g"] = np.repeat(["a", "b"], [x.shape[0], y.shape[0]])
    adata.obs["g"] = adata.obs["g"].astype("category")
    sc.tl.rank_genes_groups(
        adata, "g", groups=["a"], reference="b", method=method, n_genes=x.shape[1]
    )
    result = adata.uns["rank_genes_groups"]
    order = np.asarray(result["names"]["a"]).astype(int)
    scores = np.empty(x.shape[1])
    scores[order] = np.asarray(result["scores"]["a"], dtype=np.float64)
    scores = np.nan_to_num(scores, nan=0.0)
    return scores, np.argsort(-scores, kind="stable")


def de_recovery(
    real_a: Any,
    real_b: Any,
    generated_a: Any,
    generated_b: Any,
    *,
    k: int = 50,
    method: Literal["wilcoxon", "t-test"] = "wilcoxon",
    log1p: bool = True,
    pseudo_count: float = 1.0,
) -> dict[str, float]:
    """How well generated cells of two groups reproduce the real difference between them.

    - ``LFC_pearson`` / ``LFC_spearman``: correlation over genes of the real and generated
      :func:`log_fold_change` of ``a`` over ``b``;
    - ``top{k}_overlap``: fraction of the ``k`` genes with the largest absolute
      :func:`de_genes` score (either direction) in the real data that are also among the
      generated data's ``k``;
    - ``top{k}_up_overlap``: the same for the ``k`` genes most up-regulated in ``a``.

    1 is best everywhere; unrelated generated groups give LFC correlations near 0 and
    overlaps near ``k / genes``.

    Parameters
    ----------
    real_a, real_b, generated_a, generated_b
        ``(cells, genes)`` matrices of the two groups, real and generated, same genes.
    k
        Number of top DE genes compared.
    method
        Test of :func:`scanpy.tl.rank_genes_groups`.
    log1p, pseudo_count
        Passed to :func:`log_fold_change`.

    Returns
    -------
    Dict with the four values.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.poisson(2.0, (40, 60)), rng.poisson(1.0, (40, 60))
    >>> sdd.metrics.de_recovery(a, b, a, b, k=10)["LFC_pearson"]
    1.0
    """
    from scipy.stats import pearsonr, spearmanr

    k = check_int(k, "k", 1)
    xa, xb = _check_groups(real_a, real_b, "real")
    ya, yb = _check_groups(generated_a, generated_b, "generated")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"real has {xa.shape[1]} genes but generated has {ya.shape[1]}.")
    if k > xa.shape[1]:
        raise ValueError(f"k={k} exceeds the number of genes ({xa.shape[1]}).")
    lfc_x = log_fold_change(xa, xb, log1p=log1p, pseudo_count=pseudo_count)
    lfc_y = log_fold_change(ya, yb, log1p=log1p, pseudo_count=pseudo_count)
    if lfc_x.std() == 0 or lfc_y.std() == 0:
        pearson = spearman = float("nan")
    else:
        pearson = float(pearsonr(lfc_x, lfc_y)[0])
        spearman = float(spearmanr(lfc_x, lfc_y)[0])
    score_x, up_x = de_genes(xa, xb, method=method)
    score_y, up_y = de_genes(ya, yb, method=method)
    top_x = np.argsort(-np.abs(score_x), kind="stable")[:k]
    top_y = np.argsort(-np.abs(score_y), kind="stable")[:k]
    return {
        "LFC_pearson": pearson,
        "LFC_spearman": spearman,
        f"top{k}_overlap": len(set(top_x) & set(top_y)) / k,
        f"top{k}_up_overlap": len(set(up_x[:k]) & set(up_y[:k])) / k,
    }
