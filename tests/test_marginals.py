"""Per-gene quantiles of non-zero values and the quantile map (``sdd.data.marginals``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sdd.data.marginals import column_blocks, interp_rows, map_quantiles, nonzero_quantiles


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_nonzero_quantiles_ignore_zeros_and_flag_sparse_columns(kind: str) -> None:
    X = np.zeros((300, 3))
    X[::3, 0] = np.arange(1, 101)  # 100 non-zeros: 1..100
    X[:5, 1] = 1.0  # too few non-zeros
    X[:, 2] = 2.0
    matrix = sp.csr_matrix(X) if kind == "csr" else X
    q = nonzero_quantiles(matrix, 5, chunk_rows=7)
    np.testing.assert_allclose(q[0], [1, 25.75, 50.5, 75.25, 100])
    assert np.isnan(q[1]).all()
    np.testing.assert_allclose(q[2], 2.0)


def test_nonzero_quantiles_subsample_rows_reproducibly() -> None:
    X = np.random.default_rng(0).exponential(size=(500, 2)) + 0.1
    a = nonzero_quantiles(X, 11, max_rows=100, random_state=3)
    b = nonzero_quantiles(X, 11, max_rows=100, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, nonzero_quantiles(X, 11))  # a subset, not every row


def test_column_blocks_cover_every_column_within_the_limit() -> None:
    counts = np.random.default_rng(0).integers(0, 50, size=200)
    counts[17] = 500  # above the limit: a block of its own
    blocks = column_blocks(counts, 120)
    assert blocks[0][0] == 0 and blocks[-1][1] == 200
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    assert (17, 18) in blocks
    assert all(counts[lo:hi].sum() <= 120 for lo, hi in blocks if hi - lo > 1)


def test_nonzero_quantiles_in_column_blocks_equal_one_pass() -> None:
    """A tiny value budget (many blocks, many row chunks) gives the same quantiles."""
    X = sp.random(300, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    whole = nonzero_quantiles(X, 11, max_rows=250)
    blocked = nonzero_quantiles(X, 11, max_rows=250, max_values=50, chunk_rows=7)
    np.testing.assert_array_equal(whole, blocked)
    assert np.isfinite(whole).all()


def test_nonzero_quantiles_of_a_subset_of_rows() -> None:
    X = np.zeros((30, 1))
    X[:, 0] = np.arange(30)
    q = nonzero_quantiles(X, 3, rows=np.arange(30) >= 20)
    assert q[0].tolist() == [20.0, 24.5, 29.0]
    with pytest.raises(ValueError, match="rows has shape"):
        nonzero_quantiles(X, 3, rows=np.ones(5, dtype=bool))


def test_interp_rows_equals_numpy_interp_row_by_row() -> None:
    """Ties in the quantiles (count data), values below, at and above the ends."""
    rng = np.random.default_rng(2)
    xp = np.sort(np.round(rng.gamma(2.0, 1.0, size=(40, 11)), 1), axis=1)  # many ties
    fp = np.sort(rng.normal(size=(40, 11)), axis=1)
    row = rng.integers(0, 40, size=5000)
    x = np.concatenate([rng.uniform(-1, 12, 4000), xp[row[4000:], rng.integers(0, 11, 1000)]])
    want = np.array([np.interp(v, xp[r], fp[r]) for v, r in zip(x, row, strict=True)])
    np.testing.assert_allclose(interp_rows(x, row, xp, fp), want, rtol=1e-9, atol=1e-12)


def test_map_quantiles_carries_one_distribution_onto_another() -> None:
    rng = np.random.default_rng(1)
    source_values = rng.uniform(0.1, 1.0, 4000)
    values = np.where(rng.random((4000, 1)) < 0.5, source_values[:, None], 0.0)
    target_values = rng.lognormal(1.0, 0.5, 4000)[:, None]
    source = nonzero_quantiles(values, 201)
    target = nonzero_quantiles(target_values, 201)
    mapped = map_quantiles(values, source, target)
    assert ((mapped != 0) == (values != 0)).all()  # zeros stay zeros, nothing new is zero
    on = values[:, 0] != 0
    assert np.all(np.diff(mapped[on, 0][np.argsort(values[on, 0])]) >= 0)  # order kept
    np.testing.assert_allclose(
        np.quantile(mapped[on, 0], [0.1, 0.5, 0.9]),
        np.quantile(target_values, [0.1, 0.5, 0.9]),
        rtol=0.05,
    )


def test_map_quantiles_leaves_columns_without_quantiles() -> None:
    values = np.array([[0.0, 0.5], [0.3, 0.0]])
    source = np.array([[np.nan, np.nan], [0.0, 1.0]])
    target = np.array([[1.0, 2.0], [2.0, 4.0]])
    mapped = map_quantiles(values, source, target)
    np.testing.assert_allclose(mapped, [[0.0, 3.0], [0.3, 0.0]])
    halfway = map_quantiles(values, source, target, weight=0.5)
    np.testing.assert_allclose(halfway, [[0.0, 1.75], [0.3, 0.0]])
