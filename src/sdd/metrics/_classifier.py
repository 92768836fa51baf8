"""Real-vs-generated classifier: cross-validated ROC AUC (0.5 = indistinguishable)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..data.validate import check_int
from ._utils import points_pair

__all__ = ["classifier_auc"]


def classifier_auc(
    x: Any,
    y: Any,
    *,
    method: Literal["knn", "random_forest", "logistic"] = "knn",
    n_neighbors: int = 15,
    n_splits: int = 5,
    random_state: int | None = 0,
) -> float:
    """Cross-validated ROC AUC of a classifier that tells ``y`` (generated) from ``x`` (real).

    The points are split into ``n_splits`` stratified folds (shuffled with
    ``random_state``); for each fold a classifier trained on the others scores the
    held-out points, and the fold AUCs are averaged. 0.5 means the classifier cannot
    tell the sets apart; 1 means it always can. Values below 0.5 are possible by chance
    (and systematically when ``y`` copies points of ``x``, since a copy in the training
    folds then votes for the wrong set).

    Parameters
    ----------
    x, y
        ``(n, d)`` and ``(m, d)`` point sets, typically joint PCA coordinates
        (:func:`joint_pca`) of equal-size subsamples.
    method
        ``"knn"``: :class:`sklearn.neighbors.KNeighborsClassifier` with ``n_neighbors``
        (fast, the default); ``"random_forest"``:
        :class:`sklearn.ensemble.RandomForestClassifier` with 100 trees;
        ``"logistic"``: standardised features and
        :class:`sklearn.linear_model.LogisticRegression` (a linear boundary).
    n_neighbors
        Neighbours of the kNN classifier (lowered for tiny training folds).
    n_splits
        Cross-validation folds; each set needs at least this many points.
    random_state
        Seed of the fold shuffling and of the random forest.

    Returns
    -------
    Mean ROC AUC over folds, in [0, 1].

    Examples
    --------
    >>> import numpy as np, sdd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5))
    >>> 0.4 < sdd.metrics.classifier_auc(x, rng.normal(size=(200, 5))) < 0.6
    True
    >>> sdd.metrics.classifier_auc(x, rng.normal(size=(200, 5)) + 3) > 0.95
    True
    >>> sdd.metrics.classifier_auc(x, rng.normal(size=(200, 5)) + 3, method="logistic") > 0.95
    True
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method not in ("knn", "random_forest", "logistic"):
        raise ValueError(f"method must be 'knn', 'random_forest' or 'logistic', got {method!r}.")
    n_splits = check_int(n_splits, "n_splits", 2)
    n_neighbors = check_int(n_neighbors, "n_neighbors", 1)
    a, b = points_pair(x, y, min_points=n_splits)
    points = np.vstack([a, b])
    labels = np.repeat(np.array([0, 1]), [a.shape[0], b.shape[0]])
    folds = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=random_state)
    aucs = []
    for train, test in folds.split(points, labels):
        if method == "knn":
            clf = KNeighborsClassifier(n_neighbors=int(min(n_neighbors, train.size)))
        elif method == "logistic":
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        else:
            clf = RandomForestClassifier(n_estimators=100, random_state=random_state, n_jobs=1)
        clf.fit(points[train], labels[train])
        aucs.append(roc_auc_score(labels[test], clf.predict_proba(points[test])[:, 1]))
    return float(np.mean(aucs))
