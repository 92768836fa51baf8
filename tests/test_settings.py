"""sdd.settings (verbosity on the "sdd" logger) and the raw-counts warning of the data checks."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import QUIET, make_counts_adata

import sdd
from sdd.data.validate import looks_like_counts, warn_if_raw_counts

LOGGER = logging.getLogger("sdd")


@pytest.fixture(autouse=True)
def _restore_level():
    before = LOGGER.level
    yield
    LOGGER.setLevel(before)


@pytest.mark.parametrize(
    ("value", "level", "number"),
    [
        (0, logging.ERROR, 0),
        ("warning", logging.WARNING, 1),
        (2, logging.INFO, 2),
        ("hint", 15, 3),
        ("DEBUG", logging.DEBUG, 4),
    ],
)
def test_verbosity_sets_the_logger_level(value, level, number):
    sdd.settings.verbosity = value
    assert LOGGER.level == level
    assert sdd.settings.verbosity == number
    assert sdd.settings.logger is LOGGER


def test_verbosity_follows_the_logger_and_rejects_bad_values():
    LOGGER.setLevel(logging.DEBUG)  # set through logging: settings reads it back
    assert sdd.settings.verbosity == 4
    LOGGER.setLevel(logging.CRITICAL)
    assert sdd.settings.verbosity == 0
    for bad, error in ((5, ValueError), (-1, ValueError), ("loud", ValueError),
                       (True, TypeError), (2.0, TypeError)):  # fmt: skip
        with pytest.raises(error, match="verbosity"):
            sdd.settings.verbosity = bad
    assert LOGGER.level == logging.CRITICAL  # a rejected value changes nothing
    assert "verbosity=0" in repr(sdd.settings)


def test_verbosity_filters_messages(caplog):
    caplog.set_level(logging.NOTSET)  # capture whatever the sdd logger lets through
    sdd.settings.verbosity = "warning"
    LOGGER.info("hidden")
    LOGGER.warning("shown")
    sdd.settings.verbosity = "info"
    LOGGER.info("now shown")
    LOGGER.debug("still hidden")
    assert [r.getMessage() for r in caplog.records] == ["shown", "now shown"]


def test_override_restores_the_level():
    sdd.settings.verbosity = 1
    with sdd.settings.override(verbosity="debug"):
        assert sdd.settings.verbosity == 4
    assert sdd.settings.verbosity == 1
    with pytest.raises(RuntimeError), sdd.settings.override(verbosity=0):
        raise RuntimeError
    assert sdd.settings.verbosity == 1


def test_messages_reach_stderr_without_logging_setup(capsys, monkeypatch):
    # no handler on the root logger (a plain script): the sdd handler writes to stderr once
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    sdd.settings.verbosity = "info"
    LOGGER.info("generated %d cells", 5)
    LOGGER.debug("not at info")
    err = capsys.readouterr().err
    assert err.count("generated 5 cells") == 1 and "not at info" not in err


def test_generate_reports_through_the_logger(trained_model, caplog):
    caplog.set_level(logging.NOTSET)
    sdd.settings.verbosity = "warning"
    sdd.tl.generate(4, model=trained_model, execution=QUIET)
    assert not [r for r in caplog.records if r.name == "sdd" and r.levelno < logging.WARNING]
    sdd.settings.verbosity = "info"
    sdd.tl.generate(4, model=trained_model, execution=QUIET)
    assert any("generated 4 cells" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ raw counts
def _counts(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.negative_binomial(2, 0.02, (60, 30)).astype(np.float32)  # max far above 20


def test_raw_counts_warn():
    counts = _counts()
    for matrix in (counts, sp.csr_matrix(counts), counts.astype(np.int64)):
        assert looks_like_counts(matrix)[0]
        with pytest.warns(UserWarning, match=r"raw counts.*normalize_total.*log1p.*counts_layer"):
            assert warn_if_raw_counts(matrix, where="adata.layers['raw']")


def test_log_data_and_small_integers_do_not_warn():
    counts = _counts()
    normalised = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    binary = (counts > 0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for matrix in (normalised, sp.csr_matrix(np.log1p(counts)), binary, np.zeros((4, 3))):
            assert not warn_if_raw_counts(matrix)
    # one non-integer value among the first rows is enough to tell, in any chunk of them
    almost = np.vstack([counts] * 6)
    almost[300, 0] = 0.5
    assert not looks_like_counts(almost)[0]
    assert looks_like_counts(almost, n_rows=256)[0]  # only the rows it is asked to read


def test_setup_anndata_on_log_data_does_not_warn():
    adata = make_counts_adata()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdd.SDD.setup_anndata(adata)
        sdd.SDDBlackout.setup_anndata(adata, layer="counts")  # wants counts: never warns


def test_setup_anndata_on_raw_counts_warns():
    adata = make_counts_adata()
    rng = np.random.default_rng(0)
    adata.X = sp.csr_matrix(rng.negative_binomial(2, 0.05, size=adata.shape).astype(np.float32))
    with pytest.warns(UserWarning, match="raw counts"):
        sdd.SDD.setup_anndata(adata)
