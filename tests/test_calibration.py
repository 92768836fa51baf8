"""Depth conditioning (``SDD(depth_bins=)``) and sparsity calibration (``SDD.calibrate``)."""

from __future__ import annotations

import inspect
import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET

import sdd
from sdd.data.detection import bin_codes, depth_bins, nonzero_counts, nonzero_counts_by_group
from sdd.diffusion.sparsity import decode, matching_thresholds
from sdd.model._calibration import NEVER, cell_cutoffs, two_way_offsets
from sdd.model._depth import DepthCondition
from sdd.nn.embeddings import LabelEmbedding


def make_adata(n: int = 240, genes: int = 30, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.05, 0.5, size=(n, 1))  # cells differ in how many genes they detect
    nonzero = rng.random((n, genes)) < depth
    X = np.where(nonzero, np.log1p(rng.poisson(3.0, (n, genes)) + 1.0), 0.0)
    adata = ad.AnnData(sp.csr_matrix(X.astype(np.float32)))
    adata.var_names = [f"g{i}" for i in range(genes)]
    adata.obs["cell_type"] = rng.choice(["A", "B"], n)
    return adata


@pytest.fixture(scope="module")
def trained() -> sdd.SDD:
    torch.manual_seed(0)
    adata = make_adata()
    sdd.SDD.setup_anndata(adata)
    return sdd.SDD(adata, hidden=(32, 16), depth_bins=4).train(60, random_state=0, execution=QUIET)


# ---------------------------------------------------------------- pure functions
def test_matching_thresholds_hit_the_rates_on_their_own_sample() -> None:
    logits = np.random.default_rng(0).normal(size=(500, 6))
    rates = np.array([0.0, 0.01, 0.2, 0.5, 0.999, 1.0])
    thresholds = matching_thresholds(logits, rates)
    np.testing.assert_allclose((logits > thresholds).mean(axis=0), rates, atol=1 / 500)
    assert thresholds[0] == np.inf and thresholds[-1] == -np.inf


def test_matching_thresholds_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one rate per feature"):
        matching_thresholds(np.zeros((3, 2)), np.array([0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        matching_thresholds(np.zeros((3, 2)), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="at least one row"):
        matching_thresholds(np.zeros((0, 2)), np.array([0.5, 0.5]))


def test_decode_uses_a_threshold_per_feature() -> None:
    z = torch.tensor([[0.5, 0.5, 0.3, 0.3]])  # values (0.5, 0.5), bits (0.3, 0.3)
    masked, _, bits = decode(z, threshold=torch.tensor([0.0, 0.4]))
    assert bits.tolist() == [[1.0, 0.0]]
    assert masked.tolist() == [[0.5, -1.0]]


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_nonzero_counts_per_row_and_column(kind: str) -> None:
    X = np.array([[0, 1.5, 0], [2, 3, 0], [0, 0, 0], [1, 0, 4]])
    matrix = sp.csr_matrix(X) if kind == "csr" else X
    per_row, per_column = nonzero_counts(matrix, chunk_rows=3)
    assert per_row.tolist() == [1, 2, 0, 2]
    assert per_column.tolist() == [2, 2, 1]
    by_group = nonzero_counts_by_group(matrix, np.array([1, 0, 1, 0]), 3, chunk_rows=3)
    assert by_group.tolist() == [[2, 1, 1], [0, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="groups has shape"):
        nonzero_counts_by_group(matrix, np.array([0, 1]), 2)


def test_depth_bins_are_quantiles_and_codes_cover_them() -> None:
    depth = np.arange(100)
    edges = depth_bins(depth, 4)
    codes = bin_codes(depth, edges)
    assert len(edges) == 3
    assert np.bincount(codes).tolist() == [25, 25, 25, 25]


def test_unconditional_codes_keep_the_unguided_covariates() -> None:
    emb = LabelEmbedding([3, 5], 8, n_guided=1)
    codes = torch.tensor([[0, 2], [1, 4]])
    assert emb.unconditional(codes).tolist() == [[3, 2], [3, 4]]
    assert LabelEmbedding([3, 5], 8).unconditional(codes).tolist() == [[3, 5], [3, 5]]


# ---------------------------------------------------------------- depth condition
def test_depth_condition_is_one_more_covariate() -> None:
    adata = make_adata(80)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = sdd.SDD(adata, hidden=(16,), depth_bins=5)
    assert model.module.labels.n_categories == [2, 5]
    assert model.module.labels.n_guided == 1
    _, codes = model._training_data()
    per_cell = np.asarray((adata.X != 0).sum(axis=1)).ravel()
    np.testing.assert_array_equal(codes[:, 1], bin_codes(per_cell, model.depth_.edges))
    plain = sdd.SDD(adata, hidden=(16,), depth_bins=0)
    assert plain.module.labels.n_categories == [2] and plain.depth_.conditions == []


@pytest.mark.parametrize(("value", "error"), [(1, ValueError), (-2, ValueError), (2.5, TypeError)])
def test_bad_depth_bins(value, error) -> None:
    adata = make_adata(40)
    with pytest.raises(error, match="depth_bins"):
        sdd.SDD(adata, hidden=(16,), depth_bins=value)


def test_generated_depth_bins_follow_the_training_cells(trained: sdd.SDD) -> None:
    rng = np.random.default_rng(0)
    depths, _, bins = trained.depth_.draw(None, 4000, trained.categories_, rng)
    np.testing.assert_array_equal(bins, trained.depth_.bins(depths))
    counts = np.bincount(bins, minlength=4) / 4000
    training = trained.depth_.training_bins
    expected = np.bincount(training, minlength=4) / len(training)
    np.testing.assert_allclose(counts, expected, atol=0.03)


def test_deeper_bins_give_cells_with_more_genes() -> None:
    torch.manual_seed(0)
    adata = make_adata(400, seed=1)
    model = sdd.SDD(adata, hidden=(64, 32), depth_bins=2).train(
        300, random_state=0, execution=QUIET, lr=2e-3
    )
    detected = []
    for code in (0, 1):
        codes = np.full((200, 1), code)
        [(_, _, z)] = model._sample_batches(
            200, codes=codes, batch_size=200, guidance_scale=0.0, random_state=0, use_ema=True,
            execution=QUIET.replace(accelerator="cpu", fast=False), n_steps=50,
        )  # fmt: skip
        detected.append((z[:, model.n_genes :] > 0).float().sum(dim=1).mean().item())
    assert detected[1] > detected[0] + 1.0  # the deep bin detects more genes per cell


# ---------------------------------------------------------------- calibration
def test_calibration_matches_training_detection_rates(trained: sdd.SDD) -> None:
    trained.calibrate(400, n_steps=20, random_state=3, execution=QUIET, per_cell=False)
    again = trained.generate(400, n_steps=20, random_state=3, execution=QUIET)  # same sample
    rates = np.asarray((again.X != 0).mean(axis=0)).ravel()
    np.testing.assert_allclose(rates, trained.targets_.detection_rate, atol=1.5 / 400)
    assert again.uns["sdd"]["calibrated"] is True
    raw = trained.generate(400, n_steps=20, random_state=3, execution=QUIET, calibrated=False)
    assert raw.uns["sdd"]["calibrated"] is False
    raw_error = np.abs(
        np.asarray((raw.X != 0).mean(axis=0)).ravel() - trained.targets_.detection_rate
    )
    assert np.abs(rates - trained.targets_.detection_rate).mean() < raw_error.mean()


def test_value_calibration_gives_each_gene_the_training_values(trained: sdd.SDD) -> None:
    trained.calibrate(
        400, n_steps=20, random_state=3, execution=QUIET, value_weight=1.0, match_totals=False
    )
    mapped = trained.generate(400, n_steps=20, random_state=3, execution=QUIET)
    raw_values = trained.generate(
        400, n_steps=20, random_state=3, execution=QUIET, store_dense=True
    )  # the same sample: calibrated thresholds, unmapped values in layers["dense"]
    assert ((mapped.X != 0) != (raw_values.X != 0)).nnz == 0  # the zero pattern is untouched
    real = make_adata()  # the fixture's training cells
    genes = np.flatnonzero(np.isfinite(trained.calibration_.value_map[:, 0]))
    assert genes.size > 20
    X, R = mapped.X.toarray(), real.X.toarray()
    for g in genes:
        got = np.quantile(X[X[:, g] != 0, g], [0.25, 0.5, 0.75])
        want = np.quantile(R[R[:, g] != 0, g], [0.25, 0.5, 0.75])
        np.testing.assert_allclose(got, want, atol=0.15)
    unmapped = np.where(raw_values.X.toarray() != 0, raw_values.layers["dense"], 0.0)
    for weight in (0.5, None):  # None: the default, 0.75 of the way to the mapped values
        kwargs = {} if weight is None else {"value_weight": weight}
        part = trained.calibrate(
            400, n_steps=20, random_state=3, execution=QUIET, match_totals=False, **kwargs
        )
        part = part.generate(400, n_steps=20, random_state=3, execution=QUIET)
        w = 0.75 if weight is None else weight
        np.testing.assert_allclose(
            part.X.toarray(), (1 - w) * unmapped + w * X, rtol=1e-5, atol=1e-6
        )
    trained.calibrate(
        400, n_steps=20, random_state=3, execution=QUIET, value_weight=0, match_totals=False
    )
    assert (
        trained.calibration_.value_map is None
        and trained.calibration_.settings["value_weight"] == 0
    )
    plain = trained.generate(400, n_steps=20, random_state=3, execution=QUIET)
    np.testing.assert_allclose(plain.X.toarray(), unmapped, rtol=1e-6)


def test_generate_samples_as_the_calibration_did(trained: sdd.SDD) -> None:
    """Thresholds hold for the sampler they were matched on: a calibrated model generates
    with the calibration's sampler and steps unless told otherwise; an uncalibrated one
    (or ``calibrated=False``) with DDPM-250."""
    trained.calibrate(100, n_steps=7, random_state=3, execution=QUIET, per_cell=False)
    assert trained.calibration_.settings["sampler"] == "ddim"
    own = trained.generate(100, random_state=3, execution=QUIET, store_dense=True)
    assert (own.uns["sdd"]["sampler"], own.uns["sdd"]["n_steps"]) == ("ddim", 7)
    # the calibration sample again: its thresholds give exactly the training rates
    rates = np.asarray((own.X != 0).mean(axis=0)).ravel()
    np.testing.assert_allclose(rates, trained.targets_.detection_rate, atol=1.5 / 100)
    told = trained.generate(10, sampler="ddpm", n_steps=3, execution=QUIET)
    assert (told.uns["sdd"]["sampler"], told.uns["sdd"]["n_steps"]) == ("ddpm", 3)
    raw = trained.generate(10, calibrated=False, n_steps=3, execution=QUIET)
    assert raw.uns["sdd"]["sampler"] == "ddpm"
    trained.calibrate(100, sampler="ddpm", n_steps=4, random_state=3, execution=QUIET)
    again = trained.generate(10, execution=QUIET)
    assert (again.uns["sdd"]["sampler"], again.uns["sdd"]["n_steps"]) == ("ddpm", 4)


def test_calibration_survives_save_and_load(trained: sdd.SDD, tmp_path) -> None:
    trained.calibrate(200, n_steps=10, execution=QUIET)
    trained.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.calibration_.thresholds, trained.calibration_.thresholds)
    np.testing.assert_array_equal(loaded.calibration_.value_map, trained.calibration_.value_map)
    np.testing.assert_array_equal(loaded.targets_.value_quantiles, trained.targets_.value_quantiles)
    assert loaded.calibration_.group_thresholds is None and loaded.targets_.group_codes is None
    np.testing.assert_array_equal(loaded.depth_.depths, trained.depth_.depths)
    a = trained.generate(50, n_steps=10, execution=QUIET)
    b = loaded.generate(50, n_steps=10, execution=QUIET)
    assert (a.X != b.X).nnz == 0


def test_group_calibration_survives_save_and_load(tmp_path) -> None:
    adata = make_adata(240)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = (
        sdd.SDD(adata, hidden=(16,))
        .train(5, execution=QUIET)
        .calibrate(200, n_steps=5, execution=QUIET)
    )
    assert model.calibration_.group_thresholds.shape == (2, 30)
    model.save(tmp_path / "m")
    loaded = sdd.SDD.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.calibration_.group_thresholds, model.calibration_.group_thresholds
    )
    assert (
        model.calibration_.group_value_map.shape
        == model.targets_.group_value_quantiles.shape
        == (2, 30, 21)
    )
    np.testing.assert_array_equal(
        loaded.calibration_.group_value_map, model.calibration_.group_value_map
    )
    np.testing.assert_array_equal(
        loaded.targets_.group_value_quantiles, model.targets_.group_value_quantiles
    )
    np.testing.assert_array_equal(loaded.targets_.group_rates, model.targets_.group_rates)
    a = model.generate(60, labels="training", n_steps=5, execution=QUIET)
    b = loaded.generate(60, labels="training", n_steps=5, execution=QUIET)
    assert (a.X != b.X).nnz == 0


def test_group_calibration_matches_each_label_group() -> None:
    rng = np.random.default_rng(4)
    n, genes = 400, 20
    types = rng.choice(["A", "B"], n)
    rate = np.where((types == "B")[:, None] & (np.arange(genes) < 10), 0.7, 0.15)
    X = np.where(rng.random((n, genes)) < rate, np.log1p(rng.poisson(3.0, (n, genes)) + 1.0), 0)
    adata = ad.AnnData(sp.csr_matrix(X.astype(np.float32)))
    adata.obs["cell_type"] = types
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    torch.manual_seed(0)
    model = sdd.SDD(adata, hidden=(32, 16), depth_bins=0).train(60, random_state=0, execution=QUIET)
    expected = {t: (X[types == t] != 0).mean(axis=0) for t in ("A", "B")}
    np.testing.assert_allclose(
        model.targets_.group_rates, np.vstack([expected["A"], expected["B"]]), atol=1e-6
    )
    errors = {}
    for per_group in (True, False):
        model.calibrate(
            400, n_steps=20, random_state=3, execution=QUIET, per_group=per_group, per_cell=False
        )
        assert model.calibration_.settings["per_group"] is per_group
        gen = model.generate(
            400, labels="training", n_steps=20, random_state=3, execution=QUIET, store_dense=True
        )
        errors[per_group] = 0.0
        for t in ("A", "B"):
            cells = gen[gen.obs["cell_type"] == t]
            got = np.asarray((cells.X != 0).mean(axis=0)).ravel()
            if per_group:  # the calibration sample itself: each group hits its own rates
                logits = cells.layers["sb_logits"]  # an entry can be switched on if its value
                # decodes > 0 and its bit is above the group's lowest (ties at the clamp: no)
                reachable = ((cells.layers["dense"] > 0) & (logits > logits.min(axis=0))).mean(0)
                want = np.minimum(expected[t], reachable)
                np.testing.assert_allclose(got, want, atol=1.5 / cells.n_obs)
            errors[per_group] += np.abs(got - expected[t]).mean()
    assert errors[True] < errors[False]


def test_group_value_maps_give_each_group_its_training_values() -> None:
    """Genes 0-9 are expressed much higher in B than in A: the per-group maps give each
    group its own non-zero quartiles (on the calibration sample), the global map cannot."""
    rng = np.random.default_rng(5)
    n, genes = 400, 16
    types = rng.choice(["A", "B"], n)
    lam = np.where((types == "B")[:, None] & (np.arange(genes) < 10), 30.0, 2.0)
    X = np.where(rng.random((n, genes)) < 0.5, np.log1p(rng.poisson(lam) + 1.0), 0)
    adata = ad.AnnData(sp.csr_matrix(X.astype(np.float32)))
    adata.obs["cell_type"] = types
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    torch.manual_seed(0)
    model = sdd.SDD(adata, hidden=(32, 16), depth_bins=0).train(40, random_state=0, execution=QUIET)
    levels = [0.25, 0.5, 0.75]
    errors = {}
    for per_group in (True, False):
        model.calibrate(
            400,
            n_steps=20,
            random_state=3,
            execution=QUIET,
            per_group=per_group,
            value_weight=1.0,
            match_totals=False,
        )
        assert (model.calibration_.group_value_map is not None) is per_group
        gen = model.generate(400, labels="training", n_steps=20, random_state=3, execution=QUIET)
        errors[per_group] = []
        for t in ("A", "B"):
            G, R = gen[gen.obs["cell_type"] == t].X.toarray(), X[types == t]
            for g in range(10):
                if (G[:, g] != 0).sum() < 10:  # global thresholds can switch a gene off
                    continue
                got = np.quantile(G[G[:, g] != 0, g], levels)
                want = np.quantile(R[R[:, g] != 0, g], levels)
                errors[per_group].append(np.abs(got - want).max())
    assert len(errors[True]) == 20 and len(errors[False]) >= 5
    assert max(errors[True]) < 0.2  # each group lands on its own training quartiles
    assert np.mean(errors[True]) < 0.5 * np.mean(errors[False])


def test_too_many_groups_fall_back_to_the_global_value_map(monkeypatch) -> None:
    monkeypatch.setattr("sdd.model._calibration.MAX_GROUP_VALUES", 100)
    adata = make_adata(240)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    with pytest.warns(UserWarning, match="too many for value maps per group"):
        model = sdd.SDD(adata, hidden=(16,), depth_bins=0)
    model.train(5, execution=QUIET).calibrate(200, n_steps=5, execution=QUIET)
    assert (
        model.targets_.group_value_quantiles is None and model.calibration_.group_value_map is None
    )
    assert (
        model.calibration_.group_thresholds.shape == (2, 30)
        and model.calibration_.value_map is not None
    )
    assert model.generate(20, labels="training", n_steps=5, execution=QUIET).n_obs == 20


def test_unconditional_cells_of_a_group_model_use_the_global_thresholds() -> None:
    adata = make_adata(240)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = sdd.SDD(adata, hidden=(16,), depth_bins=0).train(5, execution=QUIET)
    model.calibrate(200, n_steps=5, execution=QUIET)
    calibration = model.calibration_
    assert calibration.rows(model.targets_.group_index(None)) is None
    codes = np.array([[0], [1], [2]])  # A, B, the null token
    assert calibration.rows(model.targets_.group_index(codes)).tolist() == [0, 1, 2]
    assert calibration.group_thresholds.shape == (2, 30)


def test_stale_calibration_is_ignored_with_a_warning() -> None:
    torch.manual_seed(0)
    adata = make_adata(60)
    model = sdd.SDD(adata, hidden=(16,), depth_bins=2).train(5, execution=QUIET)
    model.calibrate(50, n_steps=5, execution=QUIET)
    model.train(3, execution=QUIET)
    with pytest.warns(UserWarning, match="calibrate"):
        stale = model.generate(30, n_steps=5, execution=QUIET)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = model.generate(30, n_steps=5, execution=QUIET, calibrated=False)
    assert (stale.X != plain.X).nnz == 0


def test_calibrate_rejects_bad_calls() -> None:
    adata = make_adata(40)
    baseline = sdd.SDD(adata, hidden=(16,), sparsity_bits=False).train(2, execution=QUIET)
    with pytest.raises(ValueError, match="sparsity bits"):
        baseline.calibrate(10)
    model = sdd.SDD(adata, hidden=(16,)).train(2, execution=QUIET)
    with pytest.raises(TypeError, match="unexpected"):
        model.calibrate(10, labels="A")
    with pytest.raises(ValueError, match="n_cells"):
        model.calibrate(0)
    with pytest.raises(ValueError, match="value_weight"):
        model.calibrate(10, value_weight=1.5)
    with pytest.raises(TypeError, match="value_weight"):
        model.calibrate(10, value_weight=True)


@pytest.mark.parametrize("calibrate", [True, False])
def test_cli_fit_calibrates_unless_told_not_to(tmp_path, calibrate: bool) -> None:
    from sdd.cli import main

    path = tmp_path / "cells.h5ad"
    make_adata(60).write_h5ad(path)
    args = ["fit", str(path), "-o", str(tmp_path / "m"), "--max-steps", "3", "-q"]
    args += ["--hidden", "16"] + ([] if calibrate else ["--no-calibrate"])
    assert main(args) == 0
    model = sdd.SDD.load(tmp_path / "m")
    assert (model.calibration_ is not None) == calibrate


def test_tl_fit_calibrates_by_default() -> None:
    adata = make_adata(60)
    model = sdd.tl.fit(adata, max_steps=3, hidden=(16,), execution=QUIET)
    assert model.calibration_ is not None
    default = inspect.signature(sdd.SDD.calibrate).parameters["n_cells"].default
    assert model.calibration_.settings["n_cells"] == default
    baseline = sdd.tl.fit(adata, max_steps=3, hidden=(16,), execution=QUIET, sparsity_bits=False)
    assert baseline.calibration_ is None


# ---------------------------------------------------------------- whole cells: per-cell depths
def test_cell_cutoffs_turn_on_exactly_the_asked_number_per_row() -> None:
    scores = np.random.default_rng(0).normal(size=(50, 12))
    scores[0, :9] = NEVER  # three valid entries: at most three turn on
    depths = np.random.default_rng(1).integers(0, 13, size=50)
    on = scores > cell_cutoffs(scores, depths)[:, None]
    expected = np.minimum(depths, (scores > NEVER).sum(axis=1))
    np.testing.assert_array_equal(on.sum(axis=1), expected)


def test_two_way_offsets_match_both_margins() -> None:
    """Rows get exactly their depths and columns about their rates at once, where per-gene
    thresholds alone leave the row sums to the logits (here: far too spread)."""
    rng = np.random.default_rng(0)
    n, genes = 600, 40
    logits = rng.normal(size=(n, genes)) + 2.0 * rng.normal(size=(n, 1))  # cells differ a lot
    rates = rng.uniform(0.05, 0.6, genes)
    depths = rng.binomial(genes, rates.mean(), size=n)  # a narrow depth distribution
    offsets, cut = two_way_offsets(logits, rates, depths)
    on = logits - offsets > cut[:, None]
    np.testing.assert_array_equal(on.sum(axis=1), depths)
    np.testing.assert_allclose(on.mean(axis=0), rates, atol=0.03)
    one_way = logits > matching_thresholds(logits, rates)
    assert one_way.sum(axis=1).std() > 2 * depths.std()


def test_generated_cells_have_their_drawn_depths(trained: sdd.SDD) -> None:
    trained.calibrate(300, n_steps=10, random_state=3, execution=QUIET, match_totals=True)
    assert trained.calibration_.settings["per_cell"] is True
    gen = trained.generate(300, n_steps=10, random_state=5, execution=QUIET)
    assert gen.uns["sdd"]["per_cell"] is True
    detected = np.asarray((gen.X != 0).sum(axis=1)).ravel()
    depths, totals, _ = trained.depth_.draw(
        None, 300, trained.categories_, np.random.default_rng([5, 1])
    )  # the draw generate makes with random_state=5
    np.testing.assert_array_equal(detected, np.minimum(depths, trained.n_genes))
    assert trained.calibration_.settings["match_totals"] is True
    np.testing.assert_allclose(np.asarray(gen.X.sum(axis=1)).ravel(), totals, rtol=1e-4)
    rates = np.asarray((gen.X != 0).mean(axis=0)).ravel()
    assert np.abs(rates - trained.targets_.detection_rate).mean() < 0.06
    again = trained.generate(300, n_steps=10, random_state=5, execution=QUIET)
    assert (again.X != gen.X).nnz == 0  # same seed, same cells


def test_per_cell_calibration_spreads_depth_like_the_training_cells() -> None:
    """Training depths are narrow; the one-way calibration inherits the network's spread,
    the two-way one gives the training spread (the statistic it copies)."""
    torch.manual_seed(0)
    adata = make_adata(300, seed=2)
    model = sdd.SDD(adata, hidden=(32, 16), depth_bins=0).train(30, random_state=0, execution=QUIET)
    real = np.asarray((adata.X != 0).sum(axis=1)).ravel()
    spread = {}
    for per_cell in (False, True):
        model.calibrate(300, n_steps=10, random_state=3, execution=QUIET, per_cell=per_cell)
        gen = model.generate(300, n_steps=10, random_state=4, execution=QUIET)
        detected = np.asarray((gen.X != 0).sum(axis=1)).ravel()
        spread[per_cell] = abs(np.quantile(detected, [0.1, 0.9]) - np.quantile(real, [0.1, 0.9]))
    assert spread[True].max() <= 2 and spread[True].sum() < spread[False].sum()


def test_model_saved_without_depths_gets_them_from_its_training_data(tmp_path) -> None:
    adata = make_adata(80)
    model = sdd.SDD(adata, hidden=(16,), depth_bins=2).train(3, execution=QUIET)
    model.save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert "depths" in state["depth"]
    model.depth_ = DepthCondition(2, model.depth_.edges, None, model.depth_.training_bins, None)
    model.save(tmp_path / "old", overwrite=True)  # as older versions saved it
    old = sdd.SDD.load(tmp_path / "old")
    assert old.depth_.depths is None
    with pytest.raises(ValueError, match="per_cell=False"):
        old.calibrate(20, n_steps=3, execution=QUIET)
    old.calibrate(20, n_steps=3, execution=QUIET, per_cell=False)  # thresholds only: fine
    assert old.generate(10, n_steps=3, execution=QUIET).n_obs == 10
    attached = sdd.SDD.load(tmp_path / "old", adata)
    np.testing.assert_array_equal(attached.depth_.depths, (adata.X != 0).sum(axis=1).A1)


@pytest.mark.parametrize("per_cell", [False, True])
def test_stored_thresholds_are_the_ones_the_bits_were_compared_with(trained, per_cell) -> None:
    """``layers["sb_thresholds"]`` (what ``sdd.pl.sparsity_bits`` draws against): an entry
    is expressed exactly where its SB value exceeds its threshold and its value is
    positive, per gene and per cell alike."""
    trained.calibrate(200, n_steps=5, random_state=1, execution=QUIET, per_cell=per_cell)
    gen = trained.generate(200, random_state=2, execution=QUIET, store_dense=True)
    above = gen.layers["sb_logits"] > gen.layers["sb_thresholds"]
    expressed = gen.X.toarray() != 0
    np.testing.assert_array_equal(expressed, above & (gen.layers["dense"] > 0))
    per_gene = np.ptp(gen.layers["sb_thresholds"], axis=0).max()
    assert (per_gene > 0) == per_cell  # per-cell cuts move a gene's threshold between cells
    raw = trained.generate(20, random_state=2, execution=QUIET, store_dense=True, calibrated=False)
    assert "sb_thresholds" not in raw.layers
