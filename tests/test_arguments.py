"""Nothing lost, round two: the argument surface, the lock, and outputs refused before work.

Every public entry point turns wrong types and out-of-range values into a ``TypeError`` or
``ValueError`` naming the argument (property tests with hypothesis), through one schema
(:mod:`sdd.model._schema`) that also guards ``load``.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import QUIET, make_counts_adata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdd
from sdd.model._schema import MODEL_ARGS, check_args

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.integers(-3, 3), max_size=3), st.tuples(st.floats(-2, 70), st.integers(1, 9)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)  # fmt: skip


# ---------------------------------------------------------------- the lock
def test_lock_never_follows_a_symlink(tmp_path, adata):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / ".m.lock")
    model = sdd.SDD(adata, hidden=(8,), emb_dim=4)
    with pytest.raises(FileExistsError, match="symbolic link"):
        model.save(tmp_path / "m")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- model arguments
@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"hidden": "64"}, TypeError, "hidden"),
        ({"hidden": (64.5, 32)}, TypeError, "hidden"),
        ({"hidden": ()}, ValueError, "hidden"),
        ({"hidden": (0, 4)}, ValueError, "hidden"),
        ({"emb_dim": 0}, ValueError, "emb_dim"),
        ({"emb_dim": -3}, ValueError, "emb_dim"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"sparsity_bits": "no"}, TypeError, "sparsity_bits"),
        ({"self_condition": 1}, TypeError, "self_condition"),
        ({"diffusion_kwargs": {"logsnr_min": 5.0, "logsnr_max": 1.0}}, ValueError, "logsnr_min"),
        ({"diffusion_kwargs": {"prediction": "eps"}}, ValueError, "prediction"),
        ({"diffusion_kwargs": {"logsnr": 1.0}}, TypeError, "diffusion_kwargs has unknown option"),
    ],
)
def test_bad_model_arguments_name_themselves(adata, kwargs, error, name):
    with pytest.raises(error, match=name):
        sdd.SDD(adata, **kwargs)


@FAST
@given(name=st.sampled_from(sorted(MODEL_ARGS)), value=ANYTHING)
def test_schema_accepts_or_names_the_argument(name, value):
    """Any value either passes the rule or raises TypeError/ValueError naming it."""
    try:
        checked = check_args({name: value})
    except (TypeError, ValueError) as err:
        assert name in str(err)
    else:
        if value is not None:
            assert MODEL_ARGS[name].check(name, checked[name]) == checked[name]


@FAST
@given(value=ANYTHING)
def test_generate_random_state_is_checked(trained_model, value):
    try:
        trained_model.generate(2, random_state=value, n_steps=1, execution=QUIET)
    except (TypeError, ValueError) as err:
        assert "random_state" in str(err)


def test_tampered_config_meets_the_same_checks(tmp_path, adata):
    model = sdd.SDD(adata, hidden=(8,), emb_dim=4).train(2, execution=QUIET)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["init_args"]["hidden"] = [64.7, 32]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden"):
        sdd.SDD.load(tmp_path / "m")


# ---------------------------------------------------------------- data
@pytest.mark.parametrize("dtype", [np.bool_, np.float16])
def test_bool_and_float16_matrices_are_refused_at_setup(dtype):
    adata = make_counts_adata()
    dense = adata.X.toarray().astype(dtype)
    adata.X = dense if dtype == np.float16 else sp.csr_matrix(dense)  # no sparse float16
    with pytest.raises(TypeError, match="float32"):
        sdd.SDD.setup_anndata(adata)


def test_values_beyond_float32_are_refused():
    adata = make_counts_adata()
    X = adata.X.toarray().astype(np.float64)
    X[0, 0] = 1e300
    adata.X = X
    with pytest.raises(ValueError, match="float32"):
        sdd.SDD.setup_anndata(adata)


def test_covariate_keys_as_a_string_is_a_type_error(adata):
    with pytest.raises(TypeError, match=r"\['cell_type'\]"):
        sdd.SDD.setup_anndata(adata, categorical_covariate_keys="cell_type")


def test_diverging_training_warns(adata):
    model = sdd.SDD(adata, hidden=(16,), emb_dim=8)
    with pytest.warns(UserWarning, match="diverged"):
        model.train(60, lr=1e3, execution=QUIET)


def test_normal_training_does_not_warn(adata):
    model = sdd.SDD(adata, hidden=(16,), emb_dim=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.train(30, execution=QUIET)


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("where", ["not_a_model", "under_a_file"])
def test_cli_fit_refuses_an_unsavable_output_before_training(tmp_path, where, capsys):
    from sdd.cli import main

    data = tmp_path / "cells.h5ad"
    make_counts_adata().write_h5ad(data)
    if where == "not_a_model":
        out = tmp_path / "folder"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "m"
    code = main(["fit", str(data), "-o", str(out), "--overwrite", "--max-steps", "100000", "-q"])
    assert code != 0
    err = capsys.readouterr().err
    assert "cannot save the model" in err and len(err.strip().splitlines()) == 1
    if where == "not_a_model":
        assert (out / "notes.txt").read_text() == "mine"


def test_load_reads_config_and_weights_of_one_generation(tmp_path, monkeypatch):
    """A save that swaps the directory between the two reads of a load (the race of a
    load during a save) cannot pair one generation's config with the other's weights."""
    from sdd.io import checkpoint

    path = tmp_path / "m"
    path.mkdir()
    (path / "config.json").write_bytes(b"config-1")
    (path / "model.pt").write_bytes(b"weights-1")
    real_fdopen, calls = os.fdopen, []

    def swap_after_first_read(fd, *args, **kwargs):
        calls.append(fd)
        if len(calls) == 1:  # config open, weights not yet: a save swaps the directory
            os.replace(path, tmp_path / "old")
            path.mkdir()
            (path / "config.json").write_bytes(b"config-2")
            (path / "model.pt").write_bytes(b"weights-2")
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", swap_after_first_read)
    assert checkpoint._read_generation(path) == (b"config-1", b"weights-1")


def test_deeply_nested_config_is_a_clear_error(tmp_path, adata):
    sdd.SDD(adata, hidden=(8,), emb_dim=4).save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="Corrupt"):
        sdd.SDD.load(tmp_path / "m")


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "x.h5ad", "--max-steps", "abc", "--out", "m"],
        ["generate", "m", "--sampler", "foo"],
        ["fit"],
    ],
)
def test_cli_usage_errors_are_one_line(argv, capsys):
    from sdd.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--help" in err


# ----------------------------------------------------------------------- output files
def test_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    from sdd.io.atomic import atomic_path

    target = tmp_path / "out.h5ad"
    dead = subprocess_pid_that_exited()
    stale = tmp_path / f".out.h5ad.tmp-{dead}-abc.h5ad"
    live = tmp_path / f".out.h5ad.tmp-{os.getpid()}-xyz.h5ad"  # a writer still running
    other = tmp_path / f".other.h5ad.tmp-{dead}-abc.h5ad"  # another target's
    for leftover in (stale, live, other):
        leftover.write_text("partial")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert not stale.exists() and live.exists() and other.exists()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def test_write_onto_a_dangling_symlink_is_refused_before_the_work(tmp_path):
    from sdd.io.atomic import write_h5ad

    link = tmp_path / "out.h5ad"
    link.symlink_to(tmp_path / "missing.h5ad")
    adata = make_counts_adata(n_cells=5, n_genes=3)
    with pytest.raises(FileExistsError, match="symbolic link to a missing file"):
        write_h5ad(adata, link)
    assert not (tmp_path / "missing.h5ad").exists()
    write_h5ad(adata, link, overwrite=True)  # replaces the link itself
    assert not link.is_symlink() and not (tmp_path / "missing.h5ad").exists()


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), RuntimeError("Can't write data (file write failed: "
     "errno = 28, error message = 'No space left on device')")],
)  # fmt: skip
def test_full_disk_is_named_with_the_path(tmp_path, error):
    import errno

    from sdd.io.atomic import atomic_path

    target = tmp_path / "out.h5ad"
    target.write_text("old")
    with pytest.raises(OSError, match=f"disk full while writing {target}") as info:
        with atomic_path(target, overwrite=True):
            raise error
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_full_disk_during_model_save_is_named_and_keeps_the_old_model(tmp_path, monkeypatch):
    import errno
    import shutil

    import torch

    from sdd.io import checkpoint

    adata = make_counts_adata(n_cells=40, n_genes=8)
    model = sdd.SDD(adata, hidden=(16,), emb_dim=8)
    model.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.pt").read_bytes()

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=1024))
    with pytest.raises(OSError, match="disk full while saving the model to .*MiB are free") as info:
        model.save(tmp_path / "m", overwrite=True)
    assert info.value.errno == errno.ENOSPC
    assert (tmp_path / "m" / "model.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.tmp")] == []


FAILING_WRITE = """
import resource, signal, sys
import sdd.cli
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000))
sys.exit(sdd.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX file-size limit")
def test_generate_whose_file_writes_fail_exits_cleanly_and_keeps_the_old_file(tmp_path):
    """Writes that fail half-way (here: a file-size limit; on a full disk: ENOSPC) give one
    error line and exit code 1: no HDF5 tracebacks, no crash, the old output intact."""
    import subprocess
    import sys

    adata = make_counts_adata(n_cells=200, n_genes=300)
    sdd.SDD.setup_anndata(adata)
    sdd.SDD(adata, hidden=(16,), emb_dim=8).train(2, execution=QUIET).save(tmp_path / "m")
    out = tmp_path / "out.h5ad"
    out.write_text("old")
    argv = ["generate", str(tmp_path / "m"), "-n", "3000", "--n-steps", "2", "-o", str(out),
            "--overwrite"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", FAILING_WRITE, *argv], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("sdd generate: error:")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "out.h5ad"]
