"""Shared plumbing of the scRNA plots: data extraction and figure handling."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from anndata import AnnData
from matplotlib.axes import Axes

from ..data import get_matrix
from ..metrics import as_matrix, as_pair
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


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}.")
    return ax


def finish(show: bool) -> None:
    if show:
        plt.show()
