"""``benchmarks/fidelity.py``: a recipe's calibration options reach ``SDD.calibrate``."""

from __future__ import annotations

import importlib.util
from argparse import Namespace
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def fidelity():
    import sys

    if str(BENCH) not in sys.path:  # the scripts import their shared module, _common
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("fidelity_under_test", BENCH / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(n: int = 80, genes: int = 12) -> ad.AnnData:
    rng = np.random.default_rng(0)
    x = np.where(rng.random((n, genes)) < 0.3, rng.uniform(0.5, 2.0, (n, genes)), 0.0)
    adata = ad.AnnData(sp.csr_matrix(x.astype(np.float32)))
    adata.var_names = [f"g{i}" for i in range(genes)]
    return adata


@pytest.mark.parametrize(
    ("calibration", "sampler", "weight"),
    [(True, "ddim", 0.75), ({"sampler": "ddpm", "value_weight": 0.25}, "ddpm", 0.25)],
)
def test_recipe_calibration_options_are_used(fidelity, monkeypatch, calibration, sampler, weight):
    """A dict of calibrate() arguments in a recipe is passed on (it once collapsed to the
    defaults), and generation samples as the calibration did."""
    recipe = ({"hidden": (16,), "depth_bins": 2}, {"calibrate": calibration})
    monkeypatch.setitem(fidelity.RECIPES, "tiny", recipe)
    args = Namespace(
        steps=3, seed=0, accelerator="cpu", value_weights=[], sampling_steps=3, model_dir=None
    )
    calls = []
    monkeypatch.setattr(
        fidelity.sdd.SDD, "calibrate",
        lambda self, *a, _orig=fidelity.sdd.SDD.calibrate, **kw: (
            calls.append(kw), _orig(self, *a, **{**kw, "n_cells": 40, "n_steps": 3})
        )[1],
    )  # fmt: skip
    torch.manual_seed(0)
    [(suffix, gen, _, _)] = list(fidelity.run_sdd(_cells(), 20, "tiny", args))
    assert suffix == "" and gen.n_obs == 20 and len(calls) == 1
    assert gen.uns["sdd"]["sampler"] == sampler and gen.uns["sdd"]["calibrated"] is True
    assert calls[0].get("value_weight", 0.75) == weight
