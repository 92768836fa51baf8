"""Where data sets come from: a given path, ``$SDD_DATA_DIR``, the cache, or a download."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "CACHE_DIR_ENV", "cache_dir", "fetch_files"]

#: Environment variable naming a folder with local copies (``mnist/``, ``fashion-mnist/``).
DATA_DIR_ENV = "SDD_DATA_DIR"
#: Environment variable overriding the download cache (default ``~/.cache/sdd``).
CACHE_DIR_ENV = "SDD_CACHE_DIR"
_TIMEOUT_S = 60


def cache_dir() -> Path:
    """The folder downloads go to: ``$SDD_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdd``, else
    ``~/.cache/sdd``.

    Examples
    --------
    >>> from sdd.datasets import cache_dir
    >>> cache_dir().name  # doctest: +SKIP
    'sdd'
    """
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sdd"


def _has_all(directory: Path, filenames: Sequence[str]) -> bool:
    return all((directory / f).is_file() or (directory / f).with_suffix("").is_file()
               for f in filenames)  # fmt: skip


def _download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` through a temporary file in the same folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_files(
    subdir: str,
    filenames: Sequence[str],
    mirrors: Sequence[str],
    path: str | os.PathLike | None = None,
) -> tuple[Path, bool]:
    """Folder holding ``filenames``: ``path``, else ``$SDD_DATA_DIR/subdir``, else the cache
    (downloading what is missing from the first mirror that answers).

    Returns the folder and whether anything was downloaded now. A file counts as present
    with or without its ``.gz`` suffix.
    """
    if path is not None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(f"No directory at {directory} (path= of {subdir!r}).")
        return directory, False
    if os.environ.get(DATA_DIR_ENV):
        directory = Path(os.environ[DATA_DIR_ENV]).expanduser() / subdir
        if _has_all(directory, filenames):
            return directory, False
    directory = cache_dir() / subdir
    downloaded = False
    for name in filenames:
        if _has_all(directory, [name]):
            continue
        errors = []
        for base in mirrors:
            url = base + name
            try:
                _download(url, directory / name)
                break
            except (urllib.error.URLError, OSError) as err:
                errors.append(f"{url}: {err}")
        else:
            raise ConnectionError(
                f"could not download {name} ({'; '.join(errors)}); pass path= (a folder holding "
                f"{', '.join(filenames)}) or set {DATA_DIR_ENV} to a folder holding {subdir}/."
            )
        downloaded = True
    return directory, downloaded
