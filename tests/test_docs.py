"""The documentation builds with warnings as errors (``sphinx-build -W``) and shows figures.

Needs the ``docs`` extra (Sphinx, myst-nb, the theme); skipped without it. The build
goes to a temporary folder, so the working tree's ``docs/_build/html`` is left alone.

The tutorial pages render the executed notebooks that ``tests/test_notebooks.py`` writes
to ``docs/_build/executed/`` (the notebooks run once, in those tests). The docs tests run
after the notebook tests (``tests/conftest.py`` moves them to the end of the session), and
a tutorial page must then contain at least one image. A tutorial whose notebook did not
run in this checkout (e.g. ``03`` without ``$SDD_DATA_DIR``) is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "tutorials").glob("*.ipynb"))
EXECUTED = DOCS / "_build" / "executed"

pytestmark = [pytest.mark.docs, pytest.mark.slow]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """Build the docs once for this module; return the HTML folder."""
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_autodoc_typehints"):
        pytest.importorskip(module)
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return out / "html"


def test_sphinx_build_without_warnings(html: Path):
    assert (html / "index.html").is_file()
    assert (html / "_images" / "sparsity_bits.png").is_file()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_page_shows_figures(html: Path, notebook: Path):
    page = html / "tutorials" / f"{notebook.stem}.html"
    assert page.is_file(), f"no page for {notebook.name}"
    if not (EXECUTED / notebook.name).is_file():
        pytest.skip(
            f"{notebook.name} was not executed in this checkout (run tests/test_notebooks.py)"
        )
    text = page.read_text(encoding="utf-8")
    assert "<img" in text, (
        f"{page.name} shows no figure although {EXECUTED / notebook.name} exists: "
        "is the executed copy out of date? Rerun tests/test_notebooks.py"
    )
