"""Integration LISI of the real/generated label, via scib-metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validate import check_int
from ._utils import points_pair

__all__ = ["lisi"]

N_NEIGHBORS = 90
"""Default neighbours per cell: scib's default ``k0 = 90`` (3 x perplexity 30)."""


def lisi(
    x: Any,
    y: Any,
    *,
    n_neighbors: int = N_NEIGHBORS,
    perplexity: float | None = None,
) -> float:
    """Scaled integration LISI of two point sets: how well they mix locally.

    Every point gets its ``n_neighbors`` nearest neighbours in the pooled set
    (Euclidean, exact, :class:`sklearn.neighbors.NearestNeighbors`; the point itself is
    listed first, as scib-metrics expects, and scib-metrics leaves it out).
    :func:`scib_metrics.lisi_knn` turns the neighbour distances into Gaussian weights of
    the given perplexity and computes each point's inverse Simpson index of the x/y
    label; the median is scaled to [0, 1] as ``(LISI - 1) / (2 - 1)``, which is
    :func:`scib_metrics.ilisi_knn` with ``scale=True``.

    0 means the sets do not mix at all (every neighbourhood holds one set); 1 means
    every neighbourhood holds both sets equally. Two equal-size samples of the same
    distribution score somewhat below 1 (about 0.9 with the defaults), since finite
    neighbourhoods fluctuate. Use equal-size sets: with unequal sizes even perfect
    mixing scores below 1.

    Parameters
    ----------
    x, y
        ``(n, d)`` and ``(m, d)`` point sets, typically joint PCA coordinates
        (:func:`joint_pca`) of equal-size subsamples.
    n_neighbors
        Neighbours per point, including itself (default 90, scib's default); lowered to
        ``n + m - 1`` for small sets.
    perplexity
        Effective neighbourhood size of the Gaussian weights; default
        ``floor(n_neighbors / 3)`` (30 with the default ``n_neighbors``), as in scib.

    Returns
    -------
    Scaled iLISI in [0, 1].

    Notes
    -----
    Needs the optional dependency ``scib-metrics`` (``pip install scib-metrics``),
    imported on first use (about 3 s). Its JAX code compiles once per array shape
    (about 1.5 s); the rows are padded to a power of two, so most calls reuse a compile.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    >>> bool(sdd.metrics.lisi(x, y) > 0.8), bool(sdd.metrics.lisi(x, y + 10) < 0.05)
    (True, True)
    """
    a, b = points_pair(x, y, min_points=1)
    n = a.shape[0] + b.shape[0]
    k = min(check_int(n_neighbors, "n_neighbors", 2), n - 1)
    if k < 2:
        raise ValueError(f"LISI needs at least 3 points in total, got {n}.")
    if perplexity is None:
        perplexity = float(max(np.floor(k / 3), 1.0))
    elif not 0 < perplexity < k:
        raise ValueError(f"perplexity must be in (0, n_neighbors) = (0, {k}), got {perplexity!r}.")
    try:
        import scib_metrics
        from scib_metrics.nearest_neighbors import NeighborsResults
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sdd.metrics.lisi needs scib-metrics: pip install 'scib-metrics>=0.5'."
        ) from err
    from sklearn.neighbors import NearestNeighbors

    points = np.vstack([a, b])
    distances, indices = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(points)
    # Pad to a power-of-two number of rows: scib-metrics' JAX code compiles once per
    # shape, so padding saves a ~1.5 s compile for every new set size. A padding row
    # only lists itself, which scib-metrics masks out, and its value is discarded.
    padded = max(256, 1 << (n - 1).bit_length())
    pad = np.arange(n, padded)
    indices = np.vstack([indices, np.repeat(pad[:, None], k, axis=1)]).astype(np.int64)
    distances = np.vstack([distances, np.zeros((pad.size, k))]).astype(np.float32)
    labels = np.zeros(padded, dtype=np.int64)
    labels[a.shape[0] : n] = 1
    per_cell = scib_metrics.lisi_knn(
        NeighborsResults(indices=indices, distances=distances), labels, perplexity=float(perplexity)
    )
    # median and scaling exactly as scib_metrics.ilisi_knn(..., scale=True) with 2 batches
    return float(np.nanmedian(np.asarray(per_cell)[:n]) - 1.0)
