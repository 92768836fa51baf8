"""Plots for image data: image grids, pixel-wise mean images, per-image sparsity histograms."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm

from ..metrics import per_image_sparsity
from ._utils import check_options, finish, new_axes

__all__ = ["images", "mean_image", "image_sparsity"]


def _as_hw(array: Any, name: str = "images") -> np.ndarray:
    """``(N, H, W)`` or ``(N, H, W, 3)`` for display from ``(N, H, W)`` / ``(N, C, H, W)``."""
    x = np.asarray(array)
    if x.ndim == 4:
        if x.shape[1] == 1:
            x = x[:, 0]
        elif x.shape[1] == 3:
            x = np.moveaxis(x, 1, -1)
        else:
            raise ValueError(f"{name}: only 1 or 3 channels can be shown, got {x.shape[1]}.")
    if x.ndim not in (3, 4) or x.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, C, H, W), got {np.shape(array)}."
        )
    if not np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}.")
    return x.astype(np.float64, copy=False)


def images(
    images: Any,
    *,
    n: int = 64,
    ncols: int = 8,
    labels: Any = None,
    pad: int = 1,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Show the first ``n`` images as a grid in one Axes.

    Parameters
    ----------
    images
        ``(N, H, W)`` or ``(N, C, H, W)`` with 1 or 3 channels (e.g.
        ``GeneratedImages.images``).
    n
        Number of images to show.
    ncols
        Images per row.
    labels
        Optional label per image, written in the corner of each tile.
    pad
        Pixels between tiles (drawn in the ``vmin`` colour).
    title
        Axes title.
    ax
        Axes to draw into; a new figure when ``None``.
    show
        Show the figure; ``None``: when a new figure is drawn and it is neither returned
        nor saved. Nothing is returned when shown.
    save
        File path to write the figure to (format from the suffix, PNG by default),
        atomically (a temporary name, then a rename).
    return_fig
        Return the Figure instead of the Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow`: ``cmap`` (single-channel images;
        default ``"gray"``), ``vmin`` and ``vmax`` (the colour range; default: the range
        of the shown images), ``interpolation``, ...

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> ax = sdd.pl.images(np.random.default_rng(0).random((16, 8, 8)), ncols=4, show=False)
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    cmap, vmin, vmax = (
        kwargs.pop("cmap", "gray"),
        kwargs.pop("vmin", None),
        kwargs.pop("vmax", None),
    )
    x = _as_hw(images)
    n = min(int(n), len(x))
    if n < 1 or int(ncols) < 1:
        raise ValueError(f"n and ncols must be positive, got n={n}, ncols={ncols}.")
    x = x[:n]
    ncols = min(int(ncols), n)
    nrows = -(-n // ncols)
    h, w = x.shape[1:3]
    lo = float(np.min(x)) if vmin is None else float(vmin)
    hi = float(np.max(x)) if vmax is None else float(vmax)
    canvas = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, *x.shape[3:]), lo)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = x[i]
    new_figure = ax is None
    ax = new_axes(ax, (1.0 * ncols + 0.5, 1.0 * nrows + 0.5))
    if canvas.ndim == 3:
        span = hi - lo if hi > lo else 1.0
        ax.imshow(np.clip((canvas - lo) / span, 0, 1), **kwargs)
    else:
        style = {"cmap": cmap, "vmin": lo, "vmax": hi if hi > lo else lo + 1}
        ax.imshow(canvas, **{**style, "interpolation": "nearest", **kwargs})
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[0] < n:
            raise ValueError(f"labels has {labels.shape[0]} entries for {n} shown images.")
        for i in range(n):
            r, c = divmod(i, ncols)
            ax.text(
                c * (w + pad) + 0.5,
                r * (h + pad) + 0.5,
                str(labels[i]),
                color="tab:red",
                fontsize=7,
                va="top",
                ha="left",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)


def mean_image(
    images: Any,
    *,
    eta: Any = None,
    phi: Any = None,
    log: bool = False,
    cmap: str = "viridis",
    colorbar: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Pixel-wise mean image (the SDD paper's Fig. 7 for calorimeter images).

    Parameters
    ----------
    images
        ``(N, H, W)`` or ``(N, 1, H, W)``.
    eta, phi
        Optional pixel-centre coordinates (lengths ``H`` and ``W``) for the axes; the
        image is drawn with η down the rows and φ along the columns.
    log
        Logarithmic colour scale (pixels with mean 0 are left blank).
    cmap
        Colormap.
    colorbar
        Add a colour bar.
    title
        Axes title.
    ax
        Axes to draw into; a new figure when ``None``.
    show
        Show the figure; ``None``: when a new figure is drawn and it is neither returned
        nor saved. Nothing is returned when shown.
    save
        File path to write the figure to (format from the suffix, PNG by default),
        atomically (a temporary name, then a rename).
    return_fig
        Return the Figure instead of the Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow`: ``cmap`` (single-channel images;
        default ``"gray"``), ``vmin`` and ``vmax`` (the colour range; default: the range
        of the shown images), ``interpolation``, ...

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> ax = sdd.pl.mean_image(rng.exponential(size=(10, 8, 8)), log=True, show=False)
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    x = _as_hw(images)
    if x.ndim != 3:
        raise ValueError("mean_image needs single-channel images.")
    mean = x.mean(axis=0)
    h, w = mean.shape
    extent = None
    if (eta is None) != (phi is None):
        raise ValueError("Give both eta and phi, or neither.")
    if eta is not None:
        eta, phi = np.asarray(eta, dtype=float), np.asarray(phi, dtype=float)
        if eta.shape != (h,) or phi.shape != (w,):
            raise ValueError(f"eta and phi must have {h} and {w} pixel-centre values.")
        de = (eta[-1] - eta[0]) / max(h - 1, 1) / 2
        dp = (phi[-1] - phi[0]) / max(w - 1, 1) / 2
        extent = (phi[0] - dp, phi[-1] + dp, eta[-1] + de, eta[0] - de)
    new_figure = ax is None
    ax = new_axes(ax, (4.0, 3.4))
    norm = None
    if log:
        positive = mean[mean > 0]
        if positive.size:
            norm = LogNorm(vmin=positive.min(), vmax=positive.max())
        mean = np.where(mean > 0, mean, np.nan)
    im = ax.imshow(
        mean, **{"cmap": cmap, "norm": norm, "extent": extent, "interpolation": "nearest", **kwargs}
    )
    if extent is not None:
        ax.set_xlabel("φ")
        ax.set_ylabel("η")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="mean intensity")
    if title:
        ax.set_title(title)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)


def image_sparsity(
    data: Mapping[str, Any] | Any,
    *,
    bins: int = 30,
    threshold: float = 0.0,
    density: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Histograms of the per-image sparsity (fraction of zero pixels) of one or more sets.

    Parameters
    ----------
    data
        Images, or a mapping ``{name: images}`` to overlay (e.g. real, SDD, baseline).
    bins
        Number of bins over the observed range of sparsities.
    threshold
        Pixels at or below it count as zero (0: exact zeros).
    density
        Normalise each histogram.
    title
        Axes title.
    ax
        Axes to draw into; a new figure when ``None``.
    show
        Show the figure; ``None``: when a new figure is drawn and it is neither returned
        nor saved. Nothing is returned when shown.
    save
        File path to write the figure to (format from the suffix, PNG by default),
        atomically (a temporary name, then a rename).
    return_fig
        Return the Figure instead of the Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.hist` of every histogram (e.g. ``linewidth``).

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> real = rng.poisson(0.5, (50, 8, 8)); gen = rng.poisson(0.7, (50, 8, 8))
    >>> ax = sdd.pl.image_sparsity({"real": real, "generated": gen}, show=False)
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    sets = dict(data) if isinstance(data, Mapping) else {"images": data}
    if not sets:
        raise ValueError("data is empty.")
    values = {name: per_image_sparsity(x, threshold=threshold) for name, x in sets.items()}
    lo = min(v.min() for v in values.values())
    hi = max(v.max() for v in values.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, int(bins) + 1)
    new_figure = ax is None
    ax = new_axes(ax, (4.5, 3.2))
    for name, v in values.items():
        style = {"bins": edges, "density": density, "histtype": "step", "linewidth": 1.5}
        ax.hist(v, **{**style, "label": f"{name} (mean {v.mean():.3f})", **kwargs})
    ax.set_xlabel("fraction of zero pixels per image")
    ax.set_ylabel("density" if density else "images")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)
