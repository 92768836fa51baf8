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

FLOOR_METRICS = (
    "AUC_rf",
    "AUC_logistic",
    "zero_fraction_mae",
    "gene_corr",
    "log_var_corr",
    "log_var_mae",
)
"""Metrics added to group ``"all"`` with ``floor=True``."""

GROUP_METRICS = ("MMD_shared_pca", "W1", "W2", "zero_fraction_mae")
"""Per-label metrics (one PCA shared by all labels) added with ``floor=True``."""

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
    classifier: Literal["knn", "random_forest", "logistic"] = "knn",
    min_cells: int = 20,
    floor: bool = False,
    condition_key: str | None = None,
    de_groups: tuple[str, str] | None = None,
    de_k: int = 50,
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
        ``"knn"`` (15 neighbours), ``"random_forest"`` (100 trees) or ``"logistic"``
        (logistic regression) for the AUC.
    min_cells
        Fewest cells of each set a group needs (at least 5, the classifier's folds).
    floor
        Report each metric next to its real-vs-real floor (see below). Default ``False``
        keeps the table above unchanged; ``condition_key`` or ``de_groups`` imply it.
    condition_key
        Column of both ``obs`` with exactly two values (or pass ``de_groups``): adds DE
        recovery rows between its two groups.
    de_groups
        ``(a, b)``: the two groups of ``condition_key`` (or, without it, of
        ``labels_key``) compared by DE recovery.
    de_k
        Top DE genes compared (:func:`sdd.metrics.de_recovery`).

    Returns
    -------
    Tidy :class:`pandas.DataFrame` with columns ``group`` (``"all"`` or a label),
    ``metric``, ``value``, ``n_real``, ``n_generated`` (cells of the group) and
    ``n_subsample`` (cells of each set used for MMD, LISI and AUC). It is also stored in
    ``generated.uns["sdd"]["evaluation"]``, with the settings in
    ``generated.uns["sdd"]["evaluation_params"]``.

    With ``floor=True`` ``real`` is split into two random halves A and B (stratified by
    ``labels_key`` when given) and every metric is computed twice against the same half B:
    column ``value`` for ``generated`` (subsampled to the size of A, stratified by label
    when possible, so both comparisons have the same sample sizes) and column ``floor`` for
    half A, the best score a generator can expect on this data. Rows are added: in group
    ``"all"`` ``AUC_rf`` (random-forest AUC), ``AUC_logistic`` (logistic regression), ``zero_fraction_mae`` (pp),
    ``gene_corr`` (:func:`sdd.metrics.gene_corr_similarity`), ``log_var_corr`` /
    ``log_var_mae`` (:func:`sdd.metrics.mean_var_similarity`); per label
    ``MMD_shared_pca``, ``W1``, ``W2`` (exact, assignment-based) and ``zero_fraction_mae``
    (:func:`sdd.metrics.group_distances`); and for the DE pair, group ``"a vs b"``:
    ``LFC_pearson``, ``LFC_spearman``, ``top{k}_overlap``, ``top{k}_up_overlap``
    (:func:`sdd.metrics.de_recovery`; assumes log1p-normalised data).

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> real, other = adata[::2].copy(), adata[1::2].copy()
    >>> table = sdd.tl.evaluate(real, other)  # doctest: +SKIP
    >>> table.pivot(index="group", columns="metric", values="value")  # doctest: +SKIP
    """
    if floor or condition_key is not None or de_groups is not None:
        return _evaluate_floor(
            real,
            generated,
            labels_key=labels_key,
            condition_key=condition_key,
            de_groups=de_groups,
            de_k=de_k,
            layer=layer,
            generated_layer=generated_layer,
            n_cells=n_cells,
            random_state=random_state,
            align_genes=align_genes,
            n_comps=n_comps,
            n_neighbors=n_neighbors,
            classifier=classifier,
            min_cells=min_cells,
        )
    min_cells = check_int(min_cells, "min_cells", N_SPLITS)
    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells (at least min_cells)", min_cells)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
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


def _extra(x: Any, y: Any, pcs: tuple[np.ndarray, np.ndarray], random_state: int) -> dict:
    from .. import metrics

    mv = metrics.mean_var_similarity(x, y)
    return {
        "AUC_rf": metrics.classifier_auc(
            *pcs, method="random_forest", n_splits=N_SPLITS, random_state=random_state
        ),
        "AUC_logistic": metrics.classifier_auc(
            *pcs, method="logistic", n_splits=N_SPLITS, random_state=random_state
        ),
        "zero_fraction_mae": metrics.zero_fraction_mae(x, y),
        "gene_corr": metrics.gene_corr_similarity(x, y),
        **mv,
    }


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


def _evaluate_floor(
    real,
    generated,
    *,
    labels_key,
    condition_key,
    de_groups,
    de_k,
    layer,
    generated_layer,
    n_cells,
    random_state,
    align_genes,
    n_comps,
    n_neighbors,
    classifier,
    min_cells,
) -> pd.DataFrame:
    from .. import metrics

    min_cells = check_int(min_cells, "min_cells", N_SPLITS)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
    x, y, genes = paired_matrices(
        real, generated, layer=layer, generated_layer=generated_layer, align_genes=align_genes
    )
    _warn_units(real, generated, layer)
    rng = np.random.default_rng(random_state)
    lab_r = _labels(real, labels_key, "real") if labels_key else None
    lab_g = _labels(generated, labels_key, "generated") if labels_key else None
    ia, ib = _halves(x.shape[0], lab_r, rng)
    if min(ia.size, ib.size) < min_cells:
        raise ValueError(f"floor=True needs {2 * min_cells} real cells, got {x.shape[0]}.")
    ig = _matched(None if lab_r is None else lab_r[ia], lab_g, ia.size, y.shape[0], rng)
    if ig.size < min_cells:
        ig = _subsample(y.shape[0], ia.size, rng)
    xa, xb, ys = x[ia], x[ib], y[ig]
    records = []

    def add(group, metric, value, floor_value, n_real, n_gen, n_sub):
        records.append(
            {
                "group": group,
                "metric": metric,
                "value": float(value),
                "floor": float(floor_value),
                "n_real": int(n_real),
                "n_generated": int(n_gen),
                "n_subsample": int(n_sub),
            }
        )

    kw = dict(
        n_cells=n_cells,
        n_comps=n_comps,
        n_neighbors=n_neighbors,
        classifier=classifier,
        random_state=random_state,
    )
    gen_v, size = _group_metrics(xb, ys, rng=np.random.default_rng(random_state), **kw)
    flo_v, _ = _group_metrics(xb, xa, rng=np.random.default_rng(random_state), **kw)
    pcs_g = metrics.joint_pca(
        _rows(xb, size, np.random.default_rng(random_state)),
        _rows(ys, size, np.random.default_rng(random_state + 1)),
        n_comps=n_comps,
        random_state=random_state,
    )
    pcs_f = metrics.joint_pca(
        _rows(xb, size, np.random.default_rng(random_state)),
        _rows(xa, size, np.random.default_rng(random_state + 1)),
        n_comps=n_comps,
        random_state=random_state,
    )
    gen_v.update(_extra(xb, ys, pcs_g, random_state))
    flo_v.update(_extra(xb, xa, pcs_f, random_state))
    for metric in METRICS + FLOOR_METRICS:
        add("all", metric, gen_v[metric], flo_v[metric], ib.size, ys.shape[0], size)
    if labels_key is not None:
        lg = lab_g[ig]
        kw2 = dict(n_comps=n_comps, min_cells=min_cells, random_state=random_state)
        tg = metrics.group_distances(xb, ys, lab_r[ib], lg, **kw2).set_index("group")
        tf = metrics.group_distances(xb, xa, lab_r[ib], lab_r[ia], **kw2).set_index("group")
        for label in tg.index.intersection(tf.index):
            for metric, column in zip(
                GROUP_METRICS, ("MMD", "W1", "W2", "zero_fraction_mae"), strict=True
            ):
                add(
                    label,
                    metric,
                    tg.loc[label, column],
                    tf.loc[label, column],
                    tg.loc[label, "n_real"],
                    tg.loc[label, "n_generated"],
                    min(tg.loc[label, "n_real"], tg.loc[label, "n_generated"]),
                )
    if condition_key is not None or de_groups is not None:
        key, a, b, cr, cg = _de_pair(real, generated, condition_key, labels_key, de_groups)
        cb, ca, cgs = cr[ib], cr[ia], cg[ig]
        if min((cb == a).sum(), (cb == b).sum(), (cgs == a).sum(), (cgs == b).sum()) < 2:
            raise ValueError(f"DE needs at least 2 cells of {a!r} and {b!r} in each half.")
        gen_de = metrics.de_recovery(xb[cb == a], xb[cb == b], ys[cgs == a], ys[cgs == b], k=de_k)
        flo_de = metrics.de_recovery(xb[cb == a], xb[cb == b], xa[ca == a], xa[ca == b], k=de_k)
        for metric in gen_de:
            add(
                f"{a} vs {b}",
                metric,
                gen_de[metric],
                flo_de[metric],
                ib.size,
                ys.shape[0],
                ys.shape[0],
            )
    table = pd.DataFrame.from_records(records)
    params = {
        "n_genes": int(len(genes)),
        "n_comps": int(n_comps),
        "floor": True,
        "n_neighbors": int(n_neighbors),
        "classifier": classifier,
        "random_state": int(random_state),
        "min_cells": int(min_cells),
        "layer": layer or "X",
        "generated_layer": generated_layer or "X",
    }
    for name, value in (("labels_key", labels_key), ("condition_key", condition_key)):
        if value is not None:
            params[name] = value
    info = generated.uns.get("sdd")
    generated.uns["sdd"] = {
        **(dict(info) if isinstance(info, Mapping) else {}),
        "evaluation": table,
        "evaluation_params": params,
    }
    return table
