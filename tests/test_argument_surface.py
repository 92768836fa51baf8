"""The argument surface, property-based: every public entry point turns a wrong type or an
out-of-range value into a ``TypeError`` or ``ValueError`` that names the argument, before
any work (never another exception, a hang or a silent success).

Each strategy draws only invalid values of its argument (valid ones could be costly,
e.g. ``max_steps=10**6``), so a call that returns is a silent success and fails the test.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from conftest import QUIET, make_counts_adata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdd

SURFACE = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TEXT = st.text(min_size=1, max_size=4)
NOT_A_NUMBER = st.one_of(TEXT, st.lists(st.integers(0, 3), min_size=1, max_size=2),
                         st.dictionaries(TEXT, st.integers(), min_size=1, max_size=1))  # fmt: skip
BAD_POSITIVE_INT = st.one_of(
    st.integers(-(10**6), 0), st.floats(0.5, 1e3).filter(lambda v: v != int(v)), st.booleans(),
    st.just(float("nan")), NOT_A_NUMBER,
)  # fmt: skip
BAD_COUNT = st.one_of(st.integers(-(10**6), 0), st.booleans(), NOT_A_NUMBER,
                      st.floats(0.5, 10).filter(lambda v: v != int(v)))  # fmt: skip
BAD_FRACTION = st.one_of(st.floats(1.0001, 1e6), st.floats(-1e6, -1e-4), st.just(float("nan")),
                         st.booleans(), NOT_A_NUMBER)  # fmt: skip
BAD_NONNEGATIVE = st.one_of(st.floats(-1e6, -1e-4), st.just(float("nan")), st.just(float("inf")),
                            st.booleans(), NOT_A_NUMBER)  # fmt: skip
BAD_SEED = st.one_of(st.integers(-(10**6), -1), st.floats(0.5, 10).filter(lambda v: v != int(v)),
                     st.booleans(), NOT_A_NUMBER)  # fmt: skip
BAD_FINITE = st.one_of(st.just(float("nan")), st.just(float("inf")), st.booleans(), NOT_A_NUMBER)
BAD_CHOICE = st.one_of(TEXT.filter(lambda s: s not in {"ddpm", "ddim", "knn", "x0"}),
                       st.integers(), st.booleans())  # fmt: skip


@pytest.fixture(scope="module")
def data() -> ad.AnnData:
    adata = make_counts_adata(n_cells=40, n_genes=8)
    sdd.SDD.setup_anndata(adata)
    return adata


@pytest.fixture(scope="module")
def model(data) -> sdd.SDD:
    return sdd.SDD(data, hidden=(8,), emb_dim=4).train(2, batch_size=16, execution=QUIET)


def assert_names(call, name: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert name in str(info.value), f"{name}: {info.value!r}"


CASES = {  # entry point -> {argument: strategy of invalid values}
    "SDD": {"hidden": st.one_of(TEXT, st.just(()), st.lists(st.integers(-5, 0), min_size=1)),
            "emb_dim": BAD_POSITIVE_INT, "dropout": BAD_FRACTION, "depth_bins": BAD_SEED,
            "zero_fill": BAD_CHOICE, "recipe": BAD_CHOICE},
    "train": {"max_steps": BAD_POSITIVE_INT, "batch_size": BAD_POSITIVE_INT, "lr": BAD_NONNEGATIVE,
              "ema_decay": BAD_FRACTION, "random_state": BAD_SEED},
    "generate": {"n_cells": BAD_COUNT, "n_steps": BAD_POSITIVE_INT, "batch_size": BAD_POSITIVE_INT,
                 "sampler": BAD_CHOICE, "random_state": BAD_SEED, "guidance_scale": BAD_FINITE},
    "calibrate": {"n_cells": BAD_COUNT, "n_steps": BAD_POSITIVE_INT, "sampler": BAD_CHOICE,
                  "value_weight": BAD_FRACTION, "random_state": BAD_SEED},
    "impute": {"n_steps": BAD_POSITIVE_INT, "random_state": BAD_SEED},
    "tl.fit": {"max_steps": BAD_POSITIVE_INT, "batch_size": BAD_POSITIVE_INT, "random_state": BAD_SEED},
    "tl.generate": {"n_cells": BAD_COUNT, "n_steps": BAD_POSITIVE_INT},
    "tl.evaluate": {"n_cells": BAD_COUNT, "n_comps": BAD_POSITIVE_INT, "min_cells": BAD_POSITIVE_INT,
                    "classifier": BAD_CHOICE, "random_state": BAD_SEED},
    "SDDBlackout": {"hidden": st.one_of(TEXT, st.just(())), "emb_dim": BAD_POSITIVE_INT,
                    "n_times": BAD_POSITIVE_INT},
    "SDDImage": {"base_channels": BAD_POSITIVE_INT, "dropout": BAD_FRACTION},
}  # fmt: skip


def moved(kw: dict, names: set[str], target: str) -> dict:
    """``kw`` with the options ``names`` inside the dict argument ``target`` (tl.fit's
    ``train_kwargs``, tl.evaluate's ``metric_kwargs``)."""
    inner = {k: v for k, v in kw.items() if k in names}
    rest = {k: v for k, v in kw.items() if k not in names}
    return {**rest, target: inner} if inner else rest


def entry(name: str, data: ad.AnnData, model: sdd.SDD):
    """A call of entry point ``name`` with one argument replaced."""
    fast = {"execution": QUIET}
    images = np.random.default_rng(0).integers(0, 3, (8, 1, 8, 8))
    blackout_data = make_counts_adata(n_cells=20, n_genes=6)
    return {
        "SDD": lambda **kw: sdd.SDD(data, **{"hidden": (8,), "emb_dim": 4, **kw}),
        "train": lambda **kw: model.train(**{"max_steps": 1, **fast, **kw}),
        "generate": lambda **kw: model.generate(**{"n_cells": 2, "n_steps": 1, **fast, **kw}),
        "calibrate": lambda **kw: model.calibrate(**{"n_cells": 4, "n_steps": 1, **fast, **kw}),
        "impute": lambda **kw: model.impute(
            data[:3].copy(), [data.var_names[0]], **{"n_steps": 1, **fast, **kw}
        ),
        "tl.fit": lambda **kw: sdd.tl.fit(data.copy(), **{"max_steps": 1, "hidden": (8,),
                                                         "calibrate": False, **fast,
                                                         **moved(kw, {"batch_size"}, "train_kwargs")}),
        "tl.generate": lambda **kw: sdd.tl.generate(**{"n_cells": 2, "n_steps": 1, "model": model,
                                                       **fast, **kw}),
        "tl.evaluate": lambda **kw: sdd.tl.evaluate(
            data, data, **moved(kw, {"n_comps", "min_cells", "classifier"}, "metric_kwargs")
        ),
        "SDDBlackout": lambda **kw: sdd.SDDBlackout(blackout_data, **{"hidden": (8,), **kw}),
        "SDDImage": lambda **kw: sdd.SDDImage(images, unet_kwargs={"base_channels": 4, **kw}),
    }[name]  # fmt: skip


@pytest.mark.parametrize(("point", "argument"), [(p, a) for p, args in CASES.items() for a in args])
def test_invalid_values_name_their_argument(point, argument, data, model):
    call = entry(point, data, model)

    @SURFACE
    @given(value=CASES[point][argument])
    def check(value):
        assert_names(lambda: call(**{argument: value}), argument)

    check()
