"""Executing the tutorial notebooks once per test session (used by the notebook and the
docs tests through the ``executed_notebooks`` fixture of ``conftest.py``).

Each notebook runs in its own kernel with ``tutorials/`` as working directory, as it does
for a user, and is written with its outputs into the session's temporary folder; the docs
build renders those copies (``SDD_EXECUTED_NOTEBOOKS``, read by ``docs/conf.py``). MNIST
is read from ``$SDD_DATA_DIR/mnist``, which points at ``../shared/data/images`` when that
folder exists (no network in tests); otherwise that notebook is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
SHARED_DATA = ROOT.parent / "shared" / "data"
TIMEOUT_PER_CELL = 600
#: Notebooks that need a data set that is neither shipped nor bundled, with the folder
#: under $SDD_DATA_DIR that holds it.
NEEDS_DATA_DIR = {"03_sparse_images": "mnist"}


def data_dir() -> Path | None:
    """The folder to use as $SDD_DATA_DIR: the user's, else the local copies."""
    if os.environ.get("SDD_DATA_DIR"):
        return Path(os.environ["SDD_DATA_DIR"])
    images = SHARED_DATA / "images"
    return images if images.is_dir() else None


class ExecutedNotebooks:
    """Runs each notebook on first request and remembers the result for the session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._done: dict[str, Path | str | BaseException] = {}

    def get(self, path: Path) -> Path:
        """The executed copy of ``path``; skips the calling test when the notebook needs
        data that is not here, re-raises the notebook's error in every test that asks."""
        if path.stem not in self._done:
            try:
                self._done[path.stem] = self._execute(path)
            except BaseException as err:  # noqa: BLE001 - stored, re-raised below
                self._done[path.stem] = err
        result = self._done[path.stem]
        if isinstance(result, str):
            pytest.skip(result)
        if isinstance(result, BaseException):
            raise result
        return result

    def _execute(self, path: Path) -> Path | str:
        import nbclient
        import nbformat

        folder = data_dir()
        needed = NEEDS_DATA_DIR.get(path.stem)
        if needed is not None and (folder is None or not (folder / needed).is_dir()):
            return f"{path.stem} needs $SDD_DATA_DIR/{needed} (no download in tests)"
        notebook = nbformat.read(path, as_version=4)
        with pytest.MonkeyPatch.context() as patch:
            if folder is not None:
                patch.setenv("SDD_DATA_DIR", str(folder))
            # figures as inline PNG outputs (the docs show them), warnings out of the pages
            patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
            patch.setenv("PYTHONWARNINGS", os.environ.get("PYTHONWARNINGS", "ignore"))
            client = nbclient.NotebookClient(
                notebook, timeout=TIMEOUT_PER_CELL, kernel_name="python3",
                resources={"metadata": {"path": str(TUTORIALS)}},
            )  # fmt: skip
            client.execute()  # raises CellExecutionError with the failing cell
        out = self.folder / path.name
        nbformat.write(notebook, out)
        return out
