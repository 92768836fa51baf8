"""Per-gene mean expression, real vs generated."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..metrics import gene_means as _gene_means
from ..metrics import pcc, scc
from ._utils import check_options, finish, new_axes, pair

__all__ = ["gene_means"]


def gene_means(
    real: Any,
    generated: Any,
    *,
    layer: str | None = None,
    generated_layer: str | None = None,
    align_genes: bool = False,
    log: bool = False,
    size: float = 6.0,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Scatter of each gene's mean in the real cells against its mean in the generated cells.

    The dashed line is ``y = x``; the title gives the SCC and PCC of the means
    (:func:`sdd.metrics.scc`, :func:`sdd.metrics.pcc`).

    Parameters
    ----------
    real, generated
        AnnData objects (genes matched by name) or ``(cells, genes)`` arrays / sparse
        matrices with the same genes in the same order.
    layer, generated_layer
        Layers of ``real`` / ``generated`` to use instead of ``X``.
    align_genes
        Keep only shared genes when the AnnData objects' genes differ (else ``ValueError``).
    log
        Symmetric-log axes (:class:`~matplotlib.scale.SymmetricalLogScale`): logarithmic
        above the smallest non-zero mean, linear below it, so genes with a zero mean
        stay visible at 0. Their number is given in the title.
    size
        Marker size.
    title
        Title prefix; the SCC and PCC are always appended.
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
        Passed to :meth:`matplotlib.axes.Axes.scatter` (e.g. ``color``, ``alpha``).

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> ax = sdd.pl.gene_means(adata[::2], adata[1::2], log=True, show=False)
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    x, y = pair(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    mx, my = _gene_means(x), _gene_means(y)
    new_figure = ax is None
    ax = new_axes(ax)
    ax.scatter(mx, my, **{"s": size, "alpha": 0.6, "linewidths": 0, "color": "tab:blue", **kwargs})
    both = np.concatenate([mx, my])
    positive = both[both > 0]
    lo = 0.0 if log else float(both.min())
    hi = float(both.max())
    ax.plot([lo, hi], [lo, hi], "--", color="0.4", linewidth=1)
    stats = f"SCC = {scc(x, y):.3f}, PCC = {pcc(x, y):.3f}"
    if log:
        linthresh = float(positive.min()) if positive.size else 1.0
        for axis in ("x", "y"):
            getattr(ax, f"set_{axis}scale")("symlog", linthresh=linthresh, linscale=0.5)
        zero = int(np.sum((mx == 0) | (my == 0)))
        stats += f"\n{zero} gene(s) with mean 0 in a set (axes linear below {linthresh:.2g})"
    ax.set_xlabel("mean expression, real")
    ax.set_ylabel("mean expression, generated")
    ax.set_title(f"{title}\n{stats}" if title else stats)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)
