"""Fault injection: kills, Ctrl-C and a full disk while writing never lose the previous file."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.io.atomic import atomic_path, write_h5ad
from sdd.io.checkpoint import recover, save_dir

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

SRC = str(Path(sdd.__file__).resolve().parents[1])
TESTS = str(Path(__file__).resolve().parent)


#: A child started from a background job inherits SIGINT ignored (POSIX shells do that to
#: background commands), and Python then installs no KeyboardInterrupt handler: each child
#: installs it first, as a terminal's Ctrl-C would find it.
CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _child(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS])}
    return subprocess.Popen(
        [sys.executable, "-c", CTRL_C + textwrap.dedent(code), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    start = time.time()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("child never reached the write")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained tiny model saved at a path, and the cells it generates."""
    torch.manual_seed(0)
    adata = make_counts_adata(n_cells=60, n_genes=10)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, **TINY).train(3, batch_size=16, execution=QUIET)
    path = tmp_path_factory.mktemp("faults") / "model"
    model.save(path)
    return path, model.generate(8, n_steps=2, execution=QUIET).X.toarray()


def _same_model(path: Path, cells: np.ndarray) -> None:
    loaded = sdd.SDD.load(path)
    np.testing.assert_array_equal(loaded.generate(8, n_steps=2, execution=QUIET).X.toarray(), cells)


SLOW_SAVE = """
import sys, time, torch, sdd
from pathlib import Path
import sdd.io.checkpoint as ck
from conftest import TINY, make_counts_adata
path, marker = Path(sys.argv[1]), Path(sys.argv[2])
real_save = torch.save
def slow_save(obj, f, *a, **k):
    real_save(obj, f, *a, **k)
    marker.touch()
    time.sleep(60)
ck.torch.save = slow_save
adata = make_counts_adata(n_cells=60, n_genes=10)
sdd.SDD.setup_anndata(adata)
torch.manual_seed(1)
sdd.SDD(adata, **TINY).save(path, overwrite=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_save_leaves_the_previous_model(saved, tmp_path, sig):
    path, cells = saved
    marker = tmp_path / "writing"
    proc = _child(SLOW_SAVE, str(path), str(marker))
    _wait_for(marker, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    lock = path.parent / f".{path.name}.lock"
    assert lock.exists() == (sig == signal.SIGKILL)  # a SIGKILLed process cannot remove it
    _same_model(path, cells)
    # the lock died with its process: the next save is not blocked, and cleans up
    assert sdd.SDD.load(path).save(path, overwrite=True) is None
    assert not list(path.parent.glob(f".{path.name}.tmp-*")) and not lock.exists()
    _same_model(path, cells)


def test_save_killed_between_its_renames_is_recovered(saved, tmp_path):
    path, cells = saved
    moved = path.parent / f".{path.name}.old-x"
    moved.mkdir()
    os.replace(path, moved / path.name)  # the state right after the first rename
    try:
        _same_model(path, cells)  # load finishes the interrupted swap
    finally:
        if not path.exists():
            os.replace(moved / path.name, path)
    assert path.exists() and not moved.exists()


def test_full_disk_during_save_keeps_the_previous_model(saved):
    path, cells = saved
    code = """
    import resource, signal, sys, torch, sdd
    from conftest import TINY, make_counts_adata
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    adata = make_counts_adata(n_cells=60, n_genes=10)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, hidden=(512, 256), emb_dim=32)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        model.save(sys.argv[1], overwrite=True)
    except OSError as err:
        print("OSError", err)
        sys.exit(3)
    """
    proc = _child(code, str(path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err.decode()[-2000:]
    _same_model(path, cells)
    assert not list(path.parent.glob(f".{path.name}.tmp-*"))


def test_concurrent_saves_one_wins_nothing_deleted(saved, tmp_path):
    path, _ = saved
    model = sdd.SDD.load(path)
    target = tmp_path / "new"
    lock = tmp_path / ".new.lock"
    lock.touch()  # a lock file nobody holds (left by a killed save) does not block
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another save holds the lock
        with pytest.raises(FileExistsError, match="in progress"):
            model.save(target)
        assert not target.exists()
    model.save(target)
    with pytest.raises(FileExistsError, match="already exists"):
        model.save(target)  # the loser of a race with overwrite=False
    assert sdd.SDD.load(target).is_trained_


def test_two_processes_saving_to_one_new_path(saved, tmp_path):
    path, _ = saved
    code = """
    import sys, sdd
    try:
        sdd.SDD.load(sys.argv[1]).save(sys.argv[2])
        print("saved")
    except FileExistsError as err:
        print("refused")
    """
    target = tmp_path / "race"
    procs = [_child(code, str(path), str(target)) for _ in range(2)]
    results = sorted(p.communicate(timeout=120)[0].decode().strip() for p in procs)
    assert results == ["refused", "saved"], results
    assert sdd.SDD.load(target).is_trained_


SLOW_H5AD = """
import sys, time
from pathlib import Path
import sdd.io.atomic
from sdd.cli import main
marker = Path(sys.argv[3])
def slow(path, image):  # the file's bytes half written, then killed
    with open(path, "wb") as f:
        f.write(image.getbuffer()[: len(image.getbuffer()) // 2])
    marker.touch()
    time.sleep(60)
sdd.io.atomic._write_image = slow
sys.exit(main(["generate", sys.argv[1], "-n", "8", "--n-steps", "2", "-o", sys.argv[2], "--overwrite"]))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_generate_overwrite_keeps_the_previous_file(saved, tmp_path, sig):
    path, _ = saved
    out = tmp_path / "gen.h5ad"
    previous = ad.AnnData(np.eye(3, dtype=np.float32))
    write_h5ad(previous, out)
    marker = tmp_path / "writing"
    proc = _child(SLOW_H5AD, str(path), str(out), str(marker))
    _wait_for(marker, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    np.testing.assert_array_equal(ad.read_h5ad(out).X, previous.X)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".gen.h5ad.tmp-")]
    for partial in leftovers:  # only a SIGKILL leaves one, under a hidden temporary name
        assert sig == signal.SIGKILL
        with pytest.raises(Exception):  # noqa: B017 - any reader error: not a result
            ad.read_h5ad(partial)


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    with pytest.raises(FileExistsError), atomic_path(target):
        pass
    with (
        pytest.raises(FileNotFoundError, match="does not exist"),
        atomic_path(tmp_path / "no" / "x"),
    ):
        pass


def test_save_expands_the_home_folder(saved, tmp_path, monkeypatch):
    path, _ = saved
    monkeypatch.setenv("HOME", str(tmp_path))
    sdd.SDD.load(path).save("~/model")
    assert (tmp_path / "model" / "model.pt").is_file() and not Path("~").exists()
    save_dir("~/other", {"a": torch.zeros(1)}, {"model_class": "SDD"}, overwrite=False)
    assert (tmp_path / "other" / "config.json").is_file()


def test_recovery_waits_for_a_running_save(saved, tmp_path):
    """A load while another process saves (path briefly missing) never undoes its swap."""
    path, cells = saved
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    moved = tmp_path / ".model.old-x"
    moved.mkdir()
    os.replace(copy, moved / "model")  # a save between its renames...
    with open(tmp_path / ".model.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # ...that is still running
        recover(copy)
        assert not copy.exists() and (moved / "model").exists()
    recover(copy)  # the save died: now it is finished for it
    assert copy.exists() and not moved.exists()
    _same_model(copy, cells)


TRAIN_AND_SAVE = """
import sys, time, torch, sdd
from pathlib import Path
from conftest import QUIET, make_counts_adata
path, side, marker, phase = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
adata = make_counts_adata(n_cells=60, n_genes=10)
sdd.SDD.setup_anndata(adata)
model = sdd.SDD.load(path, adata)
real_save = torch.save
model.train(3, batch_size=16, execution=QUIET)
real_save(model.module.state_dict(), side / "0.pt")
model.save(path, overwrite=True, with_optimizer=True)  # a complete checkpoint
if phase == "train":  # killed while training towards the next checkpoint
    from sdd.data.loader import MinibatchSampler as Sampler
    real_call = Sampler.__call__
    def call(self):
        if self._calls == 3:
            marker.touch()
        return real_call(self)
    Sampler.__call__ = call
    model.train(10**6, batch_size=16, execution=QUIET)
else:  # killed while writing the next checkpoint
    def slow_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        marker.touch()
        time.sleep(60)
    torch.save = slow_save
    model.train(3, batch_size=16, execution=QUIET)
    model.save(path, overwrite=True, with_optimizer=True)
"""


@pytest.mark.parametrize("phase", ["train", "save"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_training_leaves_the_last_complete_checkpoint(saved, tmp_path, phase, sig):
    path = tmp_path / "model"
    shutil.copytree(saved[0], path)
    marker = tmp_path / "busy"
    proc = _child(TRAIN_AND_SAVE, str(path), str(tmp_path), str(marker), phase)
    _wait_for(marker, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    checkpoint = torch.load(tmp_path / "0.pt", weights_only=True)
    loaded = sdd.SDD.load(path)
    for name, value in loaded.module.state_dict().items():
        torch.testing.assert_close(value, checkpoint[name], rtol=0, atol=0)
    assert len(loaded.history_) == len(sdd.SDD.load(saved[0]).history_) + 3
    for partial in tmp_path.glob(".model.tmp-*"):  # only SIGKILL leaves one: not a model
        assert sig == signal.SIGKILL
        with pytest.raises(ValueError):
            sdd.SDD.load(partial)
    adata = make_counts_adata(n_cells=60, n_genes=10)
    sdd.SDD.setup_anndata(adata)
    sdd.SDD.load(path, adata).train(2, batch_size=16, execution=QUIET).save(path, overwrite=True)
    assert not list(tmp_path.glob(".model.*"))  # lock and leftovers gone


def test_ctrl_c_during_training_rolls_back(saved, tmp_path):
    path, cells = saved
    marker, out = tmp_path / "busy", tmp_path / "after"
    code = """
    import sys, torch, sdd
    from pathlib import Path
    from conftest import QUIET, make_counts_adata
    path, marker, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    adata = make_counts_adata(n_cells=60, n_genes=10)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD.load(path, adata)
    before = [v.clone() for v in [*model.module.state_dict().values(), *model.ema_.model.state_dict().values()]]
    rows, updates = len(model.history_), model.ema_.n_updates
    from sdd.data.loader import MinibatchSampler as Sampler
    real_call = Sampler.__call__
    def call(self):
        if self._calls == 5:
            marker.touch()
        return real_call(self)
    Sampler.__call__ = call
    try:
        model.train(10**6, batch_size=16, execution=QUIET)
    except KeyboardInterrupt:
        after = [*model.module.state_dict().values(), *model.ema_.model.state_dict().values()]
        same = all(torch.equal(a, b) for a, b in zip(before, after))
        same = same and len(model.history_) == rows and model.ema_.n_updates == updates
        model.save(out)
        print("restored" if same else "changed")
        sys.exit(0)
    print("not interrupted")
    """
    proc = _child(code, str(path), str(marker), str(out))
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert stdout.decode().strip() == "restored"
    _same_model(out, cells)
