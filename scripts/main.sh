#!/usr/bin/env bash
# The main job: set up and build, check against stock PyTorch, print the
# benchmark table (quick shapes; `bench_cpu.py --help` for the full sweep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/check_against_pytorch.py
.venv/bin/python benchmarks/bench_cpu.py --quick
