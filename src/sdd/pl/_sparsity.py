"""Zero patterns: per-cell sparsity histograms and the sparsity-bit values before thresholding."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes

from ..data.validate import check_int
from ..metrics import cell_sparsity
from ._utils import check_options, finish, matrix, new_axes, pair

__all__ = ["sparsity", "sparsity_bits"]


def sparsity(
    real: Any,
    generated: Any,
    *,
    layer: str | None = None,
    generated_layer: str | None = None,
    bins: int = 50,
    density: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Histograms of per-cell sparsity (fraction of exact zeros), real vs generated.

    The SDD paper's Fig. 4: the real distribution is filled, each generated set is a line;
    the legend gives each set's overall zero fraction.

    Parameters
    ----------
    real
        AnnData or ``(cells, genes)`` array / sparse matrix.
    generated
        Same kind as ``real``, or a mapping ``{name: data}`` to overlay several models
        (e.g. ``{"SDD": gen, "baseline": gen_baseline}``). Genes must match ``real``'s
        (by name for AnnData, any order).
    layer, generated_layer
        Layers to use instead of ``X`` (``generated_layer`` applies to every generated set).
    bins
        Number of bins, shared by all sets.
    density
        Normalise each histogram to unit area (sets of different sizes compare).
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
        Passed to :meth:`matplotlib.axes.Axes.hist` of every histogram (e.g.
        ``cumulative``, ``linewidth``).

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> ax = sdd.pl.sparsity(adata[::2], {"other half": adata[1::2]}, show=False)
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    sets = dict(generated) if isinstance(generated, Mapping) else {"generated": generated}
    if not sets:
        raise ValueError("generated is an empty mapping; pass at least one generated set.")
    bins = check_int(bins, "bins", 1)
    real_values = None
    values = {}
    for name, data in sets.items():
        x, y = pair(real, data, layer=layer, generated_layer=generated_layer)
        if real_values is None:
            real_values = cell_sparsity(x)
        values[str(name)] = cell_sparsity(y)
    everything = np.concatenate([real_values, *values.values()])
    edges = np.histogram_bin_edges(everything, bins=int(bins))
    new_figure = ax is None
    ax = new_axes(ax, figsize=(5.0, 3.5))
    ax.hist(
        real_values,
        **{
            "bins": edges,
            "density": density,
            "histtype": "stepfilled",
            "color": "0.6",
            "alpha": 0.6,
            "label": f"real ({real_values.mean():.1%} zeros)",
            **kwargs,
        },
    )
    for name, v in values.items():
        ax.hist(
            v,
            **{
                "bins": edges,
                "density": density,
                "histtype": "step",
                "linewidth": 1.5,
                "label": f"{name} ({v.mean():.1%} zeros)",
                **kwargs,
            },
        )
    ax.set_xlabel("fraction of zeros per cell")
    ax.set_ylabel("density" if density else "cells")
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)


def sparsity_bits(
    generated: Any,
    *,
    layer: str = "sb_logits",
    rescale: bool = False,
    bins: int = 100,
    log: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Any:
    """Histogram of the analog sparsity-bit values before thresholding.

    The SDD paper's Fig. 5: a trained model puts the sparsity bits close to the two
    values, so the histogram is sharp at both ends and the threshold (dashed) rarely
    matters. The title gives the share of values within 0.1 of an end (of the [-1, 1]
    range; 0.05 of [0, 1] with ``rescale``).

    A calibrated model compares each value with its own threshold (the gene's offset plus
    the cell's cut, ``layers["sb_thresholds"]``): then the histogram shows each value
    minus the threshold it was compared with, so the dashed line at 0 is the decision
    actually made, for every entry.

    Parameters
    ----------
    generated
        AnnData from :meth:`sdd.SDD.generate` (a model with ``sparsity_bits=True``,
        generated with ``store_dense=True``), or an array of SB values in [-1, 1].
    layer
        Layer holding the SB values.
    rescale
        Show ``(v + 1) / 2`` in [0, 1] with the threshold at 0.5, the paper's axis.
    bins
        Number of bins.
    log
        Log-scale counts (the mass at the ends dwarfs the middle).
    title
        Title prefix.
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
        Passed to :meth:`matplotlib.axes.Axes.hist` (e.g. ``color``).

    Returns
    -------
    The Axes (the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import sdd
    >>> gen = model.generate(500, sampler="ddim", n_steps=50)  # doctest: +SKIP
    >>> ax = sdd.pl.sparsity_bits(gen)  # doctest: +SKIP
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
    if isinstance(generated, AnnData):
        if layer not in generated.layers:
            raise ValueError(
                f"generated has no layers[{layer!r}] (layers: {list(generated.layers)}); "
                "generate with a model trained with sparsity_bits=True and store_dense=True."
            )
        values = matrix(generated, layer, "generated")
        thresholds = generated.layers.get(THRESHOLDS) if layer == "sb_logits" else None
    else:
        values, thresholds = matrix(generated, None, "generated"), None
    values = _flat(values)
    bins = check_int(bins, "bins", 1)
    lo, hi, threshold = (0.0, 1.0, 0.5) if rescale else (-1.0, 1.0, 0.0)
    if rescale:
        values = (values + 1.0) / 2.0
    near = np.mean(np.minimum(np.abs(values - lo), np.abs(values - hi)) <= 0.05 * (hi - lo))
    stats = f"{near:.1%} of values within {0.05 * (hi - lo):g} of {lo:g} or {hi:g}"
    xlabel = "sparsity-bit value before thresholding"
    if thresholds is not None:
        values = values - (_flat(thresholds) + 1.0) / 2.0 if rescale else values - _flat(thresholds)
        lo, hi, threshold = values.min(), values.max(), 0.0
        xlabel = "sparsity-bit value minus its calibrated threshold"
    new_figure = ax is None
    ax = new_axes(ax, figsize=(5.0, 3.5))
    ax.hist(
        values,
        **{
            "bins": int(bins),
            "range": (min(lo, values.min()), max(hi, values.max())),
            "color": "tab:blue",
            "log": log,
            **kwargs,
        },
    )
    ax.axvline(threshold, linestyle="--", color="0.3", linewidth=1, label="threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend(frameon=False, fontsize="small")
    ax.set_title(f"{title}\n{stats}" if title else stats)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)


THRESHOLDS = "sb_thresholds"  # the layer of the thresholds a calibrated model compared with


def _flat(values: Any) -> np.ndarray:
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values).ravel()
