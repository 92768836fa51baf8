"""sdd.pl scRNA plots: return Axes, draw what they claim, save PNGs without a display."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

import sdd  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def halves() -> tuple[ad.AnnData, ad.AnnData]:
    adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    return adata[::2].copy(), adata[1::2].copy()


def _save(ax: Axes, path) -> None:
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_gene_means(halves, tmp_path):
    real, other = halves
    ax = sdd.pl.gene_means(real, other, title="halves")
    assert isinstance(ax, Axes)
    points = ax.collections[0].get_offsets()
    assert points.shape == (real.n_vars, 2)
    np.testing.assert_allclose(points[:, 0], sdd.metrics.gene_means(real.X))
    assert f"SCC = {sdd.metrics.scc(real.X, other.X):.3f}" in ax.get_title()
    _save(ax, tmp_path / "gene_means.png")
    # genes are matched by name, so a reversed gene order draws the same points
    again = sdd.pl.gene_means(real, other[:, ::-1].copy(), log=True)
    np.testing.assert_allclose(again.collections[0].get_offsets(), points)


def test_sparsity_overlays_sets(halves, tmp_path):
    real, other = halves
    _, ax = plt.subplots()
    dense_model = other.copy()
    dense_model.X = dense_model.X.toarray() + 0.1  # no zeros at all
    out = sdd.pl.sparsity(real, {"half": other, "dense model": dense_model}, ax=ax, bins=20)
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("real (") and labels[2] == "dense model (0.0% zeros)"
    zero_pct = 100 * sdd.metrics.zero_fraction(real.X)
    assert f"{zero_pct:.1f}% zeros" in labels[0]
    _save(ax, tmp_path / "sparsity.png")
    with pytest.raises(ValueError, match="empty mapping"):
        sdd.pl.sparsity(real, {})


def test_sparsity_bits_histogram(tmp_path):
    rng = np.random.default_rng(0)
    bits = np.where(rng.random((60, 30)) < 0.7, -1.0, 1.0)
    values = np.clip(bits + rng.normal(0.0, 0.02, bits.shape), -1.0, 1.0)
    gen = ad.AnnData(np.zeros((60, 30), dtype=np.float32), layers={"sb_logits": values})
    ax = sdd.pl.sparsity_bits(gen, bins=40)
    counts = np.array([p.get_height() for p in ax.patches])
    assert counts.sum() == values.size
    assert counts[0] + counts[-1] > 0.5 * values.size  # sharp at both ends
    expected = np.mean(np.minimum(np.abs(values + 1), np.abs(values - 1)) <= 0.1)
    assert f"{expected:.1%}" in ax.get_title()
    _save(ax, tmp_path / "sb.png")
    rescaled = sdd.pl.sparsity_bits(values, rescale=True, log=False)
    assert rescaled.lines[0].get_xdata()[0] == 0.5  # the threshold line
    with pytest.raises(ValueError, match="sb_logits"):
        sdd.pl.sparsity_bits(ad.AnnData(np.zeros((3, 2), dtype=np.float32)))


def test_umap_by_source_and_label(halves, tmp_path):
    real, other = halves
    axes = sdd.pl.umap(real, other, color=["source", "bulk_labels"], n_cells=150)
    assert isinstance(axes, list) and len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    assert axes[0].collections[0].get_offsets().shape == (300, 2)
    legend = {t.get_text() for t in axes[0].get_legend().get_texts()}
    assert legend == {"real", "generated"}
    _save(axes[0], tmp_path / "umap.png")
    with pytest.raises(ValueError, match="nope"):
        sdd.pl.umap(real, other, color="nope", n_cells=50)


def test_show_and_bad_arguments(halves, monkeypatch):
    real, other = halves
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    assert isinstance(sdd.pl.gene_means(real, other, show=True), Axes)
    assert shown == [True]
    with pytest.raises(TypeError, match="Axes"):
        sdd.pl.gene_means(real, other, ax="not an axes")
    with pytest.raises(ValueError, match="align_genes"):
        sdd.pl.gene_means(real, other[:, 10:].copy())
    with pytest.raises(ValueError, match="layer"):
        sdd.pl.sparsity(real.X, other.X, layer="counts")
