#!/usr/bin/env bash
# Build the HTML docs with warnings as errors: docs/build.sh [extra sphinx-build options]
# Needs the docs extra: pip install -e ".[docs]". Output: docs/_build/html/index.html
# The tutorial pages show executed notebooks: SDD_DOCS_EXECUTE=1 docs/build.sh runs them
# during the build; otherwise copies in docs/_build/executed/ (or $SDD_EXECUTED_NOTEBOOKS)
# are used when their code matches, and a page without one is shown without outputs.
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
exec python -m sphinx -W --keep-going -b html -d _build/doctrees . _build/html "$@"
