#!/usr/bin/env bash
# Builds the C++ library against libtorch with CMake (for C++ users) and runs
# its C++ test against ATen's conv1d. Uses the torch installed in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build/cmake -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build/cmake -j "${MAX_JOBS:-2}"
ctest --test-dir build/cmake --output-on-failure
