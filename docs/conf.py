"""Sphinx configuration (Sphinx + myst-nb, after cookiecutter-scverse).

Build with ``sphinx-build -W -b html docs docs/_build/html`` (or ``docs/build.sh``).
Nothing is downloaded (no intersphinx). No notebook is executed by the build: a tutorial
page shows the committed notebook with the outputs (and figures) of its executed copy in
``docs/_build/executed/``, which ``tests/test_notebooks.py`` writes, when that copy's
code cells are the committed ones; otherwise without outputs. So the
notebooks run once (in the tests), not twice. ``SDD_DOCS_EXECUTE=1`` executes them while
building instead (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import sdd  # noqa: E402

logger = logging.getLogger(__name__)

# -- project -------------------------------------------------------------------------
project = "sdd"
author = "sdd developers"
copyright = f"{datetime.now():%Y}, {author}"
version = release = sdd.__version__

# -- general -------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx.ext.mathjax",
]
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    "tutorials/README.md",
]
# .rst first: autosummary writes its stub pages with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "literal"
suppress_warnings: list[str] = []

# myst / myst-nb: render the committed notebooks; execute them only when asked to
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist", "html_image"]
myst_heading_anchors = 3
nb_execution_mode = "force" if os.environ.get("SDD_DOCS_EXECUTE") == "1" else "off"
if nb_execution_mode == "force":  # kernels inherit the environment: draw figures inline
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
nb_execution_timeout = 1800  # per cell
nb_execution_raise_on_error = True
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars and warnings stay out of the pages

#: Executed notebooks, rendered in place of the stripped ones (see
#: _use_executed_notebook): the test session's copies (``SDD_EXECUTED_NOTEBOOKS``, set by
#: tests/test_docs.py), else docs/_build/executed/ for a local build.
EXECUTED = Path(os.environ.get("SDD_EXECUTED_NOTEBOOKS") or HERE / "_build" / "executed")

# autodoc / autosummary / napoleon (numpydoc-style docstrings)
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "groupwise"
autodoc_default_options = {"show-inheritance": False}
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_ivar = True  # "Attributes" sections as fields, not duplicate descriptions
napoleon_use_param = True
napoleon_custom_sections = [("Params", "Parameters")]
typehints_defaults = "braces"
always_document_param_types = False

# -- html ----------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "sdd"
html_static_path = ["_static"]
html_show_sphinx = False
html_theme_options = {
    "repository_url": "https://github.com/sdd-developers/sdd",
    "use_repository_button": False,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
}

# -- documented public API -----------------------------------------------------------
#: Modules whose ``__all__`` must be listed in api.md; the build warns (and so, with
#: ``-W``, fails) when a public name is missing. Modules not yet present are skipped.
API_MODULES = ["sdd", "sdd.tl", "sdd.pl", "sdd.metrics", "sdd.datasets", "sdd.nn"]
_SKIP = {"__version__", "datasets", "diffusion", "nn", "tl", "pl", "metrics", "train", "model"}
# instances and constants, documented in the docstrings of the functions that use them
_SKIP |= {"fitted", "DATA_DIR_ENV", "CACHE_DIR_ENV"}


def _api_entries(text: str) -> set[str]:
    """Fully qualified names listed in the autosummary blocks of api.md."""
    entries, current, in_block = set(), "", False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. currentmodule::"):
            current = stripped.split("::", 1)[1].strip()
        elif stripped.startswith(".. autosummary::"):
            in_block = True
        elif in_block and stripped and not line[0].isspace():
            in_block = False
        elif in_block and stripped and not stripped.startswith(":"):
            name = stripped.lstrip("~")
            entries.add(f"{current}.{name}" if current else name)
    return entries


def _check_api_listed(app: Sphinx) -> None:
    listed = _api_entries((HERE / "api.md").read_text())
    for name in API_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        missing = [
            public
            for public in getattr(module, "__all__", [])
            if public not in _SKIP
            and f"{name}.{public}" not in listed
            # or listed where it is defined, e.g. sdd.nn.unet.PAPER_UNET
            and not any(e.startswith(f"{name}.") and e.endswith(f".{public}") for e in listed)
        ]
        if missing:
            logger.warning(f"api.md does not list these public names of {name}: {missing}")


def _code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _use_executed_notebook(app: Sphinx, docname: str, source: list[str]) -> None:
    """Show the outputs of ``EXECUTED/NAME.ipynb`` on page ``tutorials/NAME``.

    The committed notebook is rendered with the outputs of the executed copy, taken only
    when the code cells of both are the same (the text may have changed since), so an
    edited notebook is never shown with stale outputs. Skipped when the build executes
    the notebooks itself (``SDD_DOCS_EXECUTE=1``).
    """
    if nb_execution_mode != "off" or not docname.startswith("tutorials/"):
        return
    executed = EXECUTED / f"{docname.split('/', 1)[1]}.ipynb"
    if not executed.is_file():
        logger.info(f"{docname}: no executed copy in {EXECUTED}, shown without outputs")
        return
    app.env.note_dependency(str(executed))  # rebuilt when the tests write a new copy
    committed = json.loads(source[0])
    ran = _code_cells(json.loads(executed.read_text(encoding="utf-8")))
    cells = _code_cells(committed)
    if [_source(c) for c in ran] != [_source(c) for c in cells]:
        logger.info(f"{docname}: executed copy is out of date, shown without outputs")
        return
    for cell, done in zip(cells, ran, strict=True):
        cell["outputs"] = done.get("outputs", [])
        cell["execution_count"] = done.get("execution_count")
    source[0] = json.dumps(committed)


def _make_figures(app: Sphinx) -> None:
    """Draw the method page's figures into docs/generated (see make_figures.py)."""
    import make_figures

    make_figures.main(HERE / "generated")


# -- `sdd --help` pages --------------------------------------------------------------
class CLIHelp(SphinxDirective):
    """``{sdd-cli-help} fit``: the help text of ``sdd fit`` as a literal block."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from sdd.cli import build_parser

        os.environ["COLUMNS"] = "88"
        parser = build_parser()
        command = self.arguments[0] if self.arguments else None
        if command is not None:
            actions = [a for a in parser._actions if getattr(a, "choices", None)]
            subparsers = actions[-1].choices
            if command not in subparsers:
                raise self.error(f"unknown sdd command {command!r}")
            parser = subparsers[command]
        text = parser.format_help().rstrip()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


_REPO_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+:|#)([^)]+?)\)")


def _unlink_repo_files(app: Sphinx, relative_path, parent_docname: str, content: list[str]):
    """Turn README links to repository files (``src/sdd/demo.py``) into plain text."""
    if Path(relative_path).name == "README.md":
        content[0] = _REPO_LINK.sub(
            lambda m: m.group(0) if m.group(2).endswith(".md") else m.group(1), content[0]
        )


def setup(app: Sphinx) -> None:
    app.connect("include-read", _unlink_repo_files)
    app.connect("source-read", _use_executed_notebook)
    app.add_directive("sdd-cli-help", CLIHelp)
    app.connect("builder-inited", _make_figures)
    app.connect("builder-inited", _check_api_listed)
