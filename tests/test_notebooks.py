"""Execute every tutorial notebook top to bottom (``tutorials/*.ipynb``) with nbclient.

Each notebook runs in its own kernel with ``tutorials/`` as working directory, as it does
for a user. No notebook names a path of its own: they load their data with
:mod:`sdd.datasets`. The calorimeter sample ships with the package and ``pbmc68k`` with
scanpy; MNIST is read from ``$SDD_DATA_DIR/mnist`` (the documented variable), which this
test points at ``../shared/data/images`` when that folder exists (the data sets next to
the repository), and otherwise the MNIST notebook is skipped (no network in tests).

The executed notebooks, with their figures, are written to ``docs/_build/executed/``
(ignored by git); the docs build renders them instead of the stripped ones, so the
notebooks run once, not twice (see ``docs/conf.py`` and ``tests/test_docs.py``, which
runs after this file). The committed notebooks must have their outputs stripped.

Slow (the five notebooks take about five minutes on two CPU cores): deselect with
``-m "not notebooks"``; run one with ``-k 01``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
#: Where the executed notebooks go; docs/conf.py reads them from here.
EXECUTED = ROOT / "docs" / "_build" / "executed"
#: The data sets next to the repository (the test suite's local copies).
SHARED_DATA = ROOT.parent / "shared" / "data"
TIMEOUT_PER_CELL = 600
#: Notebooks that need a data set that is neither shipped nor bundled, with the folder
#: under $SDD_DATA_DIR that holds it.
NEEDS_DATA_DIR = {"03_sparse_images": "mnist"}
#: Paths a notebook must not contain: data sets are loaded through sdd.datasets.
LOCAL_PATH = re.compile(r"(?:\.\./)+shared|shared/data")

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def _data_dir() -> Path | None:
    """The folder to use as $SDD_DATA_DIR: the user's, else the local copies."""
    if os.environ.get("SDD_DATA_DIR"):
        return Path(os.environ["SDD_DATA_DIR"])
    images = SHARED_DATA / "images"
    return images if images.is_dir() else None


def test_tutorials_exist():
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} has outputs; strip them before committing "
                "(jupyter nbconvert --clear-output --inplace tutorials/*.ipynb)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_local_paths(path: Path):
    """A stranger's clone has no ../shared: notebooks load data through sdd.datasets."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        found = LOCAL_PATH.findall(cell.source)
        assert not found, f"{path.name} names local paths {found}; use sdd.datasets"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    data_dir = _data_dir()
    needed = NEEDS_DATA_DIR.get(path.stem)
    if needed is not None:
        if data_dir is None or not (data_dir / needed).is_dir():
            pytest.skip(f"{path.stem} needs $SDD_DATA_DIR/{needed} (no download in tests)")
    if data_dir is not None:
        monkeypatch.setenv("SDD_DATA_DIR", str(data_dir))
    # figures as inline PNG outputs (the docs show them), warnings kept out of the pages
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONWARNINGS", os.environ.get("PYTHONWARNINGS", "ignore"))
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell and traceback
    images = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert images > 0, f"{path.name} drew no figure"
    EXECUTED.mkdir(parents=True, exist_ok=True)
    temporary = EXECUTED / f".{path.name}.tmp"
    nbformat.write(notebook, temporary)
    temporary.replace(EXECUTED / path.name)  # complete or absent, never half written


INSTALL = re.compile(r"pip install\s+([^\n`]*)")


def test_every_install_line_names_this_project_or_a_known_package():
    """``sdd`` on the package index is an unrelated project: no install line may name it;
    this project installs as ``.`` (from the repository) or ``sparse-data-diffusion``."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), *TUTORIALS.glob("*.ipynb")]
    wrong = []
    for path in files:
        for match in INSTALL.finditer(path.read_text(encoding="utf-8")):
            words = re.findall(r"[\"']?([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?[\"']?", match.group(1))
            if any(word == "sdd" for word in words):
                wrong.append(f"{path.name}: pip install {match.group(1).strip()}")
    assert not wrong, wrong
