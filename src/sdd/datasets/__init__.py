"""Data sets and readers: MNIST, Fashion-MNIST, calorimeter images, PBMCs with gene symbols.

Loaders (:func:`mnist`, :func:`fashion_mnist`) read a local copy when given ``path=`` or
when ``$SDD_DATA_DIR`` holds one (``$SDD_DATA_DIR/mnist/``, ``$SDD_DATA_DIR/fashion-mnist/``),
else the download cache (``$SDD_CACHE_DIR``, default ``~/.cache/sdd``), downloading there
when online. :func:`calorimeter` returns a sample shipped with the package and
:func:`pbmc68k` scanpy's bundled PBMCs: both work offline. The readers (:func:`read_idx`,
:func:`read_mnist`, :func:`read_calorimeter`) only read local files.
"""

from ._calorimeter import CalorimeterImages, read_calorimeter
from ._fetch import CACHE_DIR_ENV, DATA_DIR_ENV, cache_dir
from ._idx import read_idx, read_mnist
from ._loaders import calorimeter, fashion_mnist, mnist, pbmc68k

__all__ = [
    "mnist",
    "fashion_mnist",
    "calorimeter",
    "pbmc68k",
    "cache_dir",
    "DATA_DIR_ENV",
    "CACHE_DIR_ENV",
    "read_idx",
    "read_mnist",
    "read_calorimeter",
    "CalorimeterImages",
]
