"""Atomic file writes: a temporary name in the target's folder, fsync, rename into place.

A crash, a kill or a full disk at any moment leaves either the previous file or the new
one at the path, never a partial file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "check_output_path", "fsync_dir", "write_csv", "write_h5ad"]


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """The expanded target path; raise before any work if it cannot be written.

    Raises ``FileExistsError`` when ``path`` exists and ``overwrite`` is false, and
    ``FileNotFoundError`` when its folder does not exist.
    """
    path = Path(os.path.expanduser(path))
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist.")
    return path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (the rename) to disk where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over it.

    On any exception (``KeyboardInterrupt`` included) the temporary file is removed and
    ``path`` is untouched. With ``overwrite=False`` the final step links the file into
    place (``os.link`` fails if the name exists), so two writers cannot both win.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = check_output_path(path, overwrite=overwrite)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"{path} appeared while it was being written; nothing was replaced."
                ) from None
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_h5ad(adata: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``adata.write_h5ad`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        adata.write_h5ad(tmp)
    return Path(os.path.expanduser(path))


def write_csv(
    table: Any, path: str | os.PathLike, *, overwrite: bool = False, **kwargs: Any
) -> Path:
    """``table.to_csv`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.to_csv(tmp, **kwargs)
    return Path(os.path.expanduser(path))
