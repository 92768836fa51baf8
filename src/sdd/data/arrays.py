"""Arrays as AnnData: one row per example (image), one column per pixel ``px_0, px_1, ...``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def array_to_anndata(images: Any, labels: Any = None) -> AnnData:
    """Flatten ``(N, ...)`` arrays into a sparse float32 AnnData, labels in ``obs["label"]``.

    Examples
    --------
    >>> adata = array_to_anndata(np.zeros((3, 2, 2)), labels=[0, 1, 1])
    >>> adata.shape, adata.var_names[0], list(adata.obs["label"])
    ((3, 4), 'px_0', ['0', '1', '1'])
    """
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, ...) with N > 0, got {images.shape}.")
    flat = images.reshape(images.shape[0], -1)
    if not (np.issubdtype(flat.dtype, np.integer) or np.issubdtype(flat.dtype, np.floating)):
        raise TypeError(f"images must be numeric, got dtype {flat.dtype}.")
    adata = AnnData(sp.csr_matrix(flat.astype(np.float32)))
    adata.var_names = [f"px_{i}" for i in range(flat.shape[1])]
    adata.obs_names = [f"img_{i}" for i in range(flat.shape[0])]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (flat.shape[0],):
            raise ValueError(f"labels must have one entry per image, got shape {labels.shape}.")
        adata.obs["label"] = pd.Categorical(labels.astype(str))
    return adata
