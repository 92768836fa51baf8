"""Ready-to-use data sets in the style of ``scvi.data`` and ``sc.datasets``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ._calorimeter import CalorimeterImages, read_calorimeter
from ._fetch import fetch_files
from ._idx import read_mnist

if TYPE_CHECKING:
    import anndata as ad

__all__ = ["mnist", "fashion_mnist", "calorimeter", "pbmc68k", "CALORIMETER_SAMPLE"]

# Published locations of the idx files (the original yann.lecun.com host is often down).
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_SIZES = {"train": 60_000, "test": 10_000}

#: The calorimeter sample shipped with the package (see ``data/README.md`` next to it).
CALORIMETER_SAMPLE = resources.files("sdd.datasets") / "data" / "calorimeter_sample.npz"


def _idx_names(split: str) -> list[str]:
    if split not in _SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    prefix = "train" if split == "train" else "t10k"
    return [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]


def _load_idx_set(
    subdir: str, mirrors: tuple[str, ...], split: str, path: str | os.PathLike | None
) -> tuple[np.ndarray, np.ndarray]:
    names = _idx_names(split)
    directory, downloaded = fetch_files(subdir, names, mirrors, path)
    try:
        images, labels = read_mnist(directory, split=split)  # type: ignore[arg-type]
        if images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(
                f"expected (N, 28, 28) uint8 images, got {images.shape} {images.dtype}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"labels must lie in 0..9, got {labels.min()}..{labels.max()}")
        if downloaded and len(images) != _SIZES[split]:
            raise ValueError(f"expected {_SIZES[split]} images, got {len(images)}")
    except ValueError as err:
        if downloaded:  # a damaged download must not stay in the cache
            for name in names:
                (directory / name).unlink(missing_ok=True)
        raise ValueError(f"{subdir} {split} files in {directory} are not valid: {err}") from err
    return images, labels


def mnist(
    split: Literal["train", "test"] = "train", *, path: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST handwritten digits (LeCun et al. 1998): ``(N, 28, 28)`` uint8 and labels.

    Looks in ``path``, else in ``$SDD_DATA_DIR/mnist``, else in the cache
    (:func:`~sdd.datasets.cache_dir`, ``~/.cache/sdd/mnist``), downloading the four
    ``*-idx?-ubyte.gz`` files there when they are missing. No checksums are published by
    the mirrors, so the files are checked after reading: idx header consistent with the
    data, 28×28 uint8 images, labels in 0–9 and, for a download, 60,000 / 10,000 images.

    Parameters
    ----------
    split
        ``"train"`` (60,000 images) or ``"test"`` (10,000).
    path
        Folder with the idx files (``.gz`` or not); nothing is downloaded then.

    Returns
    -------
    images : numpy.ndarray
        ``(N, 28, 28)`` uint8.
    labels : numpy.ndarray
        Digit or class per image.

    Raises
    ------
    ConnectionError
        When the files are neither local nor downloadable (offline).

    Examples
    --------
    >>> import sdd
    >>> x, y = sdd.datasets.mnist("test")  # doctest: +SKIP
    >>> x.shape, (x == 0).mean().round(2)  # doctest: +SKIP
    ((10000, 28, 28), 0.81)
    """
    return _load_idx_set("mnist", _MNIST_MIRRORS, split, path)


def fashion_mnist(
    split: Literal["train", "test"] = "train", *, path: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST (Xiao et al. 2017): ``(N, 28, 28)`` uint8 clothing images and labels.

    Same layout, look-up order (``path``, ``$SDD_DATA_DIR/fashion-mnist``, cache, download)
    and checks as :func:`~sdd.datasets.mnist`.

    Examples
    --------
    >>> import sdd
    >>> x, y = sdd.datasets.fashion_mnist("test")  # doctest: +SKIP
    """
    return _load_idx_set("fashion-mnist", _FASHION_MIRRORS, split, path)


def calorimeter(path: str | os.PathLike | None = None, **kwargs) -> CalorimeterImages:
    """Simulated muon-isolation calorimeter images (32×32, pT in GeV, 2 classes).

    Without ``path`` this is the sample shipped with the package: 4,000 images (2,000 per
    class) drawn from a 12,000-image Pythia 8 generator-level simulation, a stand-in for the
    data of Lu et al. (Phys. Rev. D 103, 036012, 2021) used in the SDD paper; not the real
    data (no detector simulation, no pile-up). ``label`` 1 is an isolated muon from a W
    decay, 0 a muon from a b-hadron decay in a jet; ``extra`` holds ``muon_pt`` and
    ``muon_eta``.

    Parameters
    ----------
    path
        Read this ``.npz``/HDF5 file instead (see :func:`~sdd.datasets.read_calorimeter`).
    **kwargs
        Passed to :func:`~sdd.datasets.read_calorimeter` (keys of the arrays).

    Examples
    --------
    >>> import sdd
    >>> data = sdd.datasets.calorimeter()
    >>> data.images.shape
    (4000, 32, 32)
    """
    if path is None:
        with resources.as_file(CALORIMETER_SAMPLE) as sample:
            return read_calorimeter(Path(sample), **kwargs)
    return read_calorimeter(path, **kwargs)


def pbmc68k() -> ad.AnnData:
    """700 PBMCs × 765 genes with gene symbols and cell-type labels, log1p-normalised.

    scanpy's bundled ``pbmc68k_reduced`` (a subsample of 10x Genomics' 68k PBMCs, Zheng et
    al. 2017), with its ``.raw`` (log1p of normalised counts, sparse, non-negative) as
    ``X``; ``obs["bulk_labels"]`` holds 10 cell types, ``uns["log1p"]`` is set so
    ``sc.tl.rank_genes_groups`` works. Nothing is downloaded.

    Examples
    --------
    >>> import sdd
    >>> adata = sdd.datasets.pbmc68k()
    >>> adata.shape, "MS4A1" in adata.var_names
    ((700, 765), True)
    """
    import scanpy as sc
    import scipy.sparse as sp

    reduced = sc.datasets.pbmc68k_reduced()
    adata = reduced.raw.to_adata()
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.obs = adata.obs[["bulk_labels", "n_genes", "n_counts", "percent_mito"]].copy()
    for key in list(adata.uns):
        if key != "bulk_labels_colors":
            del adata.uns[key]
    for key in list(adata.obsm):
        del adata.obsm[key]
    for key in list(adata.obsp):
        del adata.obsp[key]
    adata.uns["log1p"] = {"base": None}
    adata.var_names_make_unique()
    return adata
