"""Model directories: ``model.pt`` + ``config.json``, written atomically, checksummed.

Also the pieces of ``model.pt`` that are not plain weights: the loss history, the
training state moved to the CPU, and the check of saved weights against the network a
``config.json`` describes.

``model.pt`` holds only tensors and plain Python containers, so it loads with
``torch.load(weights_only=True)``; ``config.json`` holds the metadata needed to rebuild
the model (package version, class, init and setup arguments, genes, label categories).
The directory is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written model.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from .atomic import fsync_dir

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
FORMAT = "sdd-model"
FORMAT_VERSION = 1


def _hash(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(file: Path) -> None:
    with open(file, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold the lock of ``path``: one save (or recovery) of a model directory at a time.

    The lock is ``flock`` on ``.NAME.lock`` beside ``path``. The kernel releases it when
    the holder exits in any way, SIGKILL included, so a crashed save never blocks later
    ones; the file is removed on release. Without ``fcntl`` (Windows) the file itself
    is the lock (exclusive create), and one left by a killed process must be removed by
    hand. Raises ``FileExistsError`` while another process holds it.
    """
    lock = path.parent / f".{path.name}.lock"
    busy = FileExistsError(
        f"Another save to {path} is in progress (it holds {lock}); try again when it is done."
    )
    if fcntl is None:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW)
        except FileExistsError:
            raise FileExistsError(f"{busy} If no save is running, remove {lock}.") from None
    else:
        for _ in range(100):
            fd = _open_lock(lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise busy from None
            # a save that just finished unlinks the file: it must still be the one we locked
            try:
                if os.path.samestat(os.fstat(fd), os.stat(lock)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        else:
            raise busy
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still holding it (see the stat check above)
        os.close(fd)


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_lock(lock: Path) -> int:
    """Open (or create) the lock file itself, never what a symbolic link there points to:
    a link planted at the lock's name would otherwise make the save overwrite its target."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as err:
        if lock.is_symlink():
            raise FileExistsError(
                f"{lock} is a symbolic link, not a lock file; remove it to save here."
            ) from None
        raise err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileExistsError(f"{lock} is not a regular file; remove it to save here.")
    return fd


def _leftovers(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.{kind}-*"))


def recover(path: str | os.PathLike) -> None:
    """Finish a save that was killed between its two renames.

    If ``path`` is missing and a complete earlier model sits in ``.NAME.old-*``, it is
    moved back (under the save lock; nothing is done while a save is in progress, as
    that save finishes its own swap); nothing is deleted.
    """
    path = Path(os.path.expanduser(path))
    if path.exists() or not _leftovers(path, "old"):
        return
    try:
        with _lock(path):
            _recover_locked(path)
    except FileExistsError:  # a save holds the lock
        return


def _recover_locked(path: Path) -> None:
    if path.exists():
        return
    for old in _leftovers(path, "old"):
        inner = old / path.name
        if _is_model_dir(inner) and (inner / WEIGHTS_FILE).is_file():
            os.replace(inner, path)
            fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
            return


def save_dir(
    path: str | os.PathLike, state: dict[str, Any], config: dict[str, Any], *, overwrite: bool
) -> Path:
    """Write ``state`` (torch) and ``config`` (JSON) into the directory ``path`` atomically.

    The files are written and fsynced in ``.NAME.tmp-*`` beside the target, then renamed
    into place under an exclusive lock (released by the kernel if the process dies, so a
    killed save never blocks later ones). A crash at any moment leaves the old or the new
    model at ``path`` (a save killed between its two renames is completed by the next
    :func:`save_dir`, :func:`load_dir` or :func:`recover`); leftovers of crashed saves are
    removed by the next save. Only a directory that holds an sdd model is ever replaced.
    """
    path = Path(os.path.expanduser(path))
    _check_target(path, overwrite)  # fail early; checked again under the lock
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    json.dumps(config)  # fail before touching the disk if not serialisable
    with _lock(path):
        _recover_locked(path)
        _check_target(path, overwrite)
        stale = _leftovers(path, "tmp") + (_leftovers(path, "old") if _is_model_dir(path) else [])
        for leftover in stale:  # of saves killed earlier: the lock says none is running
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a normal mode
            try:
                torch.save(state, tmp / WEIGHTS_FILE)
            except RuntimeError as err:  # torch reports a failed write (e.g. a full disk) so
                raise _write_error(path, state, err) from err
            _fsync_file(tmp / WEIGHTS_FILE)
            config["weights_sha256"] = _hash(tmp / WEIGHTS_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
            _fsync_file(tmp / CONFIG_FILE)
            fsync_dir(tmp)
            _check_target(path, overwrite)  # again: something may have appeared meanwhile
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                fsync_dir(path.parent)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
                fsync_dir(path.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def _tensor_bytes(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, Mapping):
        return sum(_tensor_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(_tensor_bytes(v) for v in state)
    return 0


def _write_error(path: Path, state: Any, err: BaseException) -> OSError:
    """torch's failed write as an ``OSError``; a full disk (less free space than the
    tensors need) named as such, since torch's message does not say it."""
    needed, free = _tensor_bytes(state), shutil.disk_usage(path.parent).free
    if free < needed:
        return OSError(
            errno.ENOSPC,
            f"disk full while saving the model to {path}: it needs about "
            f"{needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free",
        )
    return OSError(f"Could not write {path / WEIGHTS_FILE}: {err}")


def check_save_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Raise now what :func:`save_dir` would raise at the end (before hours of training):
    an existing path without ``overwrite``, a non-model directory, a path under a regular
    file, or a folder this process cannot write into."""
    path = Path(os.path.expanduser(path))
    _check_target(path, overwrite)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{path} lies under {parent}, which is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write into {parent} (read-only or no permission).")
    return path


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory.")
    if path.exists() and any(path.iterdir()) and not _is_model_dir(path):
        raise ValueError(
            f"{path} is a directory that does not hold an sdd model; refusing to replace it "
            "even with overwrite=True. Choose a new path."
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_model_dir(path: Path) -> bool:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def _read_generation(path: Path) -> tuple[bytes, bytes]:
    """``config.json`` and ``model.pt`` as bytes, read through one open handle of the
    directory: a save that swaps the directory meanwhile cannot pair the config of one
    generation with the weights of another."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    if not hasattr(os, "O_DIRECTORY") or os.open not in os.supports_dir_fd:
        return (path / CONFIG_FILE).read_bytes(), (path / WEIGHTS_FILE).read_bytes()
    directory = os.open(path, flags)
    try:
        out = []
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            fd = os.open(name, os.O_RDONLY, dir_fd=directory)
            with os.fdopen(fd, "rb") as f:
                out.append(f.read())
        return out[0], out[1]
    finally:
        os.close(directory)


def load_dir(path: str | os.PathLike, *, model_class: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a directory written by :func:`save_dir`; clear errors for foreign or corrupt ones.

    The weights' SHA-256 recorded in ``config.json`` is checked before they are read.
    """
    path = Path(os.path.expanduser(path))
    recover(path)
    if not path.is_dir():
        raise ValueError(f"No saved model directory at {path}.")
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise ValueError(
            f"{path} is not an sdd model directory (expected {CONFIG_FILE} and {WEIGHTS_FILE})."
        )
    config_bytes, weights_bytes = _read_generation(path)
    try:
        config = json.loads(config_bytes.decode())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"Corrupt {config_file}: {str(err)[:200]}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by sdd (config.json has no sdd format tag).")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"Corrupt {config_file}: format_version {version!r} is not an integer.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses format version {config['format_version']}; this sdd reads up to "
            f"{FORMAT_VERSION}. Upgrade sdd."
        )
    if config.get("model_class") != model_class:
        raise ValueError(
            f"{path} holds a {config.get('model_class')!r} model, not {model_class!r}."
        )
    expected = config.get("weights_sha256")
    if expected is not None and hashlib.sha256(weights_bytes).hexdigest() != expected:
        raise ValueError(
            f"Corrupt model directory {path}: weights checksum mismatch in {WEIGHTS_FILE} "
            "(the file is corrupted or was changed after saving)."
        )
    try:
        state = torch.load(io.BytesIO(weights_bytes), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ValueError(f"Corrupt or unreadable weights file {weights_file}: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"Corrupt weights file {weights_file}: expected a dict.")
    return state, config


# ------------------------------------------------------------------ what model.pt holds
def to_cpu(value: Any) -> Any:
    """``value`` with every tensor (in nested dicts, lists, tuples) detached and on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def history_to_state(history: pd.DataFrame) -> dict[str, torch.Tensor]:
    """The columns of a loss history as float64 tensors, as stored in ``model.pt``."""
    return {str(c): torch.as_tensor(history[c].to_numpy(dtype=np.float64)) for c in history}


def history_from_state(tensors: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Inverse of :func:`history_to_state` (``step`` and ``epoch`` as integers).

    Examples
    --------
    >>> h = pd.DataFrame({"step": [1, 2], "epoch": [0, 0], "loss": [0.5, 0.25]})
    >>> history_from_state(history_to_state(h)).equals(h)
    True
    """
    history = pd.DataFrame({k: v.numpy() for k, v in tensors.items()})
    whole = [c for c in ("step", "epoch") if c in history]
    history[whole] = history[whole].astype(np.int64)
    return history


def check_state_shapes(
    expected: Mapping[str, tuple[int, ...]], saved: Mapping[str, torch.Tensor]
) -> None:
    """Raise a ValueError naming the first weight whose name or shape differs."""
    got = {k: tuple(v.shape) for k, v in saved.items()}
    if dict(expected) != got:
        diff = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        key = diff[0]
        raise ValueError(
            f"config.json does not match model.pt: the network it describes has "
            f"{key!r} {expected.get(key)}, the saved weights {got.get(key)}."
        )
