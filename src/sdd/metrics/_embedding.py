"""Joint PCA of real and generated cells: the space MMD, LISI and the classifier work in."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data.validate import check_int
from ._utils import as_pair

__all__ = ["joint_pca"]

DENSE_LIMIT = 25_000_000
"""Largest cells x genes densified for PCA (100 MB as float32); sparse input above it
stays sparse (ARPACK with implicit centring: less memory, but slower on small data)."""


def joint_pca(
    real: Any, generated: Any, *, n_comps: int = 50, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Project real and generated cells onto the principal components of both together.

    PCA (centred, genes not scaled) is fitted on the concatenation ``[real; generated]``
    with :class:`sklearn.decomposition.PCA`. Up to 25 million cells x genes the stacked
    data is densified as float32 (at most 100 MB) and the default solver is used; larger
    sparse input stays sparse (implicit centring with the ARPACK solver), so memory grows
    with the non-zeros. Pass equal-size subsamples so both sets shape the components
    equally.

    Parameters
    ----------
    real, generated
        ``(cells, genes)`` arrays or scipy sparse matrices with the same genes.
    n_comps
        Number of components; lowered to ``min(cells, genes) - 1`` when the data is smaller.
    random_state
        Seed of the randomised / ARPACK solvers.

    Returns
    -------
    ``(real_pcs, generated_pcs)``: float64 arrays of shape ``(cells, n_comps)``.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> a, b = sdd.metrics.joint_pca(rng.random((40, 10)), rng.random((30, 10)), n_comps=5)
    >>> a.shape, b.shape
    ((40, 5), (30, 5))
    """
    from sklearn.decomposition import PCA

    x, y = as_pair(real, generated)
    n_comps = check_int(n_comps, "n_comps", 1)
    n, p = x.shape[0] + y.shape[0], x.shape[1]
    if min(n, p) < 2:
        raise ValueError(f"PCA needs at least 2 cells and 2 genes, got {n} cells x {p} genes.")
    k = int(min(n_comps, min(n, p) - 1))
    sparse = sp.issparse(x) or sp.issparse(y)
    if sparse and n * p > DENSE_LIMIT:
        data = sp.vstack([sp.csr_matrix(x), sp.csr_matrix(y)], format="csr")
        solver = "arpack"
    else:
        dense = [m.toarray() if sp.issparse(m) else m for m in (x, y)]
        data = np.vstack(dense).astype(np.float32, copy=False) if sparse else np.vstack(dense)
        solver = "auto"
    pca = PCA(n_components=k, svd_solver=solver, random_state=random_state)
    pcs = np.asarray(pca.fit_transform(data), dtype=np.float64)
    return pcs[: x.shape[0]], pcs[x.shape[0] :]
