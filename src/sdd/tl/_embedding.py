"""``sdd.tl.joint_embedding``: real and generated cells in one PCA / neighbour graph / UMAP."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..data.validate import check_int, check_seed, get_matrix
from ._evaluate import paired_matrices

__all__ = ["joint_embedding", "SOURCE", "SOURCE_CATEGORIES", "EMBEDDING_KEY"]

logger = logging.getLogger("sdd")

SOURCE = "source"
SOURCE_CATEGORIES = ["real", "generated"]
EMBEDDING_KEY = "sdd"  # provenance of the joint AnnData, as on generated cells
"""``uns`` key of the parameters :func:`joint_embedding` used."""


def _matrices(
    real: Any, generated: Any, layer: str | None, generated_layer: str | None, align_genes: bool
) -> tuple[Any, Any, pd.Index | None]:
    """Real and generated matrices over the same genes, and the gene names when known."""
    from ..metrics._utils import as_matrix, as_pair

    if isinstance(real, AnnData) and isinstance(generated, AnnData):
        x, y, genes = paired_matrices(
            real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
        )
        x, y = as_pair(x, y)
        return x, y, pd.Index([str(g) for g in genes])
    parts = []
    for data, key, name in ((real, layer, "real"), (generated, generated_layer, "generated")):
        if isinstance(data, AnnData):
            parts.append(get_matrix(data, key))
        elif key is not None:
            raise ValueError(f"{name}_layer={key!r} was given but {name} is not an AnnData.")
        else:
            parts.append(data)
    x, y = as_pair(as_matrix(parts[0], "real"), as_matrix(parts[1], "generated"))
    return x, y, None


def _rows(n: int, n_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    if n_cells is None or n <= n_cells:
        return np.arange(n)
    return np.sort(rng.choice(n, n_cells, replace=False))


def _obs_column(parts: Sequence[pd.Series | None], sizes: Sequence[int]) -> Any:
    """One obs column over both sets: numbers stay numbers, anything else is categorical."""
    present = [p for p in parts if p is not None]
    numeric = all(
        pd.api.types.is_numeric_dtype(p.dtype) and not pd.api.types.is_bool_dtype(p.dtype)
        for p in present
    )
    if numeric:
        return np.concatenate(
            [
                np.full(n, np.nan) if p is None else p.to_numpy(dtype=np.float64)
                for p, n in zip(parts, sizes, strict=True)
            ]
        )
    categories: list[str] = []
    for p in present:
        cats = p.cat.categories if isinstance(p.dtype, pd.CategoricalDtype) else pd.unique(p)
        categories += [str(c) for c in cats if pd.notna(c)]
    values = np.concatenate(
        [
            np.full(n, np.nan, dtype=object)
            if p is None
            else np.where(p.isna().to_numpy(), np.nan, p.astype(str).to_numpy()).astype(object)
            for p, n in zip(parts, sizes, strict=True)
        ]
    )
    return pd.Categorical(values, categories=list(dict.fromkeys(categories)))


def _joint_obs(real: Any, generated: Any, rows_r: np.ndarray, rows_g: np.ndarray) -> pd.DataFrame:
    frames = [
        data.obs.iloc[rows] if isinstance(data, AnnData) else None
        for data, rows in ((real, rows_r), (generated, rows_g))
    ]
    sizes = [rows_r.size, rows_g.size]
    names = [
        [str(n) for n in f.index] if f is not None else [f"{source}_{i}" for i in rows]
        for f, source, rows in zip(frames, SOURCE_CATEGORIES, (rows_r, rows_g), strict=True)
    ]
    obs = pd.DataFrame(
        {
            SOURCE: pd.Categorical(
                [SOURCE_CATEGORIES[0]] * sizes[0] + [SOURCE_CATEGORIES[1]] * sizes[1],
                categories=SOURCE_CATEGORIES,
            )
        },
        index=pd.Index(names[0] + names[1]),
    )
    keys = [k for f in frames if f is not None for k in f.columns if k != SOURCE]
    for key in dict.fromkeys(keys):
        parts = [f[key] if f is not None and key in f.columns else None for f in frames]
        obs[key] = _obs_column(parts, sizes)
    return obs


def joint_embedding(
    real: Any,
    generated: Any,
    *,
    layer: str | None = None,
    generated_layer: str | None = None,
    align_genes: bool = False,
    n_cells: int | None = None,
    n_comps: int = 50,
    n_neighbors: int = 15,
    random_state: int = 0,
) -> AnnData:
    """Embed real and generated cells together, once: PCA, neighbour graph and UMAP.

    The two matrices are stacked and embedded with scanpy (:func:`scanpy.pp.pca`,
    :func:`scanpy.pp.neighbors`, :func:`scanpy.tl.umap`). The result is an AnnData that
    keeps the embedding; plot it as often as needed with :func:`sdd.pl.umap` (or
    :func:`scanpy.pl.umap`), which does not recompute it. Generated cells that land in
    their own region of the map are cells unlike any real cell.

    Parameters
    ----------
    real, generated
        AnnData objects (genes matched by name) or ``(cells, genes)`` arrays / sparse
        matrices with the same genes in the same order.
    layer, generated_layer
        Layers of ``real`` / ``generated`` to use instead of ``X``.
    align_genes
        Keep only shared genes when the AnnData objects' genes differ (else ``ValueError``).
    n_cells
        Most cells taken from each set (random subsample), to keep large data fast.
    n_comps
        PCA components before the neighbour graph (lowered for tiny data).
    n_neighbors
        Neighbours of the graph (lowered for tiny data).
    random_state
        Seed of the subsampling, PCA, neighbours and UMAP.

    Returns
    -------
    AnnData of the embedded cells (real first, then generated) with ``X`` (the stacked
    values, float32), categorical ``obs["source"]`` (``"real"`` / ``"generated"``), the
    ``obs`` columns of both inputs (missing values where a set lacks a column),
    ``obsm["X_pca"]``, ``obsm["X_umap"]``, the neighbour graph (``obsp``,
    ``uns["neighbors"]``) and the parameters in ``uns["sdd"]`` (its provenance).

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> joint = sdd.tl.joint_embedding(adata[::2], adata[1::2], n_cells=200)  # doctest: +SKIP
    >>> sdd.pl.umap(joint, color=["source", "bulk_labels"])  # doctest: +SKIP
    """
    import scanpy as sc

    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells", 2)
    n_comps = check_int(n_comps, "n_comps", 1)
    n_neighbors = check_int(n_neighbors, "n_neighbors", 2)
    random_state = check_seed(random_state)
    x, y, genes = _matrices(real, generated, layer, generated_layer, align_genes)
    rng = np.random.default_rng(random_state)
    rows_r, rows_g = _rows(x.shape[0], n_cells, rng), _rows(y.shape[0], n_cells, rng)
    x, y = x[rows_r], y[rows_g]
    if x.shape[0] + y.shape[0] < 3:
        raise ValueError(
            f"joint_embedding needs at least 3 cells in all, got {x.shape[0] + y.shape[0]}."
        )
    stacked = (
        sp.vstack([sp.csr_matrix(x), sp.csr_matrix(y)], format="csr")
        if sp.issparse(x) or sp.issparse(y)
        else np.vstack([x, y])
    )
    joint = AnnData(stacked.astype(np.float32), obs=_joint_obs(real, generated, rows_r, rows_g))
    if genes is not None:
        joint.var_names = genes
    joint.obs_names_make_unique()
    n_pcs = int(min(n_comps, min(joint.shape) - 1))
    sc.pp.pca(joint, n_comps=n_pcs, random_state=random_state)
    sc.pp.neighbors(
        joint, n_neighbors=int(min(n_neighbors, joint.n_obs - 1)), random_state=random_state
    )
    sc.tl.umap(joint, random_state=random_state)
    joint.uns[EMBEDDING_KEY] = {
        "made_by": "sdd.tl.joint_embedding",
        "n_real": int(x.shape[0]),
        "n_generated": int(y.shape[0]),
        "layer": layer or "X",
        "generated_layer": generated_layer or "X",
        "n_comps": n_pcs,
        "n_neighbors": int(min(n_neighbors, joint.n_obs - 1)),
        "random_state": random_state,
    }
    logger.debug("joint embedding of %d real and %d generated cells", x.shape[0], y.shape[0])
    return joint
