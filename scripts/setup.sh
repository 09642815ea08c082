#!/usr/bin/env bash
# Creates .venv (if missing), installs the pinned requirements and builds and
# installs rowconv_ext into it. Safe to re-run: the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# A fresh venv carries a setuptools too old for PEP 660 / bdist_wheel.
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -r requirements.txt
# The venv's ninja (pinned in requirements.txt), not whichever is on PATH
# (none, on some machines: then every file compiles in turn).
export PATH="$PWD/.venv/bin:$PATH"
# --no-build-isolation: the extension must be compiled against the torch it
# will run with (the one just installed), not a fresh copy in a build env.
MAX_JOBS=${MAX_JOBS:-2} .venv/bin/python -m pip install -q --no-build-isolation .
