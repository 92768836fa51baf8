"""sdd.pl: what each plot draws, the scanpy-style options, and the stored joint embedding."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from functools import partial  # noqa: E402

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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


@pytest.fixture(scope="module")
def joint(halves) -> ad.AnnData:
    real, other = halves
    return sdd.tl.joint_embedding(real, other, n_cells=120, random_state=1)


@pytest.fixture
def shown(monkeypatch) -> list[bool]:
    calls: list[bool] = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(True))
    return calls


def _save(ax: Axes, path) -> None:
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def _images() -> np.ndarray:
    return np.random.default_rng(0).poisson(0.6, (12, 6, 6)).astype(float)


# every plot, called on small data; each returns (function, positional args)
PLOTS = {
    "gene_means": lambda h, j: (sdd.pl.gene_means, (h[0], h[1])),
    "sparsity": lambda h, j: (sdd.pl.sparsity, (h[0], h[1])),
    "sparsity_bits": lambda h, j: (
        sdd.pl.sparsity_bits,
        (np.random.default_rng(0).uniform(-1, 1, (20, 10)),),
    ),
    "umap": lambda h, j: (sdd.pl.umap, (j,)),
    "qc_violin": lambda h, j: (partial(sdd.pl.qc_violin, keys="n_genes_by_counts"), h),
    "images": lambda h, j: (sdd.pl.images, (_images(),)),
    "mean_image": lambda h, j: (sdd.pl.mean_image, (_images(),)),
    "image_sparsity": lambda h, j: (sdd.pl.image_sparsity, (_images(),)),
    "evaluation": lambda h, j: (
        sdd.pl.evaluation,
        (
            pd.DataFrame(
                {
                    "group": ["all"] * 2,
                    "metric": ["AUC", "MMD"],
                    "value": [0.8, 0.1],
                    "floor": [0.5, 0.0],
                }
            ),
        ),
    ),
}


def test_every_public_plot_is_covered():
    assert set(PLOTS) == set(sdd.pl.__all__) - {"category_palette"}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_show_ax_return_fig(name, halves, joint, shown):
    plot, args = PLOTS[name](halves, joint)
    # autoshow: a new figure that is neither returned nor saved is shown, and nothing returned
    assert plot(*args) is None and shown == [True]
    # given Axes: drawn into, returned, not shown
    fig, ax = plt.subplots()
    assert plot(*args, ax=ax) is ax and len(shown) == 1
    assert ax.has_data() or ax.images
    # return_fig: the Figure, not shown
    out = plot(*args, return_fig=True)
    assert isinstance(out, Figure) and len(shown) == 1
    # show=False: the Axes; show=True with an Axes: shown, nothing returned
    assert isinstance(plot(*args, show=False), Axes) and len(shown) == 1
    assert plot(*args, ax=ax, show=True) is None and len(shown) == 2
    with pytest.raises(TypeError, match="show"):
        plot(*args, show="yes")
    with pytest.raises(TypeError, match="return_fig"):
        plot(*args, return_fig=1)
    with pytest.raises(TypeError, match="Axes"):
        plot(*args, ax="not an axes")


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_save_is_atomic(name, halves, joint, shown, tmp_path):
    plot, args = PLOTS[name](halves, joint)
    path = tmp_path / "figure.png"
    ax = plot(*args, save=path)
    assert isinstance(ax, Axes | list) and shown == []  # saved, so not shown
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temporary file left
    # an existing figure is replaced; the format comes from the suffix
    plot(*args, save=path, show=False)
    plot(*args, save=tmp_path / "figure.svg", show=False)
    assert (tmp_path / "figure.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "figure.svg"]


def test_save_checks_and_failure_leave_nothing(halves, tmp_path, monkeypatch):
    real, other = halves
    with pytest.raises(ValueError, match="xyz"):
        sdd.pl.gene_means(real, other, save=tmp_path / "figure.xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sdd.pl.gene_means(real, other, save=tmp_path / "missing" / "figure.png")
    with pytest.raises(TypeError, match="file path"):
        sdd.pl.gene_means(real, other, save=True)
    before = b"previous figure"
    (tmp_path / "figure.png").write_bytes(before)

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(PNG_MAGIC)  # a partial file, then the disk is full
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="No space"):
        sdd.pl.gene_means(real, other, save=tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_keywords_reach_the_artists(name, halves, joint):
    plot, args = PLOTS[name](halves, joint)
    ax = plot(*args, show=False, alpha=0.25)
    ax = ax[0] if isinstance(ax, list) else ax
    alphas = {a.get_alpha() for a in [*ax.collections, *ax.patches, *ax.images]}
    assert 0.25 in alphas


def test_gene_means(halves, tmp_path):
    real, other = halves
    ax = sdd.pl.gene_means(real, other, title="halves", show=False)
    assert isinstance(ax, Axes)
    points = ax.collections[0].get_offsets()
    assert points.shape == (real.n_vars, 2)
    np.testing.assert_allclose(points[:, 0], sdd.metrics.gene_means(real.X))
    assert f"SCC = {sdd.metrics.scc(real.X, other.X):.3f}" in ax.get_title()
    _save(ax, tmp_path / "gene_means.png")
    # genes are matched by name, so a reversed gene order draws the same points
    again = sdd.pl.gene_means(real, other[:, ::-1].copy(), log=True, show=False)
    np.testing.assert_allclose(again.collections[0].get_offsets(), points)


def test_gene_means_log_keeps_and_counts_zero_mean_genes():
    rng = np.random.default_rng(0)
    real = rng.poisson(2.0, (40, 12)).astype(float)
    gen = rng.poisson(2.0, (40, 12)).astype(float)
    gen[:, :3] = 0.0  # three genes the model never expresses
    real[:, 5] = 0.0  # and one the real cells never express
    ax = sdd.pl.gene_means(real, gen, log=True, show=False)
    assert ax.get_xscale() == ax.get_yscale() == "symlog"
    points = np.asarray(ax.collections[0].get_offsets())
    assert points.shape == (12, 2)  # every gene drawn, the zero-mean ones included
    assert np.sum(points[:, 1] == 0) == 3 and np.sum(points[:, 0] == 0) == 1
    # drawn inside the axes, not lost off a log scale
    lo, hi = ax.get_ylim()
    assert lo <= 0 <= hi
    assert "4 gene(s) with mean 0" in ax.get_title()


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
    ax = sdd.pl.sparsity_bits(gen, bins=40, show=False)
    counts = np.array([p.get_height() for p in ax.patches])
    assert counts.sum() == values.size
    assert counts[0] + counts[-1] > 0.5 * values.size  # sharp at both ends
    expected = np.mean(np.minimum(np.abs(values + 1), np.abs(values - 1)) <= 0.1)
    assert f"{expected:.1%}" in ax.get_title()
    _save(ax, tmp_path / "sb.png")
    rescaled = sdd.pl.sparsity_bits(values, rescale=True, log=False, show=False)
    assert rescaled.lines[0].get_xdata()[0] == 0.5  # the threshold line
    with pytest.raises(ValueError, match="sb_logits"):
        sdd.pl.sparsity_bits(ad.AnnData(np.zeros((3, 2), dtype=np.float32)))


def test_sparsity_bits_against_calibrated_thresholds():
    """With ``layers["sb_thresholds"]`` each value is drawn minus its own threshold: the
    bars left of the dashed line at 0 are exactly the entries that were turned off."""
    rng = np.random.default_rng(1)
    values = rng.uniform(-1.0, 1.0, (40, 10)).astype(np.float32)
    thresholds = np.tile(rng.uniform(-0.5, 0.5, 10), (40, 1)).astype(np.float32)
    gen = ad.AnnData(
        np.zeros((40, 10), dtype=np.float32),
        layers={"sb_logits": values, "sb_thresholds": thresholds},
    )
    ax = sdd.pl.sparsity_bits(gen, bins=2, log=False, show=False)
    assert ax.lines[0].get_xdata()[0] == 0.0 and "calibrated threshold" in ax.get_xlabel()
    below, above = (p.get_height() for p in ax.patches)
    margin = values - thresholds
    assert margin.min() < 0 < margin.max()
    left = np.mean([margin.min(), margin.max()])  # two bins split at the range's middle
    assert (below, above) == ((margin < left).sum(), (margin >= left).sum())


# ------------------------------------------------------------------ joint embedding
def test_joint_embedding_is_stored(halves, joint):
    real, other = halves
    assert joint.n_obs == 240 and list(joint.var_names) == list(real.var_names)
    assert joint.obsm["X_umap"].shape == (240, 2) and np.isfinite(joint.obsm["X_umap"]).all()
    assert "X_pca" in joint.obsm and "connectivities" in joint.obsp
    source = joint.obs["source"]
    assert isinstance(source.dtype, pd.CategoricalDtype)
    assert list(source.cat.categories) == ["real", "generated"]
    assert (source == "real").sum() == (source == "generated").sum() == 120
    assert joint.uns["sdd"]["n_real"] == 120
    # labels and numbers of both inputs come along, on the cells they belong to
    assert isinstance(joint.obs["bulk_labels"].dtype, pd.CategoricalDtype)
    assert joint.obs["n_counts"].dtype == np.float64
    for name in joint.obs_names[:5]:
        assert joint.obs.loc[name, "bulk_labels"] == real.obs.loc[name, "bulk_labels"]
    # a set without a column gets missing values; arrays work too
    gen = ad.AnnData(other.X[:30].copy(), var=other.var[[]])
    small = sdd.tl.joint_embedding(real[:30], gen)
    assert small.obs["bulk_labels"].isna().sum() == 30
    arrays = sdd.tl.joint_embedding(real.X[:20], other.X[:20], n_comps=5, n_neighbors=5)
    assert arrays.obsm["X_umap"].shape == (40, 2)
    with pytest.raises(ValueError, match="not an AnnData"):
        sdd.tl.joint_embedding(real.X, other.X, layer="counts")
    with pytest.raises(ValueError, match="n_cells"):
        sdd.tl.joint_embedding(real, other, n_cells=0)


def test_umap_reuses_the_stored_embedding(joint, monkeypatch):
    def recompute(*args, **kwargs):
        raise AssertionError("the stored embedding was recomputed")

    for module, name in ((sc.pp, "pca"), (sc.pp, "neighbors"), (sc.tl, "umap")):
        monkeypatch.setattr(module, name, recompute)
    before = joint.obsm["X_umap"].copy()
    uns_before = set(joint.uns)
    axes = sdd.pl.umap(joint, color=["source", "bulk_labels"], show=False)
    axes += [sdd.pl.umap(joint, color="louvain", show=False)]
    for ax in axes:
        drawn = np.asarray(ax.collections[0].get_offsets())
        # the stored coordinates, drawn in a shuffled order
        np.testing.assert_allclose(np.sort(drawn, axis=0), np.sort(before, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(joint.obsm["X_umap"], before)
    assert set(joint.uns) == uns_before  # plotting leaves the stored object as it was
    _, grid = plt.subplots(1, 2)  # an array of Axes, as plt.subplots gives
    assert sdd.pl.umap(joint, color=["source", "phase"], ax=grid) == list(grid)
    with pytest.raises(TypeError, match="2 matplotlib Axes"):
        sdd.pl.umap(joint, color=["source", "phase"], ax=grid[0])
    with pytest.raises(ValueError, match="only apply when computing"):
        sdd.pl.umap(joint, embedding_kwargs={"n_cells": 10})
    with pytest.raises(ValueError, match="joint_embedding"):
        sdd.pl.umap(ad.AnnData(np.ones((3, 2), dtype=np.float32)))


def test_umap_from_real_and_generated(halves, tmp_path):
    real, other = halves
    axes = sdd.pl.umap(
        real,
        other,
        color=["source", "bulk_labels"],
        embedding_kwargs={"n_cells": 150, "n_comps": 20},
        show=False,
    )
    assert isinstance(axes, list) and len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    assert axes[0].collections[0].get_offsets().shape == (300, 2)
    legend = {t.get_text() for t in axes[0].get_legend().get_texts()}
    assert legend == {"real", "generated"}
    _save(axes[0], tmp_path / "umap.png")
    with pytest.raises(ValueError, match="nope"):
        sdd.pl.umap(real, other, color="nope", embedding_kwargs={"n_cells": 50})


def _colours(ax: Axes) -> set[str]:
    return {to_hex(c) for c in ax.collections[0].get_facecolors()}


def test_umap_colours_are_distinct(joint):
    by_source, by_type = sdd.pl.umap(joint, color=["source", "bulk_labels"], show=False)
    source = _colours(by_source)
    assert len(source) == 2  # real and generated
    types = _colours(by_type)
    assert len(types) == joint.obs["bulk_labels"].nunique()
    assert not types & source  # no cell type is painted like real or generated cells
    palette = sdd.pl.category_palette(40)
    assert len(set(palette)) == 40 and not set(palette) & source
    # a palette the user gives wins
    ax = sdd.pl.umap(joint, color="phase", palette=["#000000", "#0000ff", "#00ff00"], show=False)
    assert _colours(ax) <= {"#000000", "#0000ff", "#00ff00"}


def test_two_panel_legends_are_not_clipped(joint):
    axes = sdd.pl.umap(joint, color=["bulk_labels", "source"], show=False)
    fig = axes[0].get_figure(root=True)
    fig.canvas.draw()
    figure_box = fig.bbox
    for ax in axes:
        box = ax.get_legend().get_window_extent()
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 + 0.5
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1 + 0.5
    # the first panel's legend does not run into the second panel
    assert not axes[0].get_legend().get_window_extent().overlaps(axes[1].get_window_extent())


def test_qc_violin_draws_real_and_generated_per_group(halves):
    real, other = halves
    axes = sdd.pl.qc_violin(real, other, groupby="bulk_labels", show=False)
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["n_genes_by_counts", "total_counts"]
    groups = sorted(
        set(real.obs["bulk_labels"].astype(str)) | set(other.obs["bulk_labels"].astype(str))
    )
    assert [t.get_text() for t in axes[0].get_xticklabels()] == groups
    assert len(axes[0].collections) >= 2 * len(groups) - 2  # a violin per source and group
    with pytest.raises(ValueError, match="keys"):
        sdd.pl.qc_violin(real, other, keys=["pct_mito"])
    with pytest.raises(ValueError, match="groupby"):
        sdd.pl.qc_violin(real, other, groupby="nope")


def test_evaluation_labels_say_which_way_is_better():
    table = pd.DataFrame(
        {"group": ["all"] * 2, "metric": ["AUC_rf", "LISI"], "value": [0.8, 0.6],
         "floor": [0.5, 0.9], "best": ["0.5", "1"]}
    )  # fmt: skip
    ax = sdd.pl.evaluation(table, show=False)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["all: AUC_rf (best 0.5)", "all: LISI (best 1)"]
    plt.close("all")
