"""Reader for calorimeter images stored as ``.npz`` or HDF5."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CalorimeterImages", "read_calorimeter"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NPZ_MAGIC = b"PK"


def _centers(edges: np.ndarray | None) -> np.ndarray | None:
    return None if edges is None else 0.5 * (edges[:-1] + edges[1:])


@dataclass(frozen=True, repr=False)
class CalorimeterImages:
    """Calorimeter images with their labels and pixel geometry.

    Attributes
    ----------
    images
        ``(N, H, W)`` intensities (e.g. pT in GeV), axis 1 along η and axis 2 along φ.
    labels
        ``(N,)`` class labels, or ``None`` if the file has none.
    eta_edges, phi_edges
        Pixel bin edges (``H + 1`` and ``W + 1`` values), or ``None`` if the file has none.
    extra
        Further per-image arrays found in the file (e.g. ``muon_pt``), by key.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    eta_edges: np.ndarray | None = None
    phi_edges: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def eta(self) -> np.ndarray | None:
        """Pixel-centre η (length ``H``), from ``eta_edges``."""
        return _centers(self.eta_edges)

    @property
    def phi(self) -> np.ndarray | None:
        """Pixel-centre φ (length ``W``), from ``phi_edges``."""
        return _centers(self.phi_edges)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, h, w = self.images.shape
        zeros = float((self.images == 0).mean())
        labels = "no labels" if self.labels is None else f"{len(np.unique(self.labels))} classes"
        geometry = "with" if self.eta_edges is not None else "without"
        return (
            f"CalorimeterImages: {n} images of {h}x{w}, {zeros:.2%} zero pixels, {labels}, "
            f"{geometry} pixel edges; extra: {sorted(self.extra)}"
        )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"Cannot read {path} as .npz: {err}") from err


def _load_hdf5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:

            def visit(name: str, obj) -> None:
                if isinstance(obj, h5py.Dataset):
                    out[name] = np.asarray(obj[()])

            f.visititems(visit)
    except OSError as err:
        raise ValueError(f"Cannot read {path} as HDF5: {err}") from err
    return out


def read_calorimeter(
    path: str | os.PathLike,
    *,
    images_key: str = "images",
    labels_key: str | None = "label",
    eta_edges_key: str = "eta_edges",
    phi_edges_key: str = "phi_edges",
) -> CalorimeterImages:
    """Read calorimeter images (``(N, H, W)``) and labels from an ``.npz`` or HDF5 file.

    The format is detected from the file's first bytes. In HDF5 files, keys are dataset
    paths (``"images"`` or ``"group/images"``). Other arrays with one entry per image are
    returned in ``extra``. Nothing is downloaded.

    Parameters
    ----------
    path
        ``.npz`` or ``.h5``/``.hdf5`` file.
    images_key
        Key of the ``(N, H, W)`` image array (axis 1: η, axis 2: φ).
    labels_key
        Key of the ``(N,)`` labels, or ``None`` to read no labels.
    eta_edges_key, phi_edges_key
        Keys of the pixel bin edges (optional in the file).

    Returns
    -------
    :class:`CalorimeterImages`

    Examples
    --------
    >>> from sdd.datasets import read_calorimeter
    >>> data = read_calorimeter("calorimeter/muon_isolation_sim.npz")  # doctest: +SKIP
    >>> data.images.shape, data.eta.shape  # doctest: +SKIP
    ((12000, 32, 32), (32,))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No calorimeter file at {path}.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_MAGIC:
        arrays = _load_hdf5(path)
    elif head[:2] == _NPZ_MAGIC:
        arrays = _load_npz(path)
    else:
        raise ValueError(f"{path} is neither an .npz nor an HDF5 file.")

    if images_key not in arrays:
        raise ValueError(f"{path} has no {images_key!r} array (found: {sorted(arrays)}).")
    images = arrays.pop(images_key)
    if images.ndim != 3 or min(images.shape) == 0:
        raise ValueError(f"{path}: {images_key!r} must have shape (N, H, W), got {images.shape}.")
    if not np.issubdtype(images.dtype, np.number):
        raise TypeError(f"{path}: {images_key!r} must be numeric, got dtype {images.dtype}.")
    n, h, w = images.shape

    labels = None
    if labels_key is not None:
        if labels_key not in arrays:
            raise ValueError(
                f"{path} has no {labels_key!r} array (found: {sorted(arrays)}); "
                "pass labels_key=None to read images only."
            )
        labels = arrays.pop(labels_key)
        if labels.shape != (n,):
            raise ValueError(f"{path}: {labels_key!r} must have shape ({n},), got {labels.shape}.")

    edges = {}
    for axis, key, size in (("eta", eta_edges_key, h), ("phi", phi_edges_key, w)):
        value = arrays.pop(key, None)
        if value is not None:
            value = np.asarray(value, dtype=np.float64)
            if value.shape != (size + 1,) or not np.all(np.diff(value) > 0):
                raise ValueError(
                    f"{path}: {key!r} must be {size + 1} increasing bin edges, got shape {value.shape}."
                )
        edges[axis] = value

    extra = {k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == n}
    return CalorimeterImages(images, labels, edges["eta"], edges["phi"], extra)
