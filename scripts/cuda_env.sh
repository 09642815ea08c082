#!/usr/bin/env bash
# The CUDA build environment .venv-cuda: the registry's CUDA build of the torch
# the lent GPU machine runs (requirements-cuda.txt: torch 2.11.0, CUDA 13.0,
# the same major version as nvcc 13.0 here), plus what the build and the tests
# need. Needs the network; idempotent (quick when everything is installed).
# CI starts it in the background at the beginning (a download of a few GB,
# mostly waiting on the network) and scripts/cuda_build.sh runs it again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv-cuda/bin/python ] || "$PYTHON" -m venv .venv-cuda
.venv-cuda/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv-cuda/bin/python -m pip install -q -r requirements-cuda.txt
