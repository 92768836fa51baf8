"""sdd.metrics: array metrics with known answers and reference implementations."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from sdd import metrics
from sdd.metrics import _embedding
from sdd.metrics._mmd import mmd_bandwidths


def _mmd_reference(x: np.ndarray, y: np.ndarray, kernel_mul: float = 2.0, n_kernels: int = 5):
    """scDiffusion / DAN-style multi-kernel MMD with full pairwise matrices."""
    z = np.vstack([x, y])
    n = len(z)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    bandwidth = d.sum() / (n * n - n) / kernel_mul ** (n_kernels // 2)
    k = sum(np.exp(-d / (bandwidth * kernel_mul**i)) for i in range(n_kernels))
    nx = len(x)
    return k[:nx, :nx].mean() + k[nx:, nx:].mean() - 2 * k[:nx, nx:].mean()


@pytest.fixture
def counts() -> np.ndarray:
    rng = np.random.default_rng(0)
    rates = np.linspace(0.05, 3.0, 30)  # strictly increasing gene means
    return rng.poisson(rates, size=(400, 30)).astype(np.float32)


# ---------------------------------------------------------------- expression
def test_gene_means_dense_and_sparse_agree(counts):
    expected = counts.mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(metrics.gene_means(counts), expected)
    np.testing.assert_allclose(metrics.gene_means(sp.csr_matrix(counts)), expected)
    np.testing.assert_allclose(metrics.gene_means(sp.csc_matrix(counts)), expected)


def test_scc_pcc_known_answers(counts):
    half_a, half_b = counts[:200], sp.csr_matrix(counts[200:])
    assert metrics.scc(half_a, half_b) > 0.95
    assert metrics.pcc(half_a, half_b) > 0.95
    # an affine map of every value keeps the means perfectly (linearly) related
    assert metrics.pcc(counts, 2.0 * counts + 1.0) == pytest.approx(1.0)
    assert metrics.scc(counts, 2.0 * counts + 1.0) == pytest.approx(1.0)
    # reversing the gene order reverses the ranking of (nearly) distinct means
    assert metrics.scc(counts, counts[:, ::-1]) < -0.9
    # a monotone but non-linear map: ranks are kept exactly, Pearson is not 1
    means = metrics.gene_means(counts)
    assert metrics.scc(counts, np.exp(counts)) == pytest.approx(
        stats.spearmanr(means, np.exp(counts).mean(axis=0))[0]
    )
    assert metrics.pcc(counts, np.exp(counts)) < 0.99


def test_scc_constant_means_give_nan(counts):
    assert np.isnan(metrics.scc(counts, np.ones_like(counts)))


@pytest.mark.parametrize(
    ("real", "generated", "error", "match"),
    [
        (np.ones((5, 3)), np.ones((5, 4)), ValueError, "same features"),
        (np.ones(5), np.ones((5, 5)), ValueError, "2-D"),
        (np.ones((0, 3)), np.ones((5, 3)), ValueError, "empty"),
        (np.array([[1.0, np.nan]]), np.ones((1, 2)), ValueError, "NaN"),
        (np.array([["a", "b"]]), np.ones((1, 2)), TypeError, "numeric"),
        (ad.AnnData(np.ones((3, 2))), np.ones((3, 2)), TypeError, "AnnData"),
    ],
)
def test_bad_input_is_named(real, generated, error, match):
    with pytest.raises(error, match=match):
        metrics.scc(real, generated)


# ------------------------------------------------------------------ sparsity
def test_zero_fractions_count_exact_zeros(counts):
    stored_zero = sp.csr_matrix(counts)
    stored_zero.data[:10] = 0.0  # explicitly stored zeros are zeros too
    dense = stored_zero.toarray()
    assert metrics.zero_fraction(stored_zero) == pytest.approx(np.mean(dense == 0))
    np.testing.assert_allclose(metrics.cell_sparsity(stored_zero), np.mean(dense == 0, axis=1))
    np.testing.assert_allclose(metrics.gene_sparsity(stored_zero), np.mean(dense == 0, axis=0))
    np.testing.assert_allclose(metrics.cell_sparsity(dense), np.mean(dense == 0, axis=1))


def test_sparsity_metrics(counts):
    same = metrics.sparsity_metrics(counts, sp.csr_matrix(counts))
    assert same["sparsity_real"] == same["sparsity_generated"] == np.mean(counts == 0)
    assert same["sparsity_gene_corr"] == pytest.approx(1.0)
    assert same["sparsity_cell_w1"] == 0.0
    # no zeros at all: the per-cell distribution is a point mass at 0, so W1 is the mean
    dense_model = metrics.sparsity_metrics(counts, counts + 0.5)
    assert dense_model["sparsity_generated"] == 0.0
    assert np.isnan(dense_model["sparsity_gene_corr"])
    assert dense_model["sparsity_cell_w1"] == pytest.approx(np.mean(counts == 0))


# ----------------------------------------------------------------------- MMD
@pytest.mark.parametrize(("kernel_mul", "block_size"), [(2.0, 16), (2.0, 1000), (3.0, 7)])
def test_mmd_matches_full_matrix_reference(kernel_mul, block_size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 4))
    y = rng.normal(size=(50, 4)) + 0.4
    expected = _mmd_reference(x, y, kernel_mul=kernel_mul)
    got = metrics.mmd(x, y, kernel_mul=kernel_mul, block_size=block_size)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_mmd_bandwidths_closed_form():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    z = np.vstack([x, y])
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    b = d.sum() / (len(z) ** 2 - len(z))
    np.testing.assert_allclose(mmd_bandwidths(x, y), b * np.array([0.25, 0.5, 1, 2, 4]))


def test_mmd_self_zero_and_ordering():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 10))
    assert metrics.mmd(x, x) < 1e-6
    same = metrics.mmd(x, rng.normal(size=(200, 10)))
    shifted = metrics.mmd(x, rng.normal(size=(200, 10)) + 1.0)
    assert same < 0.05 < shifted
    assert metrics.mmd(x, rng.normal(size=(200, 10)) + 3.0) > shifted


def test_mmd_memory_is_blockwise():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    tracemalloc.start()
    metrics.mmd(x, y, block_size=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    full_matrix = 4000**2 * 8  # one float64 pooled kernel matrix: 128 MB
    assert peak < full_matrix / 20


def test_mmd_bad_arguments():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="dimensions"):
        metrics.mmd(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="block_size"):
        metrics.mmd(x, x, block_size=0)
    with pytest.raises(ValueError, match="kernel_mul"):
        metrics.mmd(x, x, kernel_mul=-1.0)


# ------------------------------------------------------------ PCA, LISI, AUC
def test_joint_pca_sparse_equals_dense(counts, monkeypatch):
    real, gen = counts[:150], counts[150:250]
    dense_r, dense_g = metrics.joint_pca(real, gen, n_comps=5)
    monkeypatch.setattr(_embedding, "DENSE_LIMIT", 0)  # keep sparse input sparse (ARPACK)
    sparse_r, sparse_g = metrics.joint_pca(sp.csr_matrix(real), sp.csr_matrix(gen), n_comps=5)
    assert dense_r.shape == sparse_r.shape == (150, 5) and dense_g.shape == (100, 5)
    signs = np.sign(np.sum(dense_r * sparse_r, axis=0))  # components are defined up to sign
    # float32 ARPACK vs a dense SVD: equal to ~1e-3 of the component scale (values up to ~5)
    np.testing.assert_allclose(sparse_r * signs, dense_r, atol=5e-3)
    np.testing.assert_allclose(sparse_g * signs, dense_g, atol=5e-3)
    # fewer genes than components: lowered to min(cells, genes) - 1
    assert metrics.joint_pca(real[:, :4], gen[:, :4])[0].shape == (150, 3)
    with pytest.raises(ValueError, match="n_comps"):
        metrics.joint_pca(real, gen, n_comps=0)


def test_lisi_mixed_vs_separated():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(150, 5)), rng.normal(size=(150, 5))
    mixed = metrics.lisi(x, y)
    separated = metrics.lisi(x, y + 20.0)
    assert 0.8 < mixed <= 1.0
    assert separated < 0.05
    with pytest.raises(ValueError, match="perplexity"):
        metrics.lisi(x, y, perplexity=500)
    with pytest.raises(ValueError, match="n_neighbors"):
        metrics.lisi(x, y, n_neighbors=1)


@pytest.mark.parametrize(("method", "n"), [("knn", 200), ("random_forest", 100), ("logistic", 200)])
def test_classifier_auc(method, n):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(n, 5))
    same = metrics.classifier_auc(x, rng.normal(size=(n, 5)), method=method)
    apart = metrics.classifier_auc(x, rng.normal(size=(n, 5)) + 2.0, method=method)
    assert abs(same - 0.5) < 0.1
    assert apart > 0.95


def test_classifier_auc_bad_arguments():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="method"):
        metrics.classifier_auc(x, x, method="svm")
    with pytest.raises(ValueError, match="at least 5"):
        metrics.classifier_auc(x, x[:3])
