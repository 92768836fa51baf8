"""UMAP of real and generated cells from one stored joint embedding."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

from .._execution import moved_keywords, option_dict
from ..tl import joint_embedding
from ._utils import check_options, finish, panel_axes

__all__ = ["umap", "SOURCE_COLORS", "category_palette"]

logger = logging.getLogger("sdd")

SOURCE = "source"
SOURCE_COLORS = {"real": "#9e9e9e", "generated": "#ff7f0e"}
"""Colours of ``obs["source"]``; no label palette of :func:`umap` comes close to them."""
HINT = 15  # logging level of sdd.settings.verbosity = "hint"
NA_COLOR = "#d3d3d3"  # scanpy's colour for cells without a label
MIN_DISTANCE = 0.3  # RGB distance from the source colours and greys


def _candidates() -> list[str]:
    from scanpy.plotting import palettes

    return list(dict.fromkeys([*palettes.default_20, *palettes.default_28, *palettes.default_102]))


def category_palette(n: int, avoid: Sequence[str] = tuple(SOURCE_COLORS.values())) -> list[str]:
    """``n`` label colours from scanpy's palettes, none close to ``avoid`` or to a grey.

    Grey marks real cells and cells without a label, orange generated cells, so a cell
    type never shares the colour of a source.

    Examples
    --------
    >>> colours = category_palette(5)
    >>> len(colours), "#ff7f0e" in colours
    (5, False)
    """
    avoid_rgb = np.array([to_rgb(c) for c in (*avoid, NA_COLOR)])
    keep = []
    for colour in _candidates():
        rgb = np.array(to_rgb(colour))
        greyish = rgb.max() - rgb.min() < 0.1
        close = np.min(np.linalg.norm(avoid_rgb - rgb, axis=1)) < MIN_DISTANCE
        if not greyish and not close:
            keep.append(colour)
    if n > len(keep):
        raise ValueError(
            f"{n} categories but only {len(keep)} distinct colours; pass palette= to sdd.pl.umap."
        )
    return keep[:n]


def _check_color(joint: AnnData, key: str) -> None:
    if key in joint.obs.columns or key in joint.var_names:
        return
    if key == SOURCE:
        raise ValueError(
            "color 'source' needs obs['source']; embed with sdd.tl.joint_embedding(real, "
            "generated), or pass the generated cells as the second argument."
        )
    raise ValueError(
        f"color {key!r} is neither an obs column nor a gene of the embedded cells "
        f"(obs columns: {list(joint.obs.columns)})."
    )


def _style(joint: AnnData, key: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """scanpy keywords of one panel: distinct source / label colours unless the user set them."""
    column = joint.obs[key] if key in joint.obs.columns else None
    if column is None or not isinstance(column.dtype, pd.CategoricalDtype):
        return dict(kwargs)
    if "palette" in kwargs or f"{key}_colors" in joint.uns:
        return dict(kwargs)
    categories = [str(c) for c in column.cat.categories]
    if key == SOURCE and set(categories) <= set(SOURCE_COLORS):
        palette = {c: SOURCE_COLORS[c] for c in categories}
    else:
        try:
            colours = category_palette(len(categories))
        except ValueError:  # more labels than distinct colours: scanpy's own choice
            return dict(kwargs)
        palette = dict(zip(categories, colours, strict=True))
    return {"palette": palette, "na_color": NA_COLOR, **kwargs}


def _drawing_copy(joint: AnnData, colors: Sequence[str], random_state: int) -> AnnData:
    """The cells in random order (neither set on top), with only what the panels need.

    A light copy: scanpy writes palettes into the plotted object, which leaves the
    stored embedding untouched; the values are copied only when a panel shows a gene.
    """
    order = np.random.default_rng(random_state).permutation(joint.n_obs)
    genes = [c for c in colors if c not in joint.obs.columns]
    colours = {k: v for k, v in joint.uns.items() if k.endswith("_colors")}
    return AnnData(
        X=joint[order, genes].X if genes else None,
        obs=joint.obs.iloc[order].copy(),
        var=joint.var.loc[genes] if genes else None,
        obsm={"X_umap": np.asarray(joint.obsm["X_umap"])[order]},
        uns=colours,
    )


#: pl.umap(embedding_kwargs=...) options; None: tl.joint_embedding's default
EMBEDDING_OPTIONS = dict.fromkeys(
    ("layer", "generated_layer", "align_genes", "n_cells", "n_comps", "n_neighbors")
)


@moved_keywords("embedding_kwargs", frozenset(EMBEDDING_OPTIONS))
def umap(
    real: AnnData | Any,
    generated: Any = None,
    *,
    color: str | Sequence[str] = SOURCE,
    embedding_kwargs: Mapping[str, Any] | None = None,
    random_state: int = 0,
    size: float | None = None,
    title: str | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """UMAP of real and generated cells embedded together, coloured by source or label.

    Plots a stored embedding: pass the AnnData from :func:`sdd.tl.joint_embedding`, which
    computes the joint PCA, neighbour graph and UMAP once; plotting it again (other
    colours, other panels) recomputes nothing. Given real and generated cells instead,
    it computes that embedding first (a new one on every call).

    Real cells are grey, generated cells orange, and label palettes (e.g. cell types)
    never use those colours. Points are drawn in random order so neither set hides the
    other.

    Parameters
    ----------
    real
        The output of :func:`sdd.tl.joint_embedding` (or any AnnData with
        ``obsm["X_umap"]``) when ``generated`` is ``None``; else the real cells, as for
        :func:`sdd.tl.joint_embedding`.
    generated
        The generated cells, to compute a joint embedding with ``real`` first.
    color
        ``"source"`` (real vs generated), an ``obs`` column (e.g. the cell type; cells
        without it are light grey) or a gene, or a list of them for one panel each.
    embedding_kwargs
        Passed to :func:`sdd.tl.joint_embedding` (``layer``, ``generated_layer``,
        ``align_genes``, ``n_cells``, ``n_comps``, ``n_neighbors``); only when
        ``generated`` is given.
    random_state
        Seed of the drawing order (and of the embedding when it is computed here).
    size
        Marker size (scanpy's default when ``None``).
    title
        Panel title(s); defaults to ``"real vs generated"`` or the column name.
    ax
        Axes (one per colour) to draw into; a new figure, one panel per colour, when
        ``None``.
    show
        Show the figure; ``None``: when a new figure is drawn and it is neither returned
        nor saved. Nothing is returned when shown.
    save
        File path to write the figure to (format from the suffix, PNG by default),
        atomically (a temporary name, then a rename).
    return_fig
        Return the Figure instead of the Axes.
    **kwargs
        Passed to :func:`scanpy.pl.umap` (e.g. ``legend_loc``, ``palette``, ``frameon``).

    Returns
    -------
    The Axes, or a list of Axes when ``color`` is a list (the Figure with
    ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> joint = sdd.tl.joint_embedding(adata[::2], adata[1::2], n_cells=200)  # doctest: +SKIP
    >>> axes = sdd.pl.umap(joint, color=["source", "bulk_labels"], show=False)  # doctest: +SKIP
    """
    import scanpy as sc

    save_path = check_options(show=show, save=save, return_fig=return_fig)
    colors = [color] if isinstance(color, str) else list(color)
    if not colors or not all(isinstance(c, str) for c in colors):
        raise TypeError(f"color must be a string or a list of strings, got {color!r}.")
    titles = [title] * len(colors) if title is None or isinstance(title, str) else list(title)
    if len(titles) != len(colors):
        raise ValueError(f"{len(titles)} titles for {len(colors)} colors.")
    if generated is None:
        if not isinstance(real, AnnData) or "X_umap" not in real.obsm:
            raise ValueError(
                "Pass the AnnData from sdd.tl.joint_embedding(real, generated) (it holds "
                "obsm['X_umap']), or real and generated cells."
            )
        if embedding_kwargs:
            raise ValueError(
                f"embedding_kwargs {sorted(embedding_kwargs)} only apply when computing an "
                "embedding (generated= given); the embedding passed is used as it is."
            )
        joint = real
    else:
        options = option_dict(embedding_kwargs, EMBEDDING_OPTIONS, "embedding_kwargs")
        options = {k: v for k, v in options.items() if v is not None}
        joint = joint_embedding(real, generated, random_state=random_state, **options)
        logger.log(
            HINT,
            "sdd.pl.umap: computed a joint embedding; compute it once with "
            "sdd.tl.joint_embedding and pass that to plot it again without recomputing.",
        )
    for key in colors:
        _check_color(joint, key)
    new_figure = ax is None
    axes = panel_axes(ax, len(colors), (5.6, 4.2))
    shuffled = _drawing_copy(joint, colors, random_state)
    for key, panel, label in zip(colors, axes, titles, strict=True):
        style = _style(joint, key, kwargs)
        sc.pl.umap(
            shuffled,
            color=key,
            ax=panel,
            show=False,
            size=size,
            title=label or ("real vs generated" if key == SOURCE else key),
            **style,
        )
    result = axes[0] if isinstance(color, str) else axes
    return finish(result, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)
