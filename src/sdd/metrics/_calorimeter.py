"""Calorimeter observables: image transverse momentum and invariant mass, and their W1 distances.

Each pixel is treated as a massless particle at its (η, φ) centre with transverse momentum
equal to its intensity ``I``: ``px = Σ I cos φ``, ``py = Σ I sin φ``, ``pz = Σ I sinh η``,
``E = Σ I cosh η``. The image pT is ``sqrt(px² + py²)`` and its mass is
``sqrt(max(E² - px² - py² - pz², 0))``. Both are unchanged by a shift in η or a rotation
in φ, so pixel-centre offsets from the grid centre can be used instead of absolute
coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

__all__ = [
    "image_four_momentum",
    "image_pt",
    "image_mass",
    "wasserstein_1d",
    "calorimeter_w1",
]


def _calo_images(images: Any, name: str = "images") -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, 1, H, W), got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}.")
    return array.astype(np.float64, copy=False)


def _axis(values: Any, size: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(
            f"{name} must hold the {size} pixel-centre coordinates of its image axis, "
            f"got shape {array.shape} (bin edges have one more value; use their midpoints)."
        )
    return array


def image_four_momentum(images: Any, *, eta: Any, phi: Any) -> np.ndarray:
    """Summed four-momentum ``(E, px, py, pz)`` of each image.

    Parameters
    ----------
    images
        ``(N, H, W)`` (or ``(N, 1, H, W)``) intensities read as pT; axis 1 is η, axis 2 is φ.
    eta
        ``(H,)`` pixel-centre η (or Δη) values.
    phi
        ``(W,)`` pixel-centre φ (or Δφ) values, in radians.

    Returns
    -------
    ``(N, 4)`` float64 array of ``E, px, py, pz``.

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import image_four_momentum
    >>> img = np.zeros((1, 1, 2)); img[0, 0, 1] = 5.0
    >>> image_four_momentum(img, eta=[0.0], phi=[0.0, 0.0]).round(6).tolist()
    [[5.0, 5.0, 0.0, 0.0]]
    """
    x = _calo_images(images)
    eta = _axis(eta, x.shape[1], "eta")
    phi = _axis(phi, x.shape[2], "phi")
    row_e = x.sum(axis=2)  # (N, H): summed pT per η row
    col = x.sum(axis=1)  # (N, W): summed pT per φ column
    energy = row_e @ np.cosh(eta)
    pz = row_e @ np.sinh(eta)
    px = col @ np.cos(phi)
    py = col @ np.sin(phi)
    return np.stack([energy, px, py, pz], axis=1)


def image_pt(images: Any, *, eta: Any, phi: Any) -> np.ndarray:
    """Transverse momentum ``sqrt(px² + py²)`` of each image (see :func:`image_four_momentum`).

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import image_pt
    >>> img = np.zeros((1, 3, 3)); img[0, 1, 0] = img[0, 1, 2] = 2.0
    >>> image_pt(img, eta=[-0.1, 0, 0.1], phi=[-0.1, 0, 0.1]).round(6).tolist()
    [3.980017]
    """
    p = image_four_momentum(images, eta=eta, phi=phi)
    return np.hypot(p[:, 1], p[:, 2])


def image_mass(images: Any, *, eta: Any, phi: Any) -> np.ndarray:
    """Invariant mass ``sqrt(max(E² - |p|², 0))`` of each image (see :func:`image_four_momentum`).

    Examples
    --------
    Two pixels of pT 2 at φ = ±0.1 have mass ``2 * 2 * sin(0.1)``:

    >>> import numpy as np
    >>> from sdd.metrics import image_mass
    >>> img = np.zeros((1, 3, 3)); img[0, 1, 0] = img[0, 1, 2] = 2.0
    >>> image_mass(img, eta=[-0.1, 0, 0.1], phi=[-0.1, 0, 0.1]).round(6).tolist()
    [0.399334]
    """
    p = image_four_momentum(images, eta=eta, phi=phi)
    m2 = p[:, 0] ** 2 - p[:, 1] ** 2 - p[:, 2] ** 2 - p[:, 3] ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def wasserstein_1d(a: Any, b: Any) -> float:
    """1-D Wasserstein (earth mover's) distance between two samples.

    Examples
    --------
    >>> from sdd.metrics import wasserstein_1d
    >>> wasserstein_1d([0.0, 1.0], [1.0, 2.0])
    1.0
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("Both samples must be non-empty.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("Samples contain NaN or infinite values.")
    return float(wasserstein_distance(a, b))


def calorimeter_w1(
    real: Any,
    generated: Any,
    *,
    eta: Any,
    phi: Any,
    real_labels: Any = None,
    generated_labels: Any = None,
    class_names: dict | None = None,
) -> pd.DataFrame:
    """W1 distances of the image pT and mass distributions, per class and overall.

    Parameters
    ----------
    real, generated
        ``(N, H, W)`` images on the same grid.
    eta, phi
        Pixel-centre coordinates, as in :func:`image_four_momentum`.
    real_labels, generated_labels
        Class label per image; give both for a per-class table, or neither.
    class_names
        Optional display names by label (e.g. ``{1: "signal", 0: "background"}``).

    Returns
    -------
    DataFrame indexed by class name as a string (and ``"all"``) with columns ``W1_pt``,
    ``W1_mass``, ``n_real``, ``n_generated``.

    Examples
    --------
    >>> import numpy as np
    >>> from sdd.metrics import calorimeter_w1
    >>> x = np.random.default_rng(0).exponential(size=(50, 4, 4))
    >>> grid = np.linspace(-0.3, 0.3, 4)
    >>> calorimeter_w1(x, x, eta=grid, phi=grid)[["W1_pt", "W1_mass"]].to_numpy().tolist()
    [[0.0, 0.0]]
    """
    r_img, g_img = _calo_images(real, "real"), _calo_images(generated, "generated")
    if r_img.shape[1:] != g_img.shape[1:]:
        raise ValueError(
            f"real and generated images differ in size: {r_img.shape[1:]} vs {g_img.shape[1:]}."
        )
    if (real_labels is None) != (generated_labels is None):
        raise ValueError("Give both real_labels and generated_labels, or neither.")
    r_pt, r_m = image_pt(r_img, eta=eta, phi=phi), image_mass(r_img, eta=eta, phi=phi)
    g_pt, g_m = image_pt(g_img, eta=eta, phi=phi), image_mass(g_img, eta=eta, phi=phi)

    groups: list[tuple[Any, np.ndarray, np.ndarray]] = []
    if real_labels is not None:
        r_lab, g_lab = np.asarray(real_labels), np.asarray(generated_labels)
        if r_lab.shape != (len(r_img),) or g_lab.shape != (len(g_img),):
            raise ValueError("Labels must have one entry per image.")
        for label in np.unique(np.concatenate([r_lab, g_lab])):
            r_sel, g_sel = r_lab == label, g_lab == label
            name = label.item() if isinstance(label, np.generic) else label
            if not r_sel.any() or not g_sel.any():
                side = "real" if not r_sel.any() else "generated"
                raise ValueError(f"Class {name!r} has no {side} images.")
            groups.append(((class_names or {}).get(name, name), r_sel, g_sel))
    groups.append(("all", np.ones(len(r_img), bool), np.ones(len(g_img), bool)))

    rows = {
        str(name): {
            "W1_pt": wasserstein_1d(r_pt[r_sel], g_pt[g_sel]),
            "W1_mass": wasserstein_1d(r_m[r_sel], g_m[g_sel]),
            "n_real": int(r_sel.sum()),
            "n_generated": int(g_sel.sum()),
        }
        for name, r_sel, g_sel in groups
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "class"
    return table
