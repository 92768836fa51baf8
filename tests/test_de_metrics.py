"""Known-answer tests of the DE, zero-pattern, structure and Wasserstein metrics."""

from __future__ import annotations

import numpy as np
import pytest

import sdd

G = 200  # genes


def _groups(seed: int, fold: float = 4.0, n: int = 150):
    """log1p Poisson counts of two groups; genes 0-29 are ``fold`` times higher in group a."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(5.0, 30.0, G)
    mu_a = mu.copy()
    mu_a[:30] *= fold
    return np.log1p(rng.poisson(mu_a, (n, G))), np.log1p(rng.poisson(mu, (n, G)))


def test_planted_fold_change_is_recovered():
    a, b = _groups(0)
    lfc = sdd.metrics.log_fold_change(a, b, pseudo_count=0.0)
    assert np.abs(lfc[:30] - 2.0).max() < 0.15
    assert np.abs(lfc[30:]).max() < 0.3


def test_de_recovery_identical_shuffled_and_independent():
    a, b = _groups(0)
    same = sdd.metrics.de_recovery(a, b, a, b, k=30)
    assert all(v == pytest.approx(1.0) for v in same.values())
    a2, b2 = _groups(1)  # independent draw with the same planted genes
    fresh = sdd.metrics.de_recovery(a, b, a2, b2, k=30)
    assert fresh["LFC_pearson"] > 0.9 and fresh["top30_up_overlap"] > 0.9
    perm = np.random.default_rng(2).permutation(G)  # unrelated genes
    wrong = sdd.metrics.de_recovery(a, b, a2[:, perm], b2[:, perm], k=30)
    assert abs(wrong["LFC_pearson"]) < 0.4 and wrong["top30_up_overlap"] < 0.4


def test_de_bad_input():
    a, b = _groups(0)
    with pytest.raises(ValueError, match="k=500"):
        sdd.metrics.de_recovery(a, b, a, b, k=500)
    with pytest.raises(ValueError, match="genes"):
        sdd.metrics.de_recovery(a, b, a[:, :10], b[:, :10])
    with pytest.raises(ValueError, match="pseudo_count"):
        sdd.metrics.log_fold_change(a, b, pseudo_count=-1)


def test_zero_fraction_mae_known_values():
    a, _ = _groups(0)
    a[:, :50] = 0
    assert sdd.metrics.zero_fraction_mae(a, a) == 0.0
    b = a.copy()
    b[:75, 50] = 0  # one gene loses half of its non-zeros: 50 pp on 1 of 200 genes
    assert sdd.metrics.zero_fraction_mae(a, b) == pytest.approx(50.0 / G, abs=1.0)
    with pytest.raises(ValueError, match="features"):
        sdd.metrics.zero_fraction_mae(a, b[:, :10])


def test_gene_corr_and_mean_var():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 60))
    x = rng.normal(size=(400, 5)) @ w + 0.3 * rng.normal(size=(400, 60))
    y = rng.normal(size=(400, 5)) @ w + 0.3 * rng.normal(size=(400, 60))
    assert sdd.metrics.gene_corr_similarity(x, x) == pytest.approx(1.0)
    assert sdd.metrics.gene_corr_similarity(x, y) > 0.9
    indep = rng.permutation(y.ravel()).reshape(y.shape)  # no gene-gene structure left
    assert abs(sdd.metrics.gene_corr_similarity(x, indep)) < 0.2
    mv = sdd.metrics.mean_var_similarity(x, y)
    assert mv["log_var_corr"] > 0.9 and mv["log_var_mae"] < 0.1
    assert sdd.metrics.mean_var_similarity(x, 3 * x)["log_var_mae"] == pytest.approx(
        np.log10(9), rel=1e-3
    )
    with pytest.raises(ValueError, match="n_top_genes"):
        sdd.metrics.gene_corr_similarity(x, y, n_top_genes=1)


def test_wasserstein_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    assert sdd.metrics.wasserstein(x, x) == 0.0
    assert sdd.metrics.wasserstein(x, x + [0, 0, 2.0], p=1) == pytest.approx(2.0)
    near = sdd.metrics.wasserstein(x, rng.normal(size=(300, 3)))
    far = sdd.metrics.wasserstein(x, rng.normal(size=(300, 3)) + 2.0)
    assert near < 0.6 < 3.0 < far
    with pytest.raises(ValueError, match="p must be"):
        sdd.metrics.wasserstein(x, x, p=3)


def test_group_distances():
    a, b = _groups(0, n=60)
    x = np.vstack([a, b])
    labels = np.repeat(["a", "b"], 60)
    same = sdd.metrics.group_distances(x, x, labels, labels, n_comps=10)
    assert same["group"].tolist() == ["a", "b"]
    assert (same[["W1", "W2", "zero_fraction_mae"]].to_numpy() < 1e-9).all()
    swapped = sdd.metrics.group_distances(x, x, labels, labels[::-1], n_comps=10)
    assert (swapped["W2"] > 1.0).all()
    with pytest.raises(ValueError, match="one entry per cell"):
        sdd.metrics.group_distances(x, x, labels[:5], labels, n_comps=10)
