"""sdd.tl.evaluate on real data: halves of one dataset vs shuffled genes, gene handling, storage."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from conftest import QUIET, SHARED_DATA

import sdd
from sdd.tl._evaluate import METRICS

N_CELLS = 200  # cells per set for MMD / LISI / AUC: one LISI shape, one JAX compile


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    """scanpy's bundled pbmc68k_reduced, log1p-normalised (700 cells x 765 genes), sparse."""
    adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    adata.X = sp.csr_matrix(adata.X)
    return adata


@pytest.fixture(scope="module")
def halves(pbmc) -> tuple[ad.AnnData, ad.AnnData]:
    order = np.random.default_rng(0).permutation(pbmc.n_obs)
    half = pbmc.n_obs // 2
    return pbmc[np.sort(order[:half])].copy(), pbmc[np.sort(order[half:])].copy()


def _wide(table: pd.DataFrame, group: str = "all") -> pd.Series:
    return table[table["group"] == group].set_index("metric")["value"]


@pytest.fixture(scope="module")
def halves_result(halves):
    real, other = halves
    return _wide(sdd.tl.evaluate(real, other.copy(), n_cells=N_CELLS))


def test_real_halves_are_indistinguishable(halves, halves_result):
    m = halves_result
    assert m["SCC"] > 0.95 and m["PCC"] > 0.95
    assert m["LISI"] > 0.8  # maximum 1; ~0.9 for two samples of one distribution
    assert abs(m["AUC"] - 0.5) < 0.1
    assert m["MMD"] < 0.05
    assert m["sparsity_gene_corr"] > 0.95 and m["sparsity_cell_w1"] < 0.02
    real, other = halves
    assert m["sparsity_real"] == pytest.approx(sdd.metrics.zero_fraction(real.X))
    assert m["sparsity_generated"] == pytest.approx(sdd.metrics.zero_fraction(other.X))


def test_shuffled_genes_are_told_apart(halves, halves_result):
    real, other = halves
    shuffled = other.copy()
    shuffled.X = shuffled.X[:, np.random.default_rng(1).permutation(shuffled.n_vars)]
    m = _wide(sdd.tl.evaluate(real, shuffled, n_cells=N_CELLS))
    assert m["SCC"] < 0.3 and m["PCC"] < 0.3
    assert m["MMD"] > 20 * halves_result["MMD"]
    assert m["LISI"] < 0.1
    assert m["AUC"] > 0.95
    # shuffling genes keeps each cell's number of zeros: per-cell sparsity is unchanged
    assert m["sparsity_cell_w1"] == pytest.approx(halves_result["sparsity_cell_w1"], abs=1e-12)
    assert m["sparsity_gene_corr"] < 0.5


def test_table_layout_and_no_side_effects(halves):
    real, other = halves
    gen = other.copy()
    gen.uns["sdd"] = {"sampler": "ddpm"}
    before = (dict(gen.uns), dict(real.uns))
    table = sdd.tl.evaluate(real, gen, n_cells=N_CELLS, random_state=3)
    assert list(table.columns) == [
        "group", "metric", "value", "n_real", "n_generated", "n_subsample", "best"
    ]  # fmt: skip
    assert table["metric"].tolist() == list(METRICS)
    assert set(table["group"]) == {"all"}
    assert (table["n_real"] == real.n_obs).all() and (table["n_subsample"] == N_CELLS).all()
    assert (dict(gen.uns), dict(real.uns)) == before  # evaluate changes neither input
    assert table.attrs["params"]["n_neighbors"] == 90
    assert table.set_index("metric").loc["AUC_rf", "best"] == "0.5"


def test_floor_column_is_the_same_routine_on_real_halves(halves):
    """``floor`` is half A scored like the generated cells: passing A as the generated set
    reproduces it, and cell-level columns sit at their floor for real cells."""
    real, other = halves
    table = sdd.tl.evaluate(real, other, floor=True, n_cells=N_CELLS).set_index("metric")
    assert table.loc["below_real_p1", "floor"] < 0.05
    assert table.loc["AUC_rf_qc", "floor"] < 0.65 and table.loc["AUC_rf_qc", "value"] < 0.65
    for metric in ("detected_w1", "total_w1", "detected_ks"):
        assert np.isfinite(table.loc[metric, ["value", "floor"]].astype(float)).all()


@pytest.mark.slow
def test_cell_metrics_catch_near_empty_cells(halves):
    """Gene-level columns barely move when a quarter of the cells lose most of their genes;
    the per-cell columns do."""
    real, other = halves
    emptied = other.copy()
    X = emptied.X.tolil()
    rng = np.random.default_rng(0)
    for i in rng.choice(emptied.n_obs, emptied.n_obs // 4, replace=False):
        cols = X.rows[i]
        keep = rng.choice(len(cols), max(1, len(cols) // 10), replace=False)
        for j in sorted(set(range(len(cols))) - set(keep.tolist()), reverse=True):
            X[i, cols[j]] = 0
    emptied.X = sp.csr_matrix(X)
    same = _wide(sdd.tl.evaluate(real, other, n_cells=N_CELLS))
    bad = _wide(sdd.tl.evaluate(real, emptied, n_cells=N_CELLS))
    assert same["below_real_p1"] < 0.05 and bad["below_real_p1"] > 0.2
    assert bad["AUC_rf_qc"] > same["AUC_rf_qc"] + 0.1
    assert bad["detected_w1"] > 5 * same["detected_w1"]


def test_dense_input_and_gene_order_give_the_same_table(halves, halves_result):
    real, other = halves
    dense = other.copy()
    dense.X = dense.X.toarray()
    reordered = dense[:, ::-1].copy()  # same genes, reversed order: matched by name
    m = _wide(sdd.tl.evaluate(real, reordered, n_cells=N_CELLS))
    pd.testing.assert_series_equal(
        m.drop(["LISI", "AUC"]), halves_result.drop(["LISI", "AUC"]), rtol=1e-4
    )
    # kNN-based metrics may only move by a near-tie in the PCA coordinates
    assert m["LISI"] == pytest.approx(halves_result["LISI"], abs=0.02)
    assert m["AUC"] == pytest.approx(halves_result["AUC"], abs=0.02)


@pytest.mark.slow
def test_per_label_rows_and_unequal_sizes(halves):
    real, other = halves
    small = other[: N_CELLS + 50].copy()
    with pytest.warns(UserWarning, match="Skipped labels"):
        table = sdd.tl.evaluate(
            real, small, labels_key="bulk_labels", metric_kwargs={"min_cells": 50}
        )
    groups = table["group"].unique().tolist()
    assert groups[0] == "all" and len(groups) > 1
    counts_r = real.obs["bulk_labels"].value_counts()
    counts_g = small.obs["bulk_labels"].value_counts()
    for label in groups[1:]:
        rows = table[table["group"] == label]
        assert (rows["n_real"] == counts_r[label]).all()
        assert (rows["n_generated"] == counts_g[label]).all()
        assert min(counts_r[label], counts_g[label]) >= 50
    everything = table[table["group"] == "all"]
    assert (everything["n_subsample"] == N_CELLS + 50).all()


def test_gene_mismatch(halves):
    real, other = halves
    fewer = other[:, 100:].copy()
    with pytest.raises(ValueError, match="align_genes=True"):
        sdd.tl.evaluate(real, fewer)
    table = sdd.tl.evaluate(real, fewer, align_genes=True, n_cells=N_CELLS)
    assert table.attrs["params"]["n_genes"] == real.n_vars - 100
    expected = sdd.metrics.scc(real[:, 100:].X, fewer.X)
    assert _wide(table)["SCC"] == pytest.approx(expected)
    renamed = other.copy()
    renamed.var_names = [f"other_{g}" for g in renamed.var_names]
    with pytest.raises(ValueError, match="share no genes"):
        sdd.tl.evaluate(real, renamed, align_genes=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"labels_key": "nope"}, ValueError, "nope"),
        ({"layer": "nope"}, ValueError, "Layer 'nope'"),
        ({"n_cells": 3}, ValueError, "n_cells"),
        ({"metric_kwargs": {"min_cells": 2}}, ValueError, "min_cells"),
        ({"metric_kwargs": {"classifier": "svm"}}, ValueError, "classifier"),
        ({"metric_kwargs": {"k": 5}}, TypeError, "metric_kwargs has unknown option"),
    ],
)
def test_bad_arguments(halves, kwargs, error, match):
    real, other = halves
    with pytest.raises(error, match=match):
        sdd.tl.evaluate(real, other, **kwargs)


def test_not_anndata(halves):
    with pytest.raises(TypeError, match="AnnData"):
        sdd.tl.evaluate(halves[0].X, halves[1])


def test_generated_cells_from_a_model(adata):
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, hidden=(32,), emb_dim=16)  # untrained-quality: only the plumbing
    model.train(max_steps=3, batch_size=32, execution=QUIET)
    gen = model.generate(100, sampler="ddim", n_steps=3, execution=QUIET)
    table = sdd.tl.evaluate(adata, gen)
    m = _wide(table)
    assert m["sparsity_generated"] == pytest.approx(sdd.metrics.zero_fraction(gen.X))
    assert gen.uns["sdd"]["sampler"] == "ddim" and "evaluation" not in gen.uns["sdd"]
    assert set(m.index) == set(METRICS) and table["value"].notna().sum() >= len(METRICS) - 1


def test_warns_when_units_differ(adata):
    gen = adata.copy()
    gen.uns["sdd"] = {"layer": "counts"}
    with pytest.warns(UserWarning, match="layer='counts'"):
        sdd.tl.evaluate(adata, gen)


@pytest.mark.skipif(
    not (SHARED_DATA / "scrna" / "pbmc4k_top2000.h5ad").exists(), reason="shared data absent"
)
@pytest.mark.slow
def test_pbmc4k_halves_vs_noise():
    """Shared 10x PBMC data, normalised + log1p: random halves vs permuted values."""
    adata = sc.read_h5ad(SHARED_DATA / "scrna" / "pbmc4k_top2000.h5ad")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    order = np.random.default_rng(0).permutation(adata.n_obs)
    half = adata.n_obs // 2
    real, other = adata[np.sort(order[:half])].copy(), adata[np.sort(order[half:])].copy()
    noise = other[:N_CELLS].copy()  # every value moved to a random cell and gene
    values = noise.X.toarray().ravel()
    noise.X = sp.csr_matrix(np.random.default_rng(2).permutation(values).reshape(noise.shape))
    same = _wide(sdd.tl.evaluate(real, other, n_cells=N_CELLS))
    apart = _wide(sdd.tl.evaluate(real, noise, n_cells=N_CELLS))
    assert same["SCC"] > 0.95 and same["PCC"] > 0.95
    assert same["LISI"] > 0.8 and abs(same["AUC"] - 0.5) < 0.1
    assert apart["SCC"] < 0.3 and apart["LISI"] < 0.1 and apart["AUC"] > 0.95
    assert apart["MMD"] > 10 * same["MMD"]


@pytest.mark.slow
def test_floor_rows_and_de(halves):
    real, other = halves
    real = real.copy()
    for a in (real, other):
        a.obs["cond"] = np.where(a.obs["bulk_labels"].astype(str).str.contains("CD4"), "x", "y")
    shuffled = other.copy()
    shuffled.X = shuffled.X[:, np.random.default_rng(1).permutation(shuffled.n_vars)]
    good = sdd.tl.evaluate(
        real, other.copy(), condition_key="cond", n_cells=100, metric_kwargs={"min_cells": 10}
    )
    bad = sdd.tl.evaluate(
        real, shuffled, condition_key="cond", n_cells=100, metric_kwargs={"min_cells": 10}
    )
    assert list(good.columns[:4]) == ["group", "metric", "value", "floor"]
    g = good.set_index(["group", "metric"])
    b = bad.set_index(["group", "metric"])
    pd.testing.assert_series_equal(g["floor"], b["floor"])  # the floor ignores generated
    de = ("x vs y", "LFC_pearson")
    assert g.loc[de, "value"] > 0.8 and g.loc[de, "floor"] > 0.8 and b.loc[de, "value"] < 0.3
    assert g.loc[("all", "AUC_rf"), "floor"] == pytest.approx(0.5, abs=0.15)
    assert b.loc[("all", "AUC_rf"), "value"] > 0.9
    assert g.loc[("all", "AUC_logistic"), "floor"] == pytest.approx(0.5, abs=0.15)
    assert b.loc[("all", "AUC_logistic"), "value"] > 0.9
    with pytest.raises(ValueError, match="de_groups"):
        sdd.tl.evaluate(real, other.copy(), condition_key="bulk_labels")


def test_evaluation_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    table = pd.DataFrame(
        {
            "group": ["all", "all"],
            "metric": ["AUC", "MMD"],
            "value": [0.8, 0.1],
            "floor": [0.5, 0.0],
        }
    )
    path = tmp_path / "eval.png"
    ax = sdd.pl.evaluation(table, group="all", save=str(path))
    assert path.stat().st_size > 0 and not list(tmp_path.glob(".*tmp*"))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["AUC", "MMD"]
    offsets = ax.collections[-1].get_offsets()  # generated points, scaled per metric
    np.testing.assert_allclose(np.asarray(offsets)[:, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="floor=True"):
        sdd.pl.evaluation(table.drop(columns="floor"))
    with pytest.raises(TypeError, match="DataFrame"):
        sdd.pl.evaluation([1, 2])
