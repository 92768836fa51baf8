"""The training label mix: how many rows carry each combination of condition codes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .counts import largest_remainder


def composition(codes: np.ndarray | None) -> dict[str, np.ndarray] | None:
    """The distinct rows of ``codes`` (``(n, keys)`` condition codes) and their counts.

    Examples
    --------
    >>> mix = composition(np.array([[1], [0], [1]]))
    >>> mix["codes"].tolist(), mix["counts"].tolist()
    ([[0], [1]], [1, 2])
    """
    if codes is None:
        return None
    unique, counts = np.unique(codes, axis=0, return_counts=True)
    return {"codes": unique.astype(np.int64), "counts": counts}


def mix_labels(
    mix: Mapping[str, np.ndarray], categories: Mapping[str, list], n: int | None = None
) -> dict[str, np.ndarray]:
    """Per-row labels in the proportions of ``mix``, grouped by label.

    As many rows as ``mix`` counts, or ``n`` rows in its proportions (largest-remainder
    rounding).

    Examples
    --------
    >>> mix = {"codes": np.array([[0], [1]]), "counts": np.array([1, 3])}
    >>> mix_labels(mix, {"cell_type": ["A", "B"]}, n=2)["cell_type"].tolist()
    ['A', 'B']
    """
    counts = mix["counts"]
    if n is not None:
        counts = largest_remainder(counts.astype(np.float64), n)
    codes = np.repeat(mix["codes"], counts, axis=0)
    return {
        key: np.asarray(cats, dtype=object)[codes[:, k]]
        for k, (key, cats) in enumerate(categories.items())
    }
