"""Readers: idx(.gz) files and calorimeter .npz/HDF5 files, synthetic and real."""

from __future__ import annotations

import gzip
import struct
import urllib.error

import h5py
import numpy as np
import pytest
from conftest import SHARED_DATA

import sdd
from sdd.datasets import CalorimeterImages, _fetch, read_calorimeter, read_idx, read_mnist

IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def write_idx(path, array, *, compress=False):
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype.type], array.ndim])
    header += struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


# ------------------------------------------------------------------ idx
@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(5, 4, 3)) * 100).astype(dtype)
    # gzip is detected from the content, not from the name
    path = write_idx(tmp_path / "x-idx3-ubyte", array, compress=compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_labels_1d(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "y.gz", labels, compress=True)), labels
    )


def test_read_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(bad_magic)
    bad_type = tmp_path / "type"
    bad_type.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="unknown idx data type code 0x07"):
        read_idx(bad_type)
    good = write_idx(tmp_path / "good", np.arange(12, dtype=np.uint8).reshape(3, 4))
    raw = good.read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="11 bytes after the header"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="shape \\(3, 4\\)"):
        read_idx(tmp_path / "long")
    (tmp_path / "header").write_bytes(raw[:6])
    with pytest.raises(ValueError, match="truncated idx header"):
        read_idx(tmp_path / "header")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(raw)[:-8])
    with pytest.raises(ValueError, match="damaged gzip"):
        read_idx(tmp_path / "broken.gz")


def test_read_mnist_layout(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 6), ("t10k", 4)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)  # uncompressed also found
        x, y = read_mnist(tmp_path, split="train" if prefix == "train" else "test")
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError, match="split"):
        read_mnist(tmp_path, split="valid")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        read_mnist(tmp_path, split="test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="Unexpected idx contents"):
        read_mnist(tmp_path, split="test")


@pytest.mark.parametrize(("name", "zeros"), [("mnist", 0.809), ("fashion-mnist", 0.50)])
def test_real_mnist_files(name, zeros):
    directory = SHARED_DATA / "images" / name
    if not directory.is_dir():
        pytest.skip("shared image data not available")
    x, y = read_mnist(directory, split="test")
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10_000,) and set(np.unique(y)) == set(range(10))
    assert abs((x == 0).mean() - zeros) < 0.03  # README: ~80.9% and ~50% zero pixels
    assert x.max() == 255


# ------------------------------------------------------------------ calorimeter
def _calo_arrays(n=10, size=6, seed=0):
    rng = np.random.default_rng(seed)
    images = (rng.exponential(size=(n, size, size)) * (rng.random((n, size, size)) < 0.1)).astype(
        np.float32
    )
    return {
        "images": images,
        "label": rng.integers(0, 2, n).astype(np.int8),
        "eta_edges": np.linspace(-0.4, 0.4, size + 1),
        "phi_edges": np.linspace(-0.3, 0.3, size + 1),
        "muon_pt": rng.uniform(10, 100, n).astype(np.float32),
    }


def test_read_calorimeter_npz(tmp_path):
    arrays = _calo_arrays()
    np.savez(tmp_path / "calo.npz", **arrays)
    data = read_calorimeter(tmp_path / "calo.npz")
    assert isinstance(data, CalorimeterImages) and len(data) == 10
    np.testing.assert_array_equal(data.images, arrays["images"])
    np.testing.assert_array_equal(data.labels, arrays["label"])
    np.testing.assert_allclose(data.eta, (arrays["eta_edges"][1:] + arrays["eta_edges"][:-1]) / 2)
    np.testing.assert_allclose(data.phi[[0, -1]], [-0.25, 0.25])
    assert list(data.extra) == ["muon_pt"]
    assert "10 images of 6x6" in repr(data)


def test_read_calorimeter_hdf5_nested_keys(tmp_path):
    arrays = _calo_arrays(n=7, size=4)
    with h5py.File(tmp_path / "calo.h5", "w") as f:
        f["data/x"] = arrays["images"]
        f["data/y"] = arrays["label"]
        f["muon_pt"] = arrays["muon_pt"]
    data = read_calorimeter(tmp_path / "calo.h5", images_key="data/x", labels_key="data/y")
    np.testing.assert_array_equal(data.images, arrays["images"])
    np.testing.assert_array_equal(data.labels, arrays["label"])
    assert data.eta is None and data.phi is None
    assert set(data.extra) == {"muon_pt"}


def test_read_calorimeter_errors(tmp_path):
    arrays = _calo_arrays()
    with pytest.raises(FileNotFoundError):
        read_calorimeter(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="neither an .npz nor an HDF5"):
        read_calorimeter(tmp_path / "text.npz")
    np.savez(tmp_path / "nolabel.npz", images=arrays["images"])
    with pytest.raises(ValueError, match="labels_key=None"):
        read_calorimeter(tmp_path / "nolabel.npz")
    assert read_calorimeter(tmp_path / "nolabel.npz", labels_key=None).labels is None
    with pytest.raises(ValueError, match="no 'pixels' array"):
        read_calorimeter(tmp_path / "nolabel.npz", images_key="pixels", labels_key=None)
    np.savez(tmp_path / "flat.npz", images=arrays["images"].reshape(10, -1), label=arrays["label"])
    with pytest.raises(ValueError, match=r"shape \(N, H, W\)"):
        read_calorimeter(tmp_path / "flat.npz")
    np.savez(tmp_path / "lab.npz", images=arrays["images"], label=arrays["label"][:3])
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        read_calorimeter(tmp_path / "lab.npz")
    np.savez(
        tmp_path / "edges.npz",
        images=arrays["images"],
        label=arrays["label"],
        eta_edges=np.arange(6.0),
    )
    with pytest.raises(ValueError, match="7 increasing bin edges"):
        read_calorimeter(tmp_path / "edges.npz")


def test_real_calorimeter_file():
    path = SHARED_DATA / "calorimeter" / "muon_isolation_sim.npz"
    if not path.is_file():
        pytest.skip("shared calorimeter data not available")
    data = read_calorimeter(path)
    assert data.images.shape == (12_000, 32, 32)
    assert np.bincount(data.labels).tolist() == [6000, 6000]
    assert abs((data.images == 0).mean() - 0.9932) < 1e-3  # README: 99.32% zero pixels
    np.testing.assert_allclose(data.eta[[0, -1]], [-0.3875, 0.3875])
    assert set(data.extra) == {"muon_pt", "muon_eta"}


# ------------------------------------------------------------------ loaders (never the network)


def _write_mnist_dir(directory, n=5, *, labels_max=9, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, labels_max + 1, n).astype(np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
    return images, labels


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: every download fails; the cache is an empty tmp folder."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(_fetch.urllib.request, "urlopen", refuse)
    monkeypatch.setenv("SDD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SDD_DATA_DIR", raising=False)
    return calls


@pytest.mark.parametrize(
    ("loader", "subdir"),
    [(sdd.datasets.mnist, "mnist"), (sdd.datasets.fashion_mnist, "fashion-mnist")],
)
def test_loader_reads_path_and_env(tmp_path, monkeypatch, offline, loader, subdir):
    images, labels = _write_mnist_dir(tmp_path / "copy")
    x, y = loader("test", path=tmp_path / "copy")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    _write_mnist_dir(tmp_path / "data" / subdir, seed=1)
    monkeypatch.setenv("SDD_DATA_DIR", str(tmp_path / "data"))
    x_env, _ = loader("train")
    assert not np.array_equal(x_env, images)  # read from $SDD_DATA_DIR/<subdir>, not `copy`
    assert offline == []


def test_loader_offline_error(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("SDD_DATA_DIR", str(tmp_path / "empty"))  # set, but holds nothing
    with pytest.raises(ConnectionError, match="could not download t10k-images.*SDD_DATA_DIR"):
        sdd.datasets.mnist("test")
    assert offline and all(u.endswith("t10k-images-idx3-ubyte.gz") for u in offline)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # no partial file
    with pytest.raises(ValueError, match="split"):
        sdd.datasets.fashion_mnist("valid")
    with pytest.raises(FileNotFoundError, match="No directory"):
        sdd.datasets.mnist(path=tmp_path / "nowhere")


def test_loader_downloads_atomically_and_checks_content(monkeypatch, tmp_path):
    """A fake server hands out tiny idx files: written to the cache, then rejected by the
    size check for downloads (an official split has 60,000 / 10,000 images) and removed."""
    _write_mnist_dir(tmp_path / "server", n=4)
    monkeypatch.setenv("SDD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SDD_DATA_DIR", raising=False)
    urls = []

    def serve(url, *args, **kwargs):
        urls.append(url)
        return open(tmp_path / "server" / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(_fetch.urllib.request, "urlopen", serve)
    with pytest.raises(ValueError, match="expected 10000 images, got 4"):
        sdd.datasets.mnist("test")
    assert len(urls) == 2 and urls[0].startswith("https://")
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # damaged files removed
    # a local copy with a bad label is rejected with the reason
    _write_mnist_dir(tmp_path / "bad", labels_max=200)
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        sdd.datasets.mnist("train", path=tmp_path / "bad")


def test_download_failure_leaves_no_partial_file(monkeypatch, tmp_path):
    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            raise OSError("connection reset")

    monkeypatch.setattr(_fetch.urllib.request, "urlopen", lambda *a, **k: Broken())
    with pytest.raises(OSError, match="connection reset"):
        _fetch._download("https://example.org/f.gz", tmp_path / "f.gz")
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SDD_CACHE_DIR", str(tmp_path / "c"))
    assert sdd.datasets.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SDD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sdd.datasets.cache_dir() == tmp_path / "xdg" / "sdd"


def test_calorimeter_sample_shipped():
    data = sdd.datasets.calorimeter()
    assert data.images.shape == (4000, 32, 32) and data.images.dtype == np.float32
    assert np.bincount(data.labels).tolist() == [2000, 2000]
    assert 0.99 < (data.images == 0).mean() < 0.996  # the full file: 99.32% zeros
    assert data.images.min() >= 0
    assert set(data.extra) == {"muon_pt", "muon_eta"}
    np.testing.assert_allclose(data.eta[[0, -1]], [-0.3875, 0.3875])
    # signal (isolated muons) carries less pT around the muon than background
    summed = data.images.sum((1, 2))
    assert np.median(summed[data.labels == 1]) < np.median(summed[data.labels == 0])


def test_calorimeter_path(tmp_path):
    np.savez(tmp_path / "c.npz", **_calo_arrays(n=3, size=4))
    assert sdd.datasets.calorimeter(tmp_path / "c.npz").images.shape == (3, 4, 4)


def test_pbmc68k_symbols_and_labels():
    adata = sdd.datasets.pbmc68k()
    assert adata.shape == (700, 765)
    assert {"LYZ", "MS4A1", "NKG7", "CD79A"} <= set(adata.var_names)
    assert adata.obs["bulk_labels"].nunique() == 10
    assert adata.X.min() >= 0 and adata.X.dtype == np.float32
    assert 0.5 < 1 - adata.X.nnz / np.prod(adata.shape) < 0.99
    assert "log1p" in adata.uns
