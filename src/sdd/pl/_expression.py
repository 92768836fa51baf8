"""Per-gene mean expression, real vs generated."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..metrics import gene_means as _gene_means
from ..metrics import pcc, scc
from ._utils import finish, new_axes, pair

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
    show: bool = False,
) -> Axes:
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
        Log-scale both axes (genes with a zero mean are then not shown).
    size
        Marker size.
    title
        Title prefix; the SCC and PCC are always appended.
    ax
        Axes to draw into; a new figure when ``None``.
    show
        Call :func:`matplotlib.pyplot.show` at the end.

    Returns
    -------
    The Axes.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> ax = sdd.pl.gene_means(adata[::2], adata[1::2])
    """
    x, y = pair(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    mx, my = _gene_means(x), _gene_means(y)
    ax = new_axes(ax)
    ax.scatter(mx, my, s=size, alpha=0.6, linewidths=0, color="tab:blue")
    positive = np.concatenate([mx, my])
    positive = positive[positive > 0]
    lo = positive.min() if log and positive.size else min(mx.min(), my.min())
    hi = max(mx.max(), my.max())
    ax.plot([lo, hi], [lo, hi], "--", color="0.4", linewidth=1)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("mean expression, real")
    ax.set_ylabel("mean expression, generated")
    stats = f"SCC = {scc(x, y):.3f}, PCC = {pcc(x, y):.3f}"
    ax.set_title(f"{title}\n{stats}" if title else stats)
    finish(show)
    return ax
