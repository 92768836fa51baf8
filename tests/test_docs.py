"""The documentation builds with warnings as errors (``sphinx-build -W``).

Needs the ``docs`` extra (Sphinx, myst-nb, the theme); skipped without it. The build
goes to a temporary folder, so the working tree's ``docs/_build`` is left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

pytestmark = pytest.mark.docs


def test_sphinx_build_without_warnings(tmp_path: Path):
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_autodoc_typehints"):
        pytest.importorskip(module)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "html" / "index.html").is_file()
    assert (tmp_path / "html" / "_images" / "sparsity_bits.png").is_file()
