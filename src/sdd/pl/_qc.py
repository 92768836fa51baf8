"""``sdd.pl.qc_violin``: the QC violins a scanpy user checks first, real next to generated."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from anndata import AnnData

from ..metrics import QC_COLUMNS, cell_qc
from ._utils import check_options, finish, pair, panel_axes

__all__ = ["qc_violin"]

SOURCES = (("real", "0.55"), ("generated", "C1"))  # the colours of sdd.pl.umap


def _labels(adata: Any, key: str | None, name: str) -> np.ndarray | None:
    if key is None:
        return None
    if not isinstance(adata, AnnData) or key not in adata.obs:
        raise ValueError(f"groupby {key!r} is not a column of {name}.obs.")
    return adata.obs[key].astype(str).to_numpy()


def qc_violin(
    real: Any,
    generated: Any,
    *,
    keys: Sequence[str] = ("n_genes_by_counts", "total_counts"),
    groupby: str | None = None,
    layer: str | None = None,
    generated_layer: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Violins of per-cell QC numbers, real (grey) next to generated (orange).

    The numbers are those of :func:`sdd.metrics.cell_qc` (scanpy's
    ``calculate_qc_metrics`` names): detected genes (``n_genes_by_counts``), the sum of
    values (``total_counts``) and the largest value (``max_counts``). Generated cells that
    a QC filter would drop show up as a tail below the real violin.

    Parameters
    ----------
    real, generated
        AnnData (genes matched by name) or arrays of the same genes.
    keys
        QC numbers to show, one panel each.
    groupby
        ``obs`` column of both (e.g. the cell type): one pair of violins per category.
    layer, generated_layer
        Layers to read instead of ``X``.
    ax
        One Axes per key; a new row of panels when ``None``.
    show, save, return_fig
        As in every ``sdd.pl`` function (see :mod:`sdd.pl`).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.violinplot` (``alpha``: of the violins).

    Returns
    -------
    The Axes (a list of them for several keys), or the Figure with ``return_fig``;
    ``None`` when shown.

    Examples
    --------
    >>> sdd.pl.qc_violin(real, generated, groupby="cell_type")  # doctest: +SKIP
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    alpha = kwargs.pop("alpha", 0.6)
    keys = [keys] if isinstance(keys, str) else list(keys)
    unknown = [k for k in keys if k not in QC_COLUMNS]
    if not keys or unknown:
        raise ValueError(f"keys must be among {list(QC_COLUMNS)}, got {keys}.")
    x, y = pair(real, generated, layer=layer, generated_layer=generated_layer)
    frames = {"real": cell_qc(x), "generated": cell_qc(y)}
    labels = {
        "real": _labels(real, groupby, "real"),
        "generated": _labels(generated, groupby, "generated"),
    }
    groups = [None] if groupby is None else sorted(set(labels["real"]) | set(labels["generated"]))
    new_figure = ax is None
    axes = panel_axes(ax, len(keys), (max(3.5, 0.9 * len(groups) + 1.5), 3.5))
    for axis, key in zip(axes, keys, strict=True):
        for offset, (source, color) in zip((-0.2, 0.2), SOURCES, strict=True):
            values = frames[source][key].to_numpy(float)
            per_group = [values if g is None else values[labels[source] == g] for g in groups]
            present = [i for i, v in enumerate(per_group) if v.size > 1]
            if not present:
                continue
            parts = axis.violinplot(
                [per_group[i] for i in present],
                positions=np.asarray(present) + offset,
                widths=0.35,
                **{"showmedians": True, **kwargs},
            )
            for body in parts["bodies"]:
                body.set_facecolor(color)
                body.set_alpha(alpha)
            for name in ("cbars", "cmins", "cmaxes", "cmedians"):
                if name in parts:
                    parts[name].set_color(color)
            axis.plot([], [], color=color, lw=6, alpha=alpha, label=source)
        axis.set_xticks(range(len(groups)), ["all cells"] if groupby is None else groups)
        if groupby is not None:
            axis.tick_params(axis="x", labelrotation=90)
        axis.set_title(key)
    axes[0].legend(fontsize=8, frameon=False)
    result = axes[0] if len(axes) == 1 else axes
    return finish(result, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)
