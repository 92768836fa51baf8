"""The measuring parts of ``benchmarks/curves.py``: step clock, bare loop, fits, data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import QUIET

from sdd.nn import SkipMLP

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def curves():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("curves_under_test", BENCH / "curves.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_step_clock_finds_steps_and_self_conditioning_branches(curves):
    net = SkipMLP(4, hidden=(8,), emb_dim=4)
    clock = curves.StepClock(net)
    x, t = torch.zeros(2, 4), torch.zeros(2)
    for self_cond in (True, False, False, True):
        if self_cond:  # a self-conditioning step: a forward without gradients first
            with torch.no_grad():
                net(x, t, x)
        net(x, t, x)
    starts, coins = clock.steps()
    assert coins == [True, False, False, True]
    assert len(starts) == 4 and starts == sorted(starts)
    assert clock.steps() == ([], [])  # the record is consumed
    clock.handle.remove()


@pytest.mark.parametrize("kind", ["SDD", "SDDBlackout"])
def test_bare_loop_trains_a_copy_and_runs_the_package_branches(curves, kind):
    model, data = curves.build_model(kind, 40, 64)
    model.train(1, batch_size=16, execution=QUIET)
    before = [p.detach().clone() for p in model.module.parameters()]
    bare = curves.BareLoop(model, data, 16, torch.device("cpu"))
    clock = curves.StepClock(bare.net)
    starts = bare.run([True, False, True])
    assert len(starts) == 3
    _, coins = clock.steps()
    assert coins == ([True, False, True] if kind == "SDD" else [False, False, False])
    # the copy moved, the model's own weights did not
    assert any(not torch.equal(a, b) for a, b in zip(before, bare.net.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before, model.module.parameters(), strict=True))


def test_synthetic_counts_have_the_requested_density(curves):
    x = curves.synthetic_counts(400, 500, density=0.06, seed=1)
    assert x.shape == (400, 500) and x.dtype == np.float32
    assert abs(x.nnz / (400 * 500) - 0.06) < 0.01
    assert np.all(x.data >= 1) and np.all(x.data == np.round(x.data))


def test_fit_line_recovers_a_line(curves):
    a, b = curves.fit_line([1.0, 2.0, 4.0], [3.0, 5.0, 9.0])
    assert a == pytest.approx(1.0) and b == pytest.approx(2.0)


def test_cost_model_predicts_from_train_rows(curves):
    rows = [
        {
            "spec": {"model": "SDD", "size": g, "batch": 256},
            "result": {"params": 6000 * g},
            "summary": {"package": 1e-9 * g * 1024 * 256, "rss": 2**30 + 40 * 6000 * g},
        }
        for g in (1000, 2000, 4000)
    ]
    fits = curves.cost_models({"train": rows, "generate": []})
    assert fits["SDD"]["b"] == pytest.approx(1e-9)
    assert fits["SDD"]["mem_d"] == pytest.approx(40.0)
    assert fits["SDD"]["param_b"] == pytest.approx(6000.0)
