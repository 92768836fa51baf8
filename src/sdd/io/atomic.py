"""Atomic file writes: a temporary name in the target's folder, fsync, rename into place.

A crash, a kill or a full disk at any moment leaves either the previous file or the new
one at the path, never a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
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
    if path.is_symlink() and not overwrite:
        raise FileExistsError(
            f"{path} is a symbolic link to a missing file; remove it or pass overwrite=True "
            "(which replaces the link, not its target)."
        )
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
    ``path`` is untouched; a full disk is reported as ``OSError(ENOSPC)`` naming ``path``.
    With ``overwrite=False`` the final step links the file into place (``os.link`` fails
    if the name exists), so two writers cannot both win. The temporary name carries the
    writer's process id; temporaries of ``path`` left by a killed writer (a process that
    no longer runs on this machine) are removed by the next write to ``path``.

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
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(
        prefix=f"{_temporary_prefix(path)}{os.getpid()}-", suffix=path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
        except Exception as err:
            if _disk_full(err):
                raise OSError(
                    errno.ENOSPC, f"disk full while writing {path} (No space left on device)"
                ) from err
            raise
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


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` whose writer (the process id in their name) no
    longer runs; return them. Temporaries of a running writer are left alone."""
    prefix = _temporary_prefix(path)
    removed = []
    for entry in path.parent.glob(glob.escape(prefix) + "*"):
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it wraps, e.g. from h5py) is a full disk."""
    while err is not None:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_h5ad(adata: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``adata.write_h5ad`` atomically (see :func:`atomic_path`).

    An in-memory AnnData is encoded in memory first (an HDF5 image of the file) and then
    written with plain file I/O, so a full disk is one ``OSError(ENOSPC)`` naming ``path``
    and HDF5 never holds a file whose writes failed (h5py can crash the interpreter when
    such a file is released). This needs memory for one copy of the file; a backed AnnData
    is written by anndata directly.
    """
    check_output_path(path, overwrite=overwrite)
    image = None if getattr(adata, "isbacked", False) else h5ad_image(adata)
    with atomic_path(path, overwrite=overwrite) as tmp:
        if image is None:
            adata.write_h5ad(tmp)
        else:
            _write_image(tmp, image)
    return Path(os.path.expanduser(path))


def _write_image(path: Path, image: io.BytesIO) -> None:
    with open(path, "wb") as f:
        f.write(image.getbuffer())


def h5ad_image(adata: Any) -> io.BytesIO:
    """The bytes of ``adata`` as an ``.h5ad`` file, encoded in memory."""
    import anndata.io
    import h5py

    adata.strings_to_categoricals()
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        anndata.io.write_elem(f, "/", adata)
    return image


def write_csv(
    table: Any, path: str | os.PathLike, *, overwrite: bool = False, **kwargs: Any
) -> Path:
    """``table.to_csv`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.to_csv(tmp, **kwargs)
    return Path(os.path.expanduser(path))
