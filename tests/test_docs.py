"""The documentation builds with warnings as errors (``sphinx-build -W``) and shows figures.

Needs the ``docs`` extra (Sphinx, myst-nb, the theme); skipped without it. The build
goes to a temporary folder, so the working tree's ``docs/_build/html`` is left alone.

The tutorial pages render the executed notebooks of the session fixture
``executed_notebooks`` (each notebook runs once per session, whichever test asks first;
``SDD_EXECUTED_NOTEBOOKS`` tells ``docs/conf.py`` where they are), and each tutorial page
must then contain at least one image. A notebook that cannot run here (e.g. ``03``
without ``$SDD_DATA_DIR``) skips its page's test with the reason.
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

pytestmark = [pytest.mark.docs, pytest.mark.slow]


@pytest.fixture(scope="module")
def html(tmp_path_factory, executed_notebooks) -> Path:
    """Build the docs once for this module, with the executed notebooks; return the HTML
    folder."""
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_autodoc_typehints"):
        pytest.importorskip(module)
    for notebook in NOTEBOOKS:
        try:
            executed_notebooks.get(notebook)
        except pytest.skip.Exception:
            pass  # rendered without outputs; its page test skips with the reason
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ, "MPLBACKEND": "Agg",
            "SDD_EXECUTED_NOTEBOOKS": str(executed_notebooks.folder),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return out / "html"


def test_sphinx_build_without_warnings(html: Path):
    assert (html / "index.html").is_file()
    assert (html / "_images" / "sparsity_bits.png").is_file()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_page_shows_figures(html: Path, notebook: Path, executed_notebooks):
    page = html / "tutorials" / f"{notebook.stem}.html"
    assert page.is_file(), f"no page for {notebook.name}"
    executed_notebooks.get(notebook)  # skips when the notebook could not run here
    text = page.read_text(encoding="utf-8")
    assert "<img" in text, f"{page.name} shows no figure although its notebook ran"
