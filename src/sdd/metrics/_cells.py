"""Whole cells: per-cell QC numbers of real and generated cells, and how far apart they are.

A biologist looks at cells (QC violins, clustering): a generator can match every gene's
mean and detection rate and still make cells that a QC filter would drop. These metrics
compare the per-cell distributions that ``sc.pp.calculate_qc_metrics`` reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._classifier import classifier_auc
from ._utils import as_matrix

__all__ = ["cell_qc", "cell_metrics", "QC_COLUMNS"]

QC_COLUMNS = ("n_genes_by_counts", "total_counts", "max_counts")
"""Per-cell numbers of :func:`cell_qc` (scanpy's names; ``counts`` are the matrix's values,
e.g. log-expression)."""


def cell_qc(x: Any) -> pd.DataFrame:
    """Per-cell QC numbers: detected genes, sum and largest value of each row.

    ``n_genes_by_counts`` and ``total_counts`` come from
    :func:`scanpy.pp.calculate_qc_metrics`; ``max_counts`` is each row's maximum.

    Examples
    --------
    >>> cell_qc(np.array([[0.0, 2.0, 1.0], [0.0, 0.0, 3.0]]))["n_genes_by_counts"].tolist()
    [2, 1]
    """
    import anndata as ad
    import scanpy as sc

    matrix = as_matrix(x)
    matrix = sp.csr_matrix(matrix) if not sp.issparse(matrix) else matrix.tocsr()
    obs, _ = sc.pp.calculate_qc_metrics(
        ad.AnnData(matrix.astype(np.float32)), percent_top=None, log1p=False, inplace=False
    )
    frame = obs[["n_genes_by_counts", "total_counts"]].reset_index(drop=True)
    frame["max_counts"] = matrix.max(axis=1).toarray().ravel()
    return frame


def cell_metrics(real: Any, generated: Any, *, random_state: int | None = 0) -> dict[str, float]:
    """How far the generated cells' QC numbers lie from the real ones.

    - ``detected_w1`` / ``detected_ks``: Wasserstein-1 distance (in genes) and
      Kolmogorov-Smirnov statistic between the detected-genes distributions; 0 is best;
    - ``total_w1`` / ``total_ks``: the same for each cell's sum of values;
    - ``below_real_p1``: fraction of generated cells with fewer detected genes than the
      real cells' 1st percentile (about 0.01 for another sample of the real cells; cells
      a ``sc.pp.filter_cells(min_genes=)`` at that level would drop);
    - ``AUC_rf_qc``: cross-validated ROC AUC of a random forest telling generated from
      real cells on the three QC numbers alone (:func:`classifier_auc`); 0.5 is best.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.poisson(1.0, (200, 30)), rng.poisson(1.0, (200, 30))
    >>> cell_metrics(a, b)["detected_ks"] < 0.2
    True
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    qr, qg = cell_qc(real), cell_qc(generated)
    out: dict[str, float] = {}
    for name, column in (("detected", "n_genes_by_counts"), ("total", "total_counts")):
        r, g = qr[column].to_numpy(float), qg[column].to_numpy(float)
        out[f"{name}_w1"] = float(wasserstein_distance(r, g))
        out[f"{name}_ks"] = float(ks_2samp(r, g).statistic)
    low = np.percentile(qr["n_genes_by_counts"], 1)
    out["below_real_p1"] = float(np.mean(qg["n_genes_by_counts"].to_numpy() < low))
    out["AUC_rf_qc"] = classifier_auc(
        qr[list(QC_COLUMNS)].to_numpy(float), qg[list(QC_COLUMNS)].to_numpy(float),
        method="random_forest", random_state=random_state,
    )  # fmt: skip
    return out
