"""What a model uses of an AnnData: condition columns, their categories and codes.

Setup arguments live in ``adata.uns`` as plain values (h5ad-safe); :func:`plain` turns
what an h5ad round trip gives back (arrays, NumPy scalars) into lists and Python scalars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["plain", "obs_categories", "obs_codes", "check_var_names"]


def plain(value: Any) -> Any:
    """JSON-friendly copy of setup arguments (an h5ad round trip turns lists into arrays)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def obs_categories(adata: AnnData, key: str) -> list[str]:
    """Sorted (or categorical-order) labels of ``adata.obs[key]`` as strings."""
    if key not in adata.obs:
        raise ValueError(
            f"Column {key!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    if column.isna().any():
        raise ValueError(f"adata.obs[{key!r}] has missing values.")
    cats = (
        column.cat.categories
        if isinstance(column.dtype, pd.CategoricalDtype)
        else np.unique(column)
    )
    return [str(c) for c in cats]


def obs_codes(adata: AnnData, categories: Mapping[str, list[str]]) -> np.ndarray | None:
    """Codes ``(n_obs, n_covariates)`` of ``adata.obs``'s labels; ``None`` without conditions."""
    if not categories:
        return None
    columns = []
    for key, cats in categories.items():
        if key not in adata.obs:
            raise ValueError(
                f"adata.obs lacks the condition column {key!r} the model conditions on "
                f"(columns: {list(adata.obs.columns)})."
            )
        column = adata.obs[key]
        if column.isna().any():
            raise ValueError(f"adata.obs[{key!r}] has missing values.")
        labels = column.astype(str).to_numpy()
        unknown = sorted(set(labels) - set(cats))
        if unknown:
            raise ValueError(
                f"adata.obs[{key!r}] has labels unknown to the model: {unknown[:5]} "
                f"(known: {cats})."
            )
        lookup = {c: i for i, c in enumerate(cats)}
        columns.append([lookup[v] for v in labels])
    return np.asarray(columns, dtype=np.int64).T



def check_var_names(adata: AnnData) -> list[str]:
    """Gene names as strings; raise if they are not unique (they key saved models)."""
    names = [str(v) for v in adata.var_names]
    if len(set(names)) != len(names):
        raise ValueError(
            "adata.var_names are not unique; call adata.var_names_make_unique() first."
        )
    return names
