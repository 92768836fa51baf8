"""Readers for the idx format of MNIST and Fashion-MNIST (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["read_idx", "read_mnist"]

# idx type byte -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is a damaged gzip file: {err}") from err
    return path.read_bytes()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed or not.

    The header is two zero bytes, a type byte (``0x08`` uint8, ``0x09`` int8, ``0x0B``
    int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions,
    then one big-endian int32 per dimension; the data follow in C order, big-endian.
    Compression is detected from the file's first bytes, not its name.

    Parameters
    ----------
    path
        Path to an ``.idx``/``-ubyte`` file or its ``.gz``.

    Returns
    -------
    The array in native byte order, e.g. ``(60000, 28, 28)`` uint8 for MNIST training
    images and ``(60000,)`` uint8 for their labels.

    Examples
    --------
    >>> from sdd.datasets import read_idx
    >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No idx file at {path}.")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an idx file (bad magic number).")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown idx data type code 0x{type_code:02X}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({ndim} dimensions announced).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: idx header announces shape {shape} ({expected} bytes of data), "
            f"but the file holds {len(raw) - header} bytes after the header."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"Neither {stem} nor {stem}.gz found in {directory}.")


def read_mnist(
    directory: str | os.PathLike, split: Literal["train", "test"] = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST-layout images and labels (MNIST, Fashion-MNIST) from a directory.

    Looks for the standard file names ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte`` (``split="train"``) or ``t10k-*`` (``split="test"``),
    with or without ``.gz``.

    Parameters
    ----------
    directory
        Folder holding the four idx files.
    split
        ``"train"`` or ``"test"``.

    Returns
    -------
    images
        ``(N, 28, 28)`` uint8.
    labels
        ``(N,)`` uint8.

    Examples
    --------
    >>> from sdd.datasets import read_mnist
    >>> x, y = read_mnist("data/fashion-mnist", split="test")  # doctest: +SKIP
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"No directory at {directory}.")
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"Unexpected idx contents in {directory}: images {images.shape}, labels {labels.shape}."
        )
    return images, labels
