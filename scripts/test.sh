#!/usr/bin/env bash
# Builds (incrementally) and runs the test suite; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# pytest (not `python -m pytest`) keeps the source tree off sys.path, so the
# tests import the installed package with its compiled library.
.venv/bin/pytest -q "$@"
