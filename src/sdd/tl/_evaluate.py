"""``sdd.tl.evaluate``: fidelity metrics of generated cells against real cells, as a table."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._execution import moved_keywords, option_dict
from ..data.validate import check_int, get_matrix

__all__ = ["evaluate"]

BEST = {
    "SCC": "1", "PCC": "1", "MMD": "0", "LISI": "1", "AUC": "0.5",
    "AUC_rf": "0.5", "AUC_logistic": "0.5",
    "sparsity_real": "-", "sparsity_generated": "= real",
    "sparsity_gene_corr": "1", "sparsity_cell_w1": "0", "zero_fraction_mae": "0",
    "gene_corr": "1", "log_var_corr": "1", "log_var_mae": "0",
    "detected_w1": "0", "detected_ks": "0", "total_w1": "0", "total_ks": "0",
    "below_real_p1": "0.01", "AUC_rf_qc": "0.5",
    "MMD_shared_pca": "0", "W1": "0", "W2": "0",
}  # fmt: skip
"""The best value of each metric (column ``best`` of :func:`evaluate`'s table)."""

METRICS = (
    "SCC", "PCC", "MMD", "LISI", "AUC", "AUC_rf", "AUC_logistic",
    "sparsity_real", "sparsity_generated", "sparsity_gene_corr", "sparsity_cell_w1",
    "zero_fraction_mae", "gene_corr", "log_var_corr", "log_var_mae",
    "detected_w1", "detected_ks", "total_w1", "total_ks", "below_real_p1", "AUC_rf_qc",
)  # fmt: skip
"""Metric names of :func:`evaluate`'s group ``"all"``, in order."""

LABEL_METRICS = (
    "SCC", "PCC", "MMD", "LISI", "AUC", "sparsity_real", "sparsity_generated",
    "sparsity_gene_corr", "sparsity_cell_w1", "detected_w1",
    "MMD_shared_pca", "W1", "W2", "zero_fraction_mae",
)  # fmt: skip
"""Metrics of each label's rows (``LISI`` is then iLISI within the cell type)."""

N_SPLITS = 5  # cross-validation folds of the classifier AUC
CLASSIFIERS = ("knn", "random_forest", "logistic")
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
        hint = (
            "; generate labelled cells with model.generate(labels='training') (the default "
            "for a conditional model)"
            if name == "generated"
            else ""
        )
        raise ValueError(
            f"labels_key {key!r} not found in {name}.obs (columns: "
            f"{list(adata.obs.columns)}){hint}."
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
    whole: bool,
) -> tuple[dict[str, float], int]:
    """Metrics of ``y`` against ``x``: those of a label group, and with ``whole`` (group
    ``"all"``) also the forest and logistic AUCs, per-gene structure and per-cell QC."""
    from .. import metrics  # scipy.stats / scikit-learn load on first use, not on `import sdd`

    values = {"SCC": metrics.scc(x, y), "PCC": metrics.pcc(x, y)}
    size = int(min(x.shape[0], y.shape[0], n_cells or np.inf))
    xs, ys = _rows(x, size, rng), _rows(y, size, rng)
    pcs = metrics.joint_pca(xs, ys, n_comps=n_comps, random_state=random_state)
    values["MMD"] = metrics.mmd(*pcs)
    values["LISI"] = metrics.lisi(*pcs, n_neighbors=n_neighbors)
    auc = {"n_splits": N_SPLITS, "random_state": random_state}
    values["AUC"] = metrics.classifier_auc(*pcs, method=classifier, **auc)
    values.update(metrics.sparsity_metrics(x, y))
    cells = metrics.cell_metrics(x, y, random_state=random_state)
    values["detected_w1"] = cells["detected_w1"]
    if whole:
        values["AUC_rf"] = metrics.classifier_auc(*pcs, method="random_forest", **auc)
        values["AUC_logistic"] = metrics.classifier_auc(*pcs, method="logistic", **auc)
        values["zero_fraction_mae"] = metrics.zero_fraction_mae(x, y)
        values["gene_corr"] = metrics.gene_corr_similarity(x, y)
        values.update(metrics.mean_var_similarity(x, y))
        values.update(cells)
    return values, size


def _score(
    x: Any,
    labels_x: np.ndarray | None,
    y: Any,
    labels_y: np.ndarray | None,
    groups: list[str],
    *,
    min_cells: int,
    random_state: int,
    **kw: Any,
) -> dict[tuple[str, str], dict[str, float]]:
    """Every metric of ``y`` against the reference ``x``, by (group, metric): the one
    routine behind both columns of :func:`evaluate` (``floor`` is ``x``'s other half)."""
    from .. import metrics

    out: dict[tuple[str, str], dict[str, float]] = {}
    rng = np.random.default_rng(random_state)

    def add(group: str, values: dict, names: tuple, n_x: int, n_y: int, size: int) -> None:
        for metric in names:
            if metric in values:
                out[(group, metric)] = {
                    "value": float(values[metric]), "n_real": int(n_x),
                    "n_generated": int(n_y), "n_subsample": int(size),
                }  # fmt: skip

    values, size = _group_metrics(x, y, rng=rng, random_state=random_state, whole=True, **kw)
    add("all", values, METRICS, x.shape[0], y.shape[0], size)
    if labels_x is None or labels_y is None:
        return out
    distances = metrics.group_distances(
        x, y, labels_x, labels_y, n_comps=kw["n_comps"], min_cells=min_cells,
        random_state=random_state,
    ).set_index("group")  # fmt: skip
    for label in groups:
        in_x, in_y = np.flatnonzero(labels_x == label), np.flatnonzero(labels_y == label)
        if min(in_x.size, in_y.size) < min_cells:
            continue
        values, size = _group_metrics(
            x[in_x], y[in_y], rng=rng, random_state=random_state, whole=False, **kw
        )
        if label in distances.index:
            row = distances.loc[label]
            values.update(
                MMD_shared_pca=row["MMD"], W1=row["W1"], W2=row["W2"],
                zero_fraction_mae=row["zero_fraction_mae"],
            )  # fmt: skip
        add(label, values, LABEL_METRICS, in_x.size, in_y.size, size)
    return out


def _label_groups(
    lab_r: np.ndarray, lab_g: np.ndarray, column: pd.Series, min_cells: int
) -> list[str]:
    """Labels with at least ``min_cells`` cells in both sets, in ``real``'s category order;
    warns about the others."""
    order = (
        [str(c) for c in column.cat.categories]
        if isinstance(column.dtype, pd.CategoricalDtype)
        else sorted(set(lab_r))
    )
    order += sorted(set(lab_g) - set(order))
    kept, skipped = [], []
    for label in order:
        n_r, n_g = int((lab_r == label).sum()), int((lab_g == label).sum())
        if min(n_r, n_g) >= min_cells:
            kept.append(label)
        elif n_r or n_g:
            skipped.append(f"{label} ({n_r} real / {n_g} generated)")
    if skipped:
        warnings.warn(
            f"Skipped labels with fewer than {min_cells} cells in either set: "
            + ", ".join(skipped),
            UserWarning,
            stacklevel=3,
        )
    return kept


METRIC_DEFAULTS = {
    "n_comps": 50, "n_neighbors": N_NEIGHBORS, "classifier": "knn", "min_cells": 20, "de_k": 50,
}  # fmt: skip


@moved_keywords("metric_kwargs", frozenset(METRIC_DEFAULTS))
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
    floor: bool = False,
    condition_key: str | None = None,
    de_groups: tuple[str, str] | None = None,
    metric_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Judge generated cells against real cells with the metrics of the SDD paper and scDiffusion.

    For all cells together (group ``"all"``) and, with ``labels_key``, for each label
    found in both sets. Column ``best`` says which value is best for each metric.

    Genes:

    - ``SCC`` / ``PCC``: Spearman / Pearson correlation of per-gene mean expression
      (:func:`sdd.metrics.scc`, :func:`sdd.metrics.pcc`); 1 is best;
    - ``sparsity_real`` / ``sparsity_generated``: fraction of exact zeros;
      ``sparsity_gene_corr``: correlation of per-gene zero fractions;
      ``zero_fraction_mae``: their mean absolute difference in percentage points;
    - ``gene_corr``, ``log_var_corr``, ``log_var_mae``: gene-gene correlation structure
      and mean-variance relation (:func:`sdd.metrics.gene_corr_similarity`,
      :func:`sdd.metrics.mean_var_similarity`).

    Cells (:func:`sdd.metrics.cell_metrics`):

    - ``detected_w1`` / ``detected_ks`` and ``total_w1`` / ``total_ks``: Wasserstein and
      Kolmogorov-Smirnov distances of the detected-genes and total-expression
      distributions per cell; ``sparsity_cell_w1``: of the per-cell zero fractions;
      0 is best;
    - ``below_real_p1``: fraction of generated cells with fewer detected genes than
      the real cells' 1st percentile (about 0.01 for real cells);
    - ``AUC_rf_qc``: random-forest AUC, real vs generated, on the three per-cell QC
      numbers (detected genes, sum, maximum); 0.5 is best.

    Structure, on a joint PCA of ``n_comps`` components fitted on equal-size random
    subsamples (``min(n_real, n_generated, n_cells)`` cells of each):

    - ``MMD``: multi-kernel MMD² (:func:`sdd.metrics.mmd`); 0 is best;
    - ``LISI``: scaled iLISI of the real/generated label on a kNN graph
      (:func:`sdd.metrics.lisi`); 0 = separated, ~0.9 for two samples of the same data,
      1 at most. In a label's rows it is the mixing within that cell type;
    - ``AUC`` (the ``classifier``'s), ``AUC_rf`` (random forest), ``AUC_logistic``:
      5-fold cross-validated ROC AUC of a real-vs-generated classifier
      (:func:`sdd.metrics.classifier_auc`); 0.5 = indistinguishable.

    Small groups are noisy: the biased MMD² grows like 1/cells even for identical
    distributions, and the cross-validated AUC of two samples of one distribution drifts
    below 0.5 with few cells (0.35-0.47 with 30-60 cells per set): read them beside
    their floor.

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
    floor
        Report each metric next to its real-vs-real floor: ``real`` is split into two
        random halves A and B (stratified by ``labels_key`` when given); the same
        routine scores ``generated`` (subsampled to A's size, per label when possible)
        and half A, each against half B. ``condition_key`` or ``de_groups`` imply it.
    condition_key
        Column of both ``obs`` with exactly two values (or pass ``de_groups``): adds DE
        recovery rows between its two groups.
    de_groups
        ``(a, b)``: the two groups of ``condition_key`` (or, without it, of
        ``labels_key``) compared by DE recovery.
    metric_kwargs
        Settings of the metrics, each with its default:

        - ``n_comps``: joint PCA components (50 as in the papers);
        - ``n_neighbors``: neighbours for LISI (90 as in scib; perplexity is a third);
        - ``classifier``: ``"knn"`` (15 neighbours, the default), ``"random_forest"``
          (100 trees) or ``"logistic"`` (logistic regression) for the ``AUC`` column;
        - ``min_cells``: fewest cells of each set a group needs (20; at least 5, the
          classifier's folds);
        - ``de_k``: top DE genes compared (50; :func:`sdd.metrics.de_recovery`).

    Returns
    -------
    Tidy :class:`pandas.DataFrame` with columns ``group`` (``"all"``, a label, or
    ``"a vs b"`` for DE recovery: ``LFC_pearson``, ``LFC_spearman``, ``top{k}_overlap``,
    ``top{k}_up_overlap``, :func:`sdd.metrics.de_recovery`), ``metric``, ``value``,
    ``floor`` (with ``floor=True``), ``n_real``, ``n_generated``, ``n_subsample`` and
    ``best``; the settings in ``table.attrs["params"]``. Neither input is changed.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> real, other = adata[::2].copy(), adata[1::2].copy()
    >>> table = sdd.tl.evaluate(real, other)  # doctest: +SKIP
    >>> table.pivot(index="group", columns="metric", values="value")  # doctest: +SKIP
    """
    settings = option_dict(metric_kwargs, METRIC_DEFAULTS, "metric_kwargs")
    n_comps, n_neighbors = settings["n_comps"], settings["n_neighbors"]
    classifier, min_cells, de_k = settings["classifier"], settings["min_cells"], settings["de_k"]
    min_cells = check_int(min_cells, "min_cells", N_SPLITS)
    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells (at least min_cells)", min_cells)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
    random_state = check_int(random_state, "random_state", 0)
    x, y, genes = paired_matrices(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    _warn_units(real, generated, layer)
    de = condition_key is not None or de_groups is not None
    pair = _de_pair(real, generated, condition_key, labels_key, de_groups) if de else None
    floor = floor or de
    lab_r = _labels(real, labels_key, "real") if labels_key else None
    lab_g = _labels(generated, labels_key, "generated") if labels_key else None
    groups = [] if lab_r is None else _label_groups(lab_r, lab_g, real.obs[labels_key], min_cells)
    rng = np.random.default_rng(random_state)
    rows_r, rows_a, rows_g = np.arange(x.shape[0]), None, np.arange(y.shape[0])
    if floor:  # reference: half B of the real cells; floor: half A; generated: A's size
        rows_a, rows_r = _halves(x.shape[0], lab_r, rng)
        if min(rows_a.size, rows_r.size) < min_cells:
            raise ValueError(f"floor=True needs {2 * min_cells} real cells, got {x.shape[0]}.")
        rows_g = _matched(
            None if lab_r is None else lab_r[rows_a], lab_g, rows_a.size, y.shape[0], rng
        )
        if rows_g.size < min_cells:
            rows_g = _subsample(y.shape[0], rows_a.size, rng)
    elif min(x.shape[0], y.shape[0]) < min_cells:
        raise ValueError(
            f"evaluate needs at least min_cells={min_cells} cells in each set, got "
            f"{x.shape[0]} real and {y.shape[0]} generated."
        )
    kw = dict(
        n_cells=n_cells, n_comps=n_comps, n_neighbors=n_neighbors, classifier=classifier,
        min_cells=min_cells, random_state=random_state,
    )  # fmt: skip

    def labels(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
        return None if values is None else values[rows]

    reference = (x[rows_r], labels(lab_r, rows_r))
    columns = {"value": _score(*reference, y[rows_g], labels(lab_g, rows_g), groups, **kw)}
    if floor:
        columns["floor"] = _score(*reference, x[rows_a], labels(lab_r, rows_a), groups, **kw)
    records = []
    for (group, metric), entry in columns["value"].items():
        record = {"group": group, "metric": metric, "value": entry["value"]}
        if floor:
            record["floor"] = columns["floor"].get((group, metric), {}).get("value", np.nan)
        record.update({k: entry[k] for k in ("n_real", "n_generated", "n_subsample")})
        record["best"] = BEST[metric]
        records.append(record)
    if pair is not None:
        records += _de_rows(x, y, pair, rows_r, rows_a, rows_g, de_k)
    table = pd.DataFrame.from_records(records)
    table.attrs["params"] = {
        "n_genes": int(len(genes)), "n_comps": int(n_comps), "n_neighbors": int(n_neighbors),
        "perplexity": float(np.floor(n_neighbors / 3)), "classifier": classifier,
        "n_splits": N_SPLITS, "random_state": int(random_state), "min_cells": int(min_cells),
        "floor": bool(floor), "layer": layer or "X", "generated_layer": generated_layer or "X",
        **({} if n_cells is None else {"n_cells": int(n_cells)}),
        **({} if labels_key is None else {"labels_key": labels_key}),
        **({} if condition_key is None else {"condition_key": condition_key}),
    }  # fmt: skip
    return table


def _halves(n: int, labels: np.ndarray | None, rng: np.random.Generator):
    """Two disjoint index sets of ``n`` rows, half each (per label when given)."""
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == u) for u in np.unique(labels)]
    )
    a, b = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        a.append(idx[: idx.size // 2])
        b.append(idx[idx.size // 2 :])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def _matched(
    labels_ref: np.ndarray | None,
    labels_g: np.ndarray | None,
    size: int,
    n_g: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rows of the generated set matching the label counts of the reference (if possible)."""
    if labels_ref is None or labels_g is None:
        return _subsample(n_g, size, rng)
    keep = []
    for u, count in zip(*np.unique(labels_ref, return_counts=True), strict=True):
        idx = np.flatnonzero(labels_g == u)
        keep.append(rng.permutation(idx)[:count])
    return np.sort(np.concatenate(keep))


def _de_pair(adata_r, adata_g, condition_key, labels_key, de_groups):
    key = condition_key or labels_key
    if key is None:
        raise ValueError("de_groups needs condition_key or labels_key.")
    lab_r, lab_g = _labels(adata_r, key, "real"), _labels(adata_g, key, "generated")
    if de_groups is None:
        values = sorted(set(lab_r))
        if len(values) != 2:
            raise ValueError(
                f"condition_key {key!r} has {len(values)} values ({values[:5]}); pass "
                "de_groups=(a, b) to choose two."
            )
        de_groups = (values[0], values[1])
    a, b = (str(g) for g in de_groups)
    for g in (a, b):
        if g not in set(lab_r) or g not in set(lab_g):
            raise ValueError(
                f"de_groups value {g!r} is missing from real or generated .obs[{key!r}]."
            )
    return key, a, b, lab_r, lab_g


def _de_rows(x, y, pair, rows_b, rows_a, rows_g, k: int) -> list[dict]:
    """DE recovery between the two groups of ``pair``: generated and half A each against
    half B (:func:`sdd.metrics.de_recovery`)."""
    from .. import metrics

    _, a, b, cr, cg = pair
    cb, ca, cgs = cr[rows_b], cr[rows_a], cg[rows_g]
    if min((cb == a).sum(), (cb == b).sum(), (cgs == a).sum(), (cgs == b).sum()) < 2:
        raise ValueError(f"DE needs at least 2 cells of {a!r} and {b!r} in each half.")
    xb, xa, ys = x[rows_b], x[rows_a], y[rows_g]
    gen = metrics.de_recovery(xb[cb == a], xb[cb == b], ys[cgs == a], ys[cgs == b], k=k)
    flo = metrics.de_recovery(xb[cb == a], xb[cb == b], xa[ca == a], xa[ca == b], k=k)
    return [
        {
            "group": f"{a} vs {b}",
            "metric": metric,
            "value": float(gen[metric]),
            "floor": float(flo[metric]),
            "n_real": int(rows_b.size),
            "n_generated": int(ys.shape[0]),
            "n_subsample": int(ys.shape[0]),
            "best": "floor",
        }  # fmt: skip
        for metric in gen
    ]
