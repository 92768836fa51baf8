"""Annotations of generated AnnData: the ``source`` column and the carried ``var`` columns."""

from __future__ import annotations

import pandas as pd
from anndata import AnnData

from .registry import plain

SOURCE_CATEGORIES = ["real", "generated"]


def plain_var(var: pd.DataFrame) -> dict[str, list]:
    """The ``var`` columns worth carrying into generated data, as JSON-friendly lists."""
    out = {}
    for name, column in var.items():
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[str(name)] = [plain(v) for v in column.to_numpy()]
        elif isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            out[str(name)] = column.astype(str).tolist()
    return out


def mark_source(adata: AnnData, source: str = "real") -> AnnData:
    """Set ``adata.obs["source"]`` (categorical ``real``/``generated``) in place and return it.

    Generated AnnData carry ``obs["source"] == "generated"``; marking the real cells lets
    ``anndata.concat([real, generated])`` colour by source in scanpy.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> mark_source(ad.AnnData(np.ones((2, 2)))).obs["source"].tolist()
    ['real', 'real']
    """
    if source not in SOURCE_CATEGORIES:
        raise ValueError(f"source must be one of {SOURCE_CATEGORIES}, got {source!r}.")
    adata.obs["source"] = pd.Categorical([source] * adata.n_obs, categories=SOURCE_CATEGORIES)
    return adata
