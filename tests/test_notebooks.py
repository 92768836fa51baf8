"""Every tutorial notebook (``tutorials/*.ipynb``) runs top to bottom and draws a figure.

No notebook names a path of its own: they load their data with :mod:`sdd.datasets`. The
calorimeter sample ships with the package and ``pbmc68k`` with scanpy; MNIST is read from
``$SDD_DATA_DIR/mnist`` (see ``_notebooks.py``). The notebooks run through the session
fixture ``executed_notebooks``, once per session, so the docs tests render the same
executed copies without reading files this module wrote. The committed notebooks must
have their outputs stripped.

Slow (the five notebooks take about five minutes on two CPU cores): deselect with
``-m "not notebooks"``; run one with ``-k 01``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _notebooks import NOTEBOOKS, TUTORIALS

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

#: Paths a notebook must not contain: data sets are loaded through sdd.datasets.
LOCAL_PATH = re.compile(r"(?:\.\./)+shared|shared/data")

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


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
def test_notebook_runs(path: Path, executed_notebooks):
    notebook = nbformat.read(executed_notebooks.get(path), as_version=4)
    images = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert images > 0, f"{path.name} drew no figure"


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
