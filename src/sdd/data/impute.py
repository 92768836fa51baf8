"""Which entries of cells x model genes are missing, for imputation (inpainting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def missing_entries(
    var_names: Sequence[str], adata: AnnData, mask: Any
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix | None]:
    """Map ``adata``'s genes onto the model's ``var_names`` and read the ``mask``.

    Parameters
    ----------
    var_names
        The model's genes, in its order.
    adata
        Cells whose genes are a subset of ``var_names`` (any order).
    mask
        ``None``, a list of gene names missing in every cell, or a boolean array or
        sparse matrix of ``adata``'s shape (``True`` = missing).

    Returns
    -------
    The model column of each ``adata`` gene; per model gene, whether it is missing in
    every cell (absent from ``adata`` or named in ``mask``); the per-entry mask (CSR, in
    ``adata``'s columns) or ``None``.

    Examples
    --------
    >>> import anndata as ad
    >>> cells = ad.AnnData(np.ones((2, 2)))
    >>> cells.var_names = ["b", "a"]
    >>> columns, missing, _ = missing_entries(["a", "b", "c"], cells, None)
    >>> columns.tolist(), missing.tolist()
    ([1, 0], [False, False, True])
    """
    genes = [str(v) for v in adata.var_names]
    if len(set(genes)) != len(genes):
        raise ValueError("adata.var_names has duplicates; call .var_names_make_unique().")
    position = {g: i for i, g in enumerate(var_names)}
    unknown = [g for g in genes if g not in position]
    if unknown:
        raise ValueError(
            f"adata has {len(unknown)} gene(s) the model was not trained on (e.g. "
            f"{unknown[:5]}); subset adata to the model's genes (model.var_names_)."
        )
    columns = np.asarray([position[g] for g in genes], dtype=np.int64)
    missing = np.ones(len(var_names), dtype=bool)  # genes absent from adata
    missing[columns] = False
    entries = None
    if mask is None:
        pass
    elif isinstance(mask, str):
        raise TypeError("mask must be a list of gene names or a boolean array, not a string.")
    elif sp.issparse(mask) or (isinstance(mask, np.ndarray) and mask.dtype.kind == "b"):
        if mask.shape != adata.shape:
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}; expected adata's shape {adata.shape} "
                "(cells x genes, True = missing)."
            )
        if mask.dtype.kind != "b":
            raise TypeError(f"mask must be boolean, got dtype {mask.dtype}.")
        entries = sp.csr_matrix(mask)
    elif isinstance(mask, np.ndarray) and mask.dtype.kind not in "UO":
        raise TypeError(
            f"mask must be boolean (True = missing), got dtype {mask.dtype}; use mask.astype(bool)."
        )
    elif isinstance(mask, Sequence | np.ndarray | pd.Index | pd.Series):
        names = [str(g) for g in mask]
        bad = [g for g in names if g not in position]
        if bad:
            raise ValueError(f"mask names gene(s) the model does not know: {bad[:5]}.")
        missing[[position[g] for g in names]] = True
    else:
        raise TypeError(
            "mask must be a list of gene names or a boolean (cells x genes) array, "
            f"got {type(mask).__name__}."
        )
    if not missing.any() and (entries is None or entries.nnz == 0):
        raise ValueError(
            "mask marks no entry as missing and adata has all genes: nothing to impute."
        )
    return columns, missing, entries
