"""Joint UMAP of real and generated cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from matplotlib.axes import Axes

from ..data import check_int
from ._utils import finish, pair

__all__ = ["umap"]

SOURCE = "source"
SOURCE_COLORS = {"real": "#9e9e9e", "generated": "#ff7f0e"}


def _obs_column(real: Any, generated: Any, key: str, rows_r, rows_g) -> pd.Categorical:
    parts = []
    found = False
    for data, rows in ((real, rows_r), (generated, rows_g)):
        if isinstance(data, AnnData) and key in data.obs:
            found = True
            parts.append(data.obs[key].astype(str).to_numpy()[rows].astype(object))
        else:
            parts.append(np.full(rows.size, np.nan, dtype=object))
    if not found:
        raise ValueError(
            f"color {key!r} is neither 'source' nor an obs column of real or generated."
        )
    return pd.Categorical(np.concatenate(parts))


def umap(
    real: Any,
    generated: Any,
    *,
    color: str | Sequence[str] = SOURCE,
    layer: str | None = None,
    generated_layer: str | None = None,
    align_genes: bool = False,
    n_cells: int | None = None,
    n_comps: int = 50,
    n_neighbors: int = 15,
    random_state: int = 0,
    size: float | None = None,
    title: str | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool = False,
) -> Axes | list[Axes]:
    """UMAP of real and generated cells embedded together, coloured by source or label.

    The two matrices are stacked and embedded with scanpy (:func:`scanpy.pp.pca`,
    :func:`scanpy.pp.neighbors`, :func:`scanpy.tl.umap`); points are drawn in random order
    so neither set hides the other. Generated cells that land in their own region of the
    map are cells unlike any real cell.

    Parameters
    ----------
    real, generated
        AnnData objects (genes matched by name) or ``(cells, genes)`` arrays / sparse
        matrices with the same genes in the same order.
    color
        ``"source"`` (real vs generated) or an ``obs`` column of either AnnData (e.g. the
        cell type; cells without it are grey), or a list of them for one panel each.
    layer, generated_layer
        Layers of ``real`` / ``generated`` to use instead of ``X``.
    align_genes
        Keep only shared genes when the AnnData objects' genes differ (else ``ValueError``).
    n_cells
        Most cells drawn from each set (random subsample), to keep large data fast.
    n_comps
        PCA components before the neighbour graph (lowered for tiny data).
    n_neighbors
        Neighbours of the UMAP graph.
    random_state
        Seed of the subsampling, PCA, neighbours and UMAP.
    size
        Marker size (scanpy's default when ``None``).
    title
        Panel title(s); defaults to ``"real vs generated"`` or the column name.
    ax
        Axes (one per colour) to draw into; new axes when ``None``.
    show
        Call :func:`matplotlib.pyplot.show` at the end.

    Returns
    -------
    The Axes, or a list of Axes when ``color`` is a list.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> axes = sdd.pl.umap(adata[::2], adata[1::2], color=["source", "bulk_labels"])  # doctest: +SKIP
    """
    import scanpy as sc

    colors = [color] if isinstance(color, str) else list(color)
    if not colors or not all(isinstance(c, str) for c in colors):
        raise TypeError(f"color must be a string or a list of strings, got {color!r}.")
    titles = [title] * len(colors) if title is None or isinstance(title, str) else list(title)
    if len(titles) != len(colors):
        raise ValueError(f"{len(titles)} titles for {len(colors)} colors.")
    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells", 1)
    if ax is None:
        _, axes = plt.subplots(1, len(colors), figsize=(4.8 * len(colors), 4.2), squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(colors) or not all(isinstance(a, Axes) for a in axes):
            raise ValueError(f"ax must be one matplotlib Axes per color ({len(colors)}).")

    x, y = pair(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    rng = np.random.default_rng(random_state)
    rows_r, rows_g = (
        np.arange(m.shape[0])
        if n_cells is None or m.shape[0] <= n_cells
        else np.sort(rng.choice(m.shape[0], n_cells, replace=False))
        for m in (x, y)
    )
    x, y = x[rows_r], y[rows_g]
    stacked = (
        sp.vstack([sp.csr_matrix(x), sp.csr_matrix(y)], format="csr")
        if sp.issparse(x) or sp.issparse(y)
        else np.vstack([x, y])
    )
    obs = pd.DataFrame(
        {
            SOURCE: pd.Categorical(
                ["real"] * x.shape[0] + ["generated"] * y.shape[0],
                categories=["real", "generated"],
            )
        }
    )
    for key in dict.fromkeys(c for c in colors if c != SOURCE):
        obs[key] = _obs_column(real, generated, key, rows_r, rows_g)
    order = rng.permutation(stacked.shape[0])  # draw order: neither set on top
    obs.index = [f"cell_{i}" for i in range(obs.shape[0])]
    joint = AnnData(stacked[order].astype(np.float32), obs=obs.iloc[order])
    n_pcs = int(min(n_comps, min(joint.shape) - 1))
    sc.pp.pca(joint, n_comps=n_pcs, random_state=random_state)
    sc.pp.neighbors(
        joint, n_neighbors=int(min(n_neighbors, joint.n_obs - 1)), random_state=random_state
    )
    sc.tl.umap(joint, random_state=random_state)
    for key, panel, label in zip(colors, axes, titles, strict=True):
        kwargs = {"palette": SOURCE_COLORS} if key == SOURCE else {}
        sc.pl.umap(
            joint,
            color=key,
            ax=panel,
            show=False,
            size=size,
            title=label or ("real vs generated" if key == SOURCE else key),
            **kwargs,
        )
    finish(show)
    return axes[0] if isinstance(color, str) else axes
