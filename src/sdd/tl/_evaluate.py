"""``sdd.tl.evaluate``: fidelity metrics of generated cells against real cells, as a table."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..data import check_int, get_matrix

__all__ = ["evaluate"]

METRICS = (
    "SCC",
    "PCC",
    "MMD",
    "LISI",
    "AUC",
    "sparsity_real",
    "sparsity_generated",
    "sparsity_gene_corr",
    "sparsity_cell_w1",
)
"""Metric names of :func:`evaluate`'s table, in order."""

N_SPLITS = 5  # cross-validation folds of the classifier AUC
N_NEIGHBORS = 90  # LISI neighbours, scib's default (perplexity 30)


def _check_adata(adata: Any, name: str) -> AnnData:
    if not isinstance(adata, AnnData):
        raise TypeError(f"{name} must be an AnnData object, got {type(adata).__name__}.")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"{name} is empty: {adata.n_obs} cells x {adata.n_vars} genes.")
    return adata


def _shared_genes(real: AnnData, generated: AnnData, align_genes: bool) -> pd.Index | None:
    """Genes to compare, in ``real``'s order; ``None`` when both already match exactly."""
    genes_r, genes_g = real.var_names, generated.var_names
    if genes_r.equals(genes_g):
        return None
    for name, genes in (("real", genes_r), ("generated", genes_g)):
        if not genes.is_unique:
            dup = genes[genes.duplicated()].unique()[:5].tolist()
            raise ValueError(
                f"{name}.var_names has duplicates ({dup}); genes cannot be matched. "
                "Call .var_names_make_unique() first."
            )
    set_g = set(genes_g)
    shared = genes_r[genes_r.isin(set_g)]
    if len(shared) == len(genes_r) == len(genes_g):
        return shared  # same genes in another order: reorder, nothing is lost
    if not align_genes:
        only_r = genes_r[~genes_r.isin(set_g)][:5].tolist()
        only_g = genes_g[~genes_g.isin(set(genes_r))][:5].tolist()
        raise ValueError(
            f"real and generated have different genes ({len(genes_r)} vs {len(genes_g)}, "
            f"{len(shared)} shared; only in real e.g. {only_r}, only in generated e.g. "
            f"{only_g}). Pass align_genes=True to compare the shared genes."
        )
    if len(shared) == 0:
        raise ValueError("real and generated share no genes (var_names); nothing to compare.")
    return shared


def paired_matrices(
    real: AnnData,
    generated: AnnData,
    *,
    layer: str | None = None,
    generated_layer: str | None = None,
    align_genes: bool = False,
) -> tuple[Any, Any, pd.Index]:
    """Matrices of ``real`` and ``generated`` over the same genes in the same order.

    Used by :func:`evaluate` and the ``sdd.pl`` functions. Genes are matched by
    ``var_names``: identical lists pass, the same genes in another order are reordered to
    ``real``'s order, and anything else raises unless ``align_genes`` (then the shared
    genes are kept, in ``real``'s order).

    Returns
    -------
    ``(real_matrix, generated_matrix, genes)``.
    """
    _check_adata(real, "real")
    _check_adata(generated, "generated")
    genes = _shared_genes(real, generated, align_genes)
    x = get_matrix(real, layer)
    y = get_matrix(generated, generated_layer)
    if genes is None:
        return x, y, real.var_names
    ix = real.var_names.get_indexer(genes)
    iy = generated.var_names.get_indexer(genes)
    return x[:, ix], y[:, iy], genes


def _warn_units(real: AnnData, generated: AnnData, layer: str | None) -> None:
    info = generated.uns.get("sdd")
    trained_on = info.get("layer") if isinstance(info, Mapping) else None
    if isinstance(trained_on, str) and trained_on != "X" and layer is None:
        hint = f"pass layer={trained_on!r}" if trained_on in real.layers else "compare like units"
        warnings.warn(
            f"The generated cells are in the units of the training layer {trained_on!r}, "
            f"but real.X is being compared; {hint}.",
            UserWarning,
            stacklevel=3,
        )


def _labels(adata: AnnData, key: str, name: str) -> np.ndarray:
    if key not in adata.obs:
        raise ValueError(
            f"labels_key {key!r} not found in {name}.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    if column.isna().any():
        raise ValueError(f"{name}.obs[{key!r}] has missing values.")
    return column.astype(str).to_numpy()


def _subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if size >= n else np.sort(rng.choice(n, size, replace=False))


def _rows(x: Any, size: int, rng: np.random.Generator) -> Any:
    rows = x[_subsample(x.shape[0], size, rng)]
    return sp.csr_matrix(rows) if sp.issparse(rows) else np.asarray(rows)


def _group_metrics(
    x: Any,
    y: Any,
    *,
    n_cells: int | None,
    n_comps: int,
    n_neighbors: int,
    classifier: str,
    rng: np.random.Generator,
    random_state: int,
) -> tuple[dict[str, float], int]:
    from .. import metrics  # scipy.stats / scikit-learn load on first use, not on `import sdd`

    values = {"SCC": metrics.scc(x, y), "PCC": metrics.pcc(x, y)}
    size = min(x.shape[0], y.shape[0], n_cells or np.inf)
    size = int(size)
    xs, ys = _rows(x, size, rng), _rows(y, size, rng)
    pcs_x, pcs_y = metrics.joint_pca(xs, ys, n_comps=n_comps, random_state=random_state)
    values["MMD"] = metrics.mmd(pcs_x, pcs_y)
    values["LISI"] = metrics.lisi(pcs_x, pcs_y, n_neighbors=n_neighbors)
    values["AUC"] = metrics.classifier_auc(
        pcs_x, pcs_y, method=classifier, n_splits=N_SPLITS, random_state=random_state
    )
    values.update(metrics.sparsity_metrics(x, y))
    return values, size


def evaluate(
    real: AnnData,
    generated: AnnData,
    *,
    labels_key: str | None = None,
    layer: str | None = None,
    generated_layer: str | None = None,
    n_cells: int | None = None,
    random_state: int = 0,
    align_genes: bool = False,
    n_comps: int = 50,
    n_neighbors: int = N_NEIGHBORS,
    classifier: Literal["knn", "random_forest"] = "knn",
    min_cells: int = 20,
) -> pd.DataFrame:
    """Judge generated cells against real cells with the metrics of the SDD paper and scDiffusion.

    For all cells together (group ``"all"``) and, with ``labels_key``, for each label
    found in both sets:

    - ``SCC`` / ``PCC``: Spearman / Pearson correlation of per-gene mean expression over
      all cells (:func:`sdd.metrics.scc`, :func:`sdd.metrics.pcc`); 1 is best.
    - ``MMD``: multi-kernel MMD² (bandwidths b/4 .. 4b, biased) on a joint PCA
      (:func:`sdd.metrics.mmd`); 0 is best.
    - ``LISI``: scaled iLISI of the real/generated label on a kNN graph of the joint PCA,
      ``n_neighbors`` neighbours, perplexity ``n_neighbors // 3``
      (:func:`sdd.metrics.lisi`); 0 = separated, ~0.9 for two samples of the same data
      with the defaults, 1 at most.
    - ``AUC``: 5-fold cross-validated ROC AUC of a real-vs-generated classifier on the
      joint PCA (:func:`sdd.metrics.classifier_auc`); 0.5 = indistinguishable.
    - ``sparsity_real`` / ``sparsity_generated``: fraction of exact zeros;
      ``sparsity_gene_corr``: Pearson correlation of per-gene zero fractions (NaN when a
      set has no zeros); ``sparsity_cell_w1``: 1-D Wasserstein distance between the
      per-cell zero-fraction distributions (:func:`sdd.metrics.sparsity_metrics`).

    SCC, PCC and the sparsity metrics use every cell. MMD, LISI and AUC use equal-size
    random subsamples (``min(n_real, n_generated, n_cells)`` cells of each), on which a
    joint PCA with ``n_comps`` components is fitted; equal sizes keep LISI's and the
    AUC's reference values (~1 and 0.5) meaningful. Small groups are noisy: the biased MMD²
    grows like 1/cells even for identical distributions, and the cross-validated kNN AUC
    of two samples of one distribution drifts below 0.5 (0.35-0.47 with 30-60 cells
    per set on pbmc68k_reduced), so compare groups of similar size.

    Parameters
    ----------
    real
        Real cells x genes.
    generated
        Generated cells x genes, e.g. from :meth:`sdd.SDD.generate`, in the same units
        as the compared real matrix.
    labels_key
        Column of both ``obs`` with cell labels: adds one group of rows per label present
        in both with at least ``min_cells`` cells in each (others are skipped with a
        warning).
    layer
        Layer of ``real`` to compare (default ``real.X``). A model trained on a layer
        generates in that layer's units, so pass the same layer here.
    generated_layer
        Layer of ``generated`` to compare (default ``generated.X``; ``"dense"`` compares
        the values before the sparsity mask).
    n_cells
        Most cells of each set used for MMD, LISI and AUC (default: all of the smaller
        set). Bounds time and memory on large data.
    random_state
        Seed of the subsampling, the PCA solver and the cross-validation folds.
    align_genes
        If the genes differ, compare the shared genes instead of raising a ``ValueError``.
        The same genes in a different order are always matched by name.
    n_comps
        Joint PCA components (50 as in the papers).
    n_neighbors
        Neighbours for LISI (default 90 as in scib; perplexity is a third of it).
    classifier
        ``"knn"`` (15 neighbours) or ``"random_forest"`` (100 trees) for the AUC.
    min_cells
        Fewest cells of each set a group needs (at least 5, the classifier's folds).

    Returns
    -------
    Tidy :class:`pandas.DataFrame` with columns ``group`` (``"all"`` or a label),
    ``metric``, ``value``, ``n_real``, ``n_generated`` (cells of the group) and
    ``n_subsample`` (cells of each set used for MMD, LISI and AUC). It is also stored in
    ``generated.uns["sdd"]["evaluation"]``, with the settings in
    ``generated.uns["sdd"]["evaluation_params"]``.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> real, other = adata[::2].copy(), adata[1::2].copy()
    >>> table = sdd.tl.evaluate(real, other)  # doctest: +SKIP
    >>> table.pivot(index="group", columns="metric", values="value")  # doctest: +SKIP
    """
    min_cells = check_int(min_cells, "min_cells", N_SPLITS)
    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells (at least min_cells)", min_cells)
    if classifier not in ("knn", "random_forest"):
        raise ValueError(f"classifier must be 'knn' or 'random_forest', got {classifier!r}.")
    x, y, genes = paired_matrices(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    _warn_units(real, generated, layer)
    groups: list[tuple[str, np.ndarray | None, np.ndarray | None]] = [("all", None, None)]
    if labels_key is not None:
        lab_r = _labels(real, labels_key, "real")
        lab_g = _labels(generated, labels_key, "generated")
        column = real.obs[labels_key]
        order = (
            [str(c) for c in column.cat.categories]
            if isinstance(column.dtype, pd.CategoricalDtype)
            else sorted(set(lab_r))
        )
        order += sorted(set(lab_g) - set(order))
        skipped = []
        for label in order:
            in_r, in_g = np.flatnonzero(lab_r == label), np.flatnonzero(lab_g == label)
            if min(in_r.size, in_g.size) >= min_cells:
                groups.append((label, in_r, in_g))
            elif in_r.size or in_g.size:
                skipped.append(f"{label} ({in_r.size} real / {in_g.size} generated)")
        if skipped:
            warnings.warn(
                f"Skipped labels with fewer than {min_cells} cells in either set: "
                + ", ".join(skipped),
                UserWarning,
                stacklevel=2,
            )

    rng = np.random.default_rng(random_state)
    records = []
    for name, in_r, in_g in groups:
        xg = x if in_r is None else x[in_r]
        yg = y if in_g is None else y[in_g]
        if min(xg.shape[0], yg.shape[0]) < min_cells:
            raise ValueError(
                f"evaluate needs at least min_cells={min_cells} cells in each set, got "
                f"{xg.shape[0]} real and {yg.shape[0]} generated."
            )
        values, size = _group_metrics(
            xg,
            yg,
            n_cells=n_cells,
            n_comps=n_comps,
            n_neighbors=n_neighbors,
            classifier=classifier,
            rng=rng,
            random_state=random_state,
        )
        for metric in METRICS:
            records.append(
                {
                    "group": name,
                    "metric": metric,
                    "value": float(values[metric]),
                    "n_real": int(xg.shape[0]),
                    "n_generated": int(yg.shape[0]),
                    "n_subsample": size,
                }
            )
    table = pd.DataFrame.from_records(records)
    params = {
        "n_genes": int(len(genes)),
        "n_comps": int(n_comps),
        "n_neighbors": int(n_neighbors),
        "perplexity": float(np.floor(n_neighbors / 3)),
        "classifier": classifier,
        "n_splits": N_SPLITS,
        "random_state": int(random_state),
        "min_cells": int(min_cells),
        "layer": layer or "X",
        "generated_layer": generated_layer or "X",
    }
    if n_cells is not None:
        params["n_cells"] = int(n_cells)
    if labels_key is not None:
        params["labels_key"] = labels_key
    info = generated.uns.get("sdd")
    generated.uns["sdd"] = {
        **(dict(info) if isinstance(info, Mapping) else {}),
        "evaluation": table,
        "evaluation_params": params,
    }
    return table
