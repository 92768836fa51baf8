#!/usr/bin/env bash
# Build the HTML docs with warnings as errors: docs/build.sh [extra sphinx-build options]
# Needs the docs extra: pip install -e ".[docs]". Output: docs/_build/html/index.html
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
exec python -m sphinx -W --keep-going -b html -d _build/doctrees . _build/html "$@"
