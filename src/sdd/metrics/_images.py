"""Image metrics: pixel and logit sparsity (P-/L-sparsity), per-image sparsity, Fréchet distance."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg

__all__ = [
    "pixel_sparsity",
    "logit_sparsity",
    "per_image_sparsity",
    "sparsity_histogram",
    "frechet_distance",
]


def _images(images: Any, name: str = "images") -> np.ndarray:
    array = np.asarray(images)
    if array.ndim < 2:
        raise ValueError(
            f"{name} must have one image per row (ndim >= 2), got shape {array.shape}."
        )
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}.")
    return array


def _reduce(zero: np.ndarray, per_image: bool) -> float | np.ndarray:
    if per_image:
        return zero.reshape(zero.shape[0], -1).mean(axis=1)
    return float(zero.mean())


def pixel_sparsity(
    images: Any, *, max_value: float = 255.0, levels: int = 256, per_image: bool = False
) -> float | np.ndarray:
    """P-sparsity: fraction of zero pixels after quantising to ``levels`` grey levels.

    Each value is mapped to ``round(clip(x / max_value, 0, 1) * (levels - 1))``, as when
    an image is stored with 8 bits, and the fraction of level-0 pixels is returned. Values
    below half a grey level (``0.5 * max_value / (levels - 1)``) therefore count as zero,
    so a model without sparsity bits gets zeros from near-zero outputs.

    Parameters
    ----------
    images
        ``(N, ...)`` non-negative images in the data's units.
    max_value
        The value of the brightest grey level (255 for MNIST pixel values).
    levels
        Number of grey levels (256 for 8 bits).
    per_image
        Return one value per image instead of the overall fraction.

    Returns
    -------
    The fraction (a float), or ``(N,)`` fractions with ``per_image=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import pixel_sparsity
    >>> pixel_sparsity(np.array([[0.0, 0.3, 0.6, 255.0]]))
    0.5
    """
    array = _images(images)
    if not max_value > 0:
        raise ValueError(f"max_value must be positive, got {max_value}.")
    if int(levels) < 2:
        raise ValueError(f"levels must be at least 2, got {levels}.")
    quantised = np.rint(np.clip(array / float(max_value), 0.0, 1.0) * (int(levels) - 1))
    return _reduce(quantised == 0, per_image)


def logit_sparsity(values: Any, *, per_image: bool = False) -> float | np.ndarray:
    """L-sparsity: fraction of exact zeros in the continuous generated values.

    Pass the model output before any quantisation (e.g. ``GeneratedImages.images``).
    With sparsity bits the zeros are exact by construction; a plain diffusion model only
    reaches an exact zero where its output is clipped to the bottom of the data range.

    Parameters
    ----------
    values
        ``(N, ...)`` generated values in the data's units.
    per_image
        Return one value per image instead of the overall fraction.

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import logit_sparsity
    >>> logit_sparsity(np.array([[0.0, 1e-6, 0.6, 0.0]]))
    0.5
    """
    return _reduce(_images(values, "values") == 0, per_image)


def per_image_sparsity(images: Any, *, threshold: float = 0.0) -> np.ndarray:
    """Fraction of pixels with value ``<= threshold`` in each image (exact zeros by default).

    Parameters
    ----------
    images
        ``(N, ...)`` non-negative images.
    threshold
        Pixels at or below it count as zero.

    Returns
    -------
    ``(N,)`` fractions in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import per_image_sparsity
    >>> per_image_sparsity(np.array([[[0, 1], [0, 0]], [[2, 3], [4, 0]]]))
    array([0.75, 0.25])
    """
    return _reduce(_images(images) <= threshold, per_image=True)


def sparsity_histogram(
    images: Any, *, bins: int | np.ndarray = 20, threshold: float = 0.0, density: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the per-image sparsity (see :func:`per_image_sparsity`) on [0, 1].

    Parameters
    ----------
    images
        ``(N, ...)`` non-negative images.
    bins
        Number of equal bins on [0, 1], or the bin edges.
    threshold
        Pixels at or below it count as zero.
    density
        Normalise to a probability density.

    Returns
    -------
    counts, edges
        As :func:`numpy.histogram`.

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import sparsity_histogram
    >>> counts, edges = sparsity_histogram(np.zeros((5, 4, 4)), bins=4)
    >>> counts.tolist()
    [0, 0, 0, 5]
    """
    values = per_image_sparsity(images, threshold=threshold)
    return np.histogram(values, bins=bins, range=(0.0, 1.0), density=density)


def frechet_distance(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. With Inception-v3 pool
    features this is the FID; with any other feature extractor the number is only
    comparable with itself. Singular covariances (fewer samples than features) are
    regularised with ``1e-6`` on the diagonal.

    Parameters
    ----------
    features_a, features_b
        ``(N, D)`` feature arrays (``N >= 2`` each, same ``D``).

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import frechet_distance
    >>> f = np.random.default_rng(0).normal(size=(500, 3))
    >>> round(frechet_distance(f, f), 6)
    0.0
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Features must be (N, D) arrays with the same D, got {a.shape} and {b.shape}."
        )
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Each feature set needs at least 2 rows to estimate a covariance.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("Features contain NaN or infinite values.")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if caught or not np.all(np.isfinite(covmean)):
        # singular covariances (fewer samples than features): regularise, as pytorch-fid does
        eps = 1e-6 * np.eye(cov_a.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    value = float(
        np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    )
    return max(value, 0.0)
