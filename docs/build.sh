#!/usr/bin/env bash
# Build the HTML docs with warnings as errors: docs/build.sh [extra sphinx-build options]
# Needs the docs extra: pip install -e ".[docs]". Output: docs/_build/html/index.html
# The tutorial pages show the executed notebooks in docs/_build/executed/, written by
# `python -m pytest tests/test_notebooks.py` (run that first for pages with figures).
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
exec python -m sphinx -W --keep-going -b html -d _build/doctrees . _build/html "$@"
