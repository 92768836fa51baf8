"""Shared plumbing of the plots: data extraction and the scanpy-style figure options.

Every ``sdd.pl`` function takes ``ax=``, ``show=``, ``save=`` and ``return_fig=`` and
handles them here, the same way:

- ``ax``: draw into these Axes; a new figure (constrained layout, so legends outside the
  axes are not clipped) when ``None``.
- ``show``: ``None`` shows the figure when the call draws a new figure and neither returns
  it (``return_fig``) nor saves it (scanpy's autoshow); ``True`` / ``False`` force it.
  A shown plot returns ``None``, as in scanpy.
- ``save``: a file path; the format comes from its suffix (PNG without one). Written to a
  temporary name beside it and renamed (:func:`sdd.io.atomic_path`), replacing any file.
- ``return_fig``: return the :class:`~matplotlib.figure.Figure` instead of the Axes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from ..data.validate import get_matrix
from ..io.atomic import atomic_path, check_output_path
from ..metrics._utils import as_matrix, as_pair
from ..tl import paired_matrices


def matrix(data: Any, layer: str | None, name: str) -> Any:
    """``data.X`` / ``data.layers[layer]`` of an AnnData, or a checked array / sparse matrix."""
    if isinstance(data, AnnData):
        return as_matrix(get_matrix(data, layer), name)
    if layer is not None:
        raise ValueError(f"layer={layer!r} was given but {name} is not an AnnData.")
    return as_matrix(data, name)


def pair(
    real: Any,
    generated: Any,
    *,
    layer: str | None = None,
    generated_layer: str | None = None,
    align_genes: bool = False,
) -> tuple[Any, Any]:
    """Real and generated matrices over the same genes (matched by name for AnnData)."""
    if isinstance(real, AnnData) and isinstance(generated, AnnData):
        x, y, _ = paired_matrices(
            real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
        )
        return as_pair(x, y)
    return as_pair(matrix(real, layer, "real"), matrix(generated, generated_layer, "generated"))


def check_options(*, show: Any, save: Any, return_fig: Any) -> Path | None:
    """Check ``show`` / ``save`` / ``return_fig`` before any work; the save path or ``None``."""
    if show is not None and not isinstance(show, bool):
        raise TypeError(f"show must be True, False or None, got {show!r}.")
    if not isinstance(return_fig, bool):
        raise TypeError(f"return_fig must be True or False, got {return_fig!r}.")
    if save is None:
        return None
    if isinstance(save, bool) or not isinstance(save, str | os.PathLike):
        raise TypeError(f"save must be a file path (str or os.PathLike), got {save!r}.")
    path = check_output_path(save, overwrite=True)
    fmt = path.suffix[1:].lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt and fmt not in supported:
        raise ValueError(
            f"save={str(save)!r}: cannot write {fmt!r} figures; use one of {sorted(supported)}."
        )
    return path


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4.0)) -> Axes:
    """``ax`` after a type check, or the Axes of a new figure (constrained layout)."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}.")
    return ax


def panel_axes(
    ax: Axes | Sequence[Axes] | None, n: int, panel_size: tuple[float, float]
) -> list[Axes]:
    """One Axes per panel: ``ax`` checked, or a new row of ``n`` panels."""
    if ax is None:
        width, height = panel_size
        _, axes = plt.subplots(
            1, n, figsize=(width * n, height), squeeze=False, layout="constrained"
        )
        return list(axes[0])
    if isinstance(ax, np.ndarray):  # plt.subplots(1, n)[1]
        ax = list(ax.ravel())
    axes = [ax] if isinstance(ax, Axes) else list(ax) if isinstance(ax, Sequence) else [ax]
    if len(axes) != n or not all(isinstance(a, Axes) for a in axes):
        raise TypeError(f"ax must be {n} matplotlib Axes (one per panel), got {ax!r}.")
    return axes


def save_figure(fig: Figure, path: Path) -> None:
    """``fig.savefig`` to a temporary name beside ``path``, then renamed over it."""
    fmt = path.suffix[1:].lower() or "png"
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")


def finish(
    result: Axes | list[Axes],
    *,
    new_figure: bool,
    show: bool | None,
    save: Path | None,
    return_fig: bool,
) -> Any:
    """Save, show and choose the return value, the same way for every plot.

    Parameters
    ----------
    result
        What the plot returns by default (its Axes, or a list of them).
    new_figure
        Whether the plot created the figure (``ax=None``).
    show, save, return_fig
        The user's options (``save`` checked by :func:`check_options`).
    """
    first = result[0] if isinstance(result, list) else result
    fig = first.get_figure(root=True)
    if save is not None:
        save_figure(fig, save)
    if show is None:
        show = new_figure and save is None and not return_fig
    if show:
        plt.show()
    if return_fig:
        return fig
    return None if show else result
