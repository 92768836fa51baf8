"""Execute every tutorial notebook top to bottom (``tutorials/*.ipynb``) with nbclient.

Each notebook runs in its own kernel with ``tutorials/`` as working directory, so data
paths like ``../../shared/data/...`` resolve as they do for a user. A notebook whose data
is absent is skipped. The committed notebooks must have their outputs stripped.

Slow (one to a few minutes per notebook on a CPU): deselect with ``-m "not notebooks"``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
TIMEOUT_PER_CELL = 600
# data paths the notebooks read, e.g. "../../shared/data/scrna/pbmc4k_top2000.h5ad"
DATA_PATH = re.compile(r"""["'](\.\./[^"']*shared/data/[^"']+)["']""")

pytestmark = pytest.mark.notebooks


def _missing_data(notebook) -> list[str]:
    paths = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            paths += DATA_PATH.findall(cell.source)
    return [p for p in paths if not (TUTORIALS / p).exists()]


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
def test_notebook_runs(path: Path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    missing = _missing_data(notebook)
    if missing:
        pytest.skip(f"data not found: {', '.join(missing)}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONWARNINGS", os.environ.get("PYTHONWARNINGS", "ignore"))
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell and traceback
