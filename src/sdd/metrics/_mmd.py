"""Maximum mean discrepancy with a sum of Gaussian kernels, computed blockwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validate import check_int
from ._utils import points_pair

__all__ = ["mmd", "mmd_bandwidths"]


def mmd_bandwidths(x: Any, y: Any, *, n_kernels: int = 5, kernel_mul: float = 2.0) -> np.ndarray:
    """Bandwidths of the kernels used by :func:`mmd`.

    ``b`` is the mean squared Euclidean distance between distinct points of the pooled set
    ``[x; y]`` (computed in closed form, no pairwise matrix); the bandwidths are
    ``b * kernel_mul ** (i - n_kernels // 2)`` for ``i = 0 .. n_kernels - 1``, i.e.
    b/4, b/2, b, 2b, 4b with the defaults.

    Parameters
    ----------
    x, y
        ``(n, d)`` and ``(m, d)`` point sets.
    n_kernels
        Number of kernels.
    kernel_mul
        Ratio between consecutive bandwidths.

    Returns
    -------
    ``(n_kernels,)`` float64 array, increasing.
    """
    a, b = points_pair(x, y)
    n_kernels = check_int(n_kernels, "n_kernels", 1)
    if not kernel_mul > 0:
        raise ValueError(f"kernel_mul must be positive, got {kernel_mul!r}.")
    pooled = np.vstack([a, b])
    n = pooled.shape[0]
    if n < 2:
        raise ValueError("MMD bandwidths need at least 2 points in total.")
    # sum_{i,j} |z_i - z_j|^2 = 2 n sum_i |z_i - mean|^2; the n diagonal terms are zero
    centred = pooled - pooled.mean(axis=0)
    mean_sq = 2.0 * n * float(np.sum(centred * centred)) / (n * n - n)
    if mean_sq <= 0:
        mean_sq = 1.0  # all points identical: every kernel is 1 and the MMD is 0 anyway
    powers = np.arange(n_kernels) - n_kernels // 2
    return mean_sq * float(kernel_mul) ** powers


def _kernel_sum(
    a: np.ndarray, b: np.ndarray, inv_bw: np.ndarray, block: int, squaring: bool, same: bool
) -> float:
    """Sum over all pairs (i in a, j in b) of sum_k exp(-|a_i - b_j|^2 / bw_k), by blocks."""
    sq_a = np.einsum("ij,ij->i", a, a)
    sq_b = sq_a if same else np.einsum("ij,ij->i", b, b)
    total = 0.0
    for i in range(0, a.shape[0], block):
        a_blk, sa = a[i : i + block], sq_a[i : i + block]
        j0 = i if same else 0  # symmetric: upper triangle of blocks, off-diagonal ones twice
        for j in range(j0, b.shape[0], block):
            d = sa[:, None] + sq_b[None, j : j + block] - 2.0 * (a_blk @ b[j : j + block].T)
            np.maximum(d, 0.0, out=d)
            if squaring:
                # bandwidths bw_0 * 2^k: exp(-d / bw_k) = u^(2^(K-1-k)) with u = exp(-d / bw_max)
                u = np.exp(-d * inv_bw[-1])
                s = u.copy()
                for _ in range(len(inv_bw) - 1):
                    u *= u
                    s += u
            else:
                s = np.zeros_like(d)
                for ib in inv_bw:
                    s += np.exp(-d * ib)
            total += (2.0 if same and j != i else 1.0) * float(s.sum(dtype=np.float64))
    return total


def mmd(
    x: Any,
    y: Any,
    *,
    n_kernels: int = 5,
    kernel_mul: float = 2.0,
    block_size: int = 2048,
) -> float:
    """Squared maximum mean discrepancy between two point sets (biased estimate).

    The multi-kernel MMD used in scDiffusion's evaluation: Gaussian kernels
    ``k(u, v) = sum_k exp(-|u - v|^2 / bw_k)`` with the bandwidths of
    :func:`mmd_bandwidths` (b/4 .. 4b, ``b`` the mean pairwise squared distance of the
    pooled set), and

    ``MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``

    over all pairs, diagonals included (the biased V-statistic, always >= 0). The kernel
    matrices are never held whole: blocks of ``block_size`` x ``block_size`` kernel values
    (float32, summed in float64) are summed, so memory stays near 50 MB at the default
    whatever the number of points (10k + 10k points in 50 dimensions: ~5 s on 2 CPU
    cores). The result lies in ``[0, 2 n_kernels]``; a set compared with itself gives 0
    (up to float32 rounding, ~1e-7).

    Parameters
    ----------
    x, y
        ``(n, d)`` and ``(m, d)`` point sets, typically joint PCA coordinates
        (:func:`joint_pca`) of equal-size subsamples.
    n_kernels
        Number of Gaussian kernels.
    kernel_mul
        Ratio between consecutive bandwidths.
    block_size
        Rows and columns per block.

    Returns
    -------
    The MMD² estimate.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 5))
    >>> sdd.metrics.mmd(x, x) < 1e-6
    True
    >>> sdd.metrics.mmd(x, rng.normal(size=(300, 5))) < 0.05 < sdd.metrics.mmd(x, x + 2)
    True
    """
    a, b = points_pair(x, y)
    block = check_int(block_size, "block_size", 1)
    inv_bw = 1.0 / mmd_bandwidths(a, b, n_kernels=n_kernels, kernel_mul=kernel_mul)
    squaring = float(kernel_mul) == 2.0
    # kernels in float32 (half the time and memory), sums accumulated in float64
    a, b, inv_bw = (v.astype(np.float32) for v in (a, b, inv_bw))
    kxx = _kernel_sum(a, a, inv_bw, block, squaring, same=True) / a.shape[0] ** 2
    kyy = _kernel_sum(b, b, inv_bw, block, squaring, same=True) / b.shape[0] ** 2
    kxy = _kernel_sum(a, b, inv_bw, block, squaring, same=False) / (a.shape[0] * b.shape[0])
    return float(max(kxx + kyy - 2.0 * kxy, 0.0))
