#!/usr/bin/env bash
# The real CUDA build, on a machine with or without a GPU: a separate
# environment (.venv-cuda, scripts/cuda_env.sh) with the registry's CUDA build
# of the oldest torch we support (the GPU machine's 2.11.0), the extension
# compiled by nvcc with FORCE_CUDA=1 (ptxas register and spill report printed,
# and any spill or stack frame fails), imported, every op checked for a CUDA kernel, and the
# test suite (the CUDA emulation aside, which runs against the pinned torch)
# run against that build (without a GPU, every test function on a quarter of
# its parametrizations): the proof that the floor in pyproject.toml holds,
# and on a GPU, the GPU tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
bash scripts/cuda_env.sh
# The environment's ninja (pinned in requirements-cuda.txt), as in
# scripts/gpu_session.sh on the same build folder: ninja versions write
# different logs, and one that finds another's log rebuilds everything.
export PATH="$PWD/.venv-cuda/bin:$PATH"
log=build/cuda/build.log
mkdir -p build/cuda
echo "== nvcc build (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX}); log: $log"
# Its own objects (build/nvcc): the CPU build's in build/ stay as they are.
if ! ROWCONV_BUILD_BASE=build/nvcc FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-2} .venv-cuda/bin/python -m pip install -v --no-build-isolation . > "$log" 2>&1; then
  grep -E "error|Error" "$log" | head -40; tail -20 "$log"; exit 1
fi
echo "== ptxas: registers and spills per kernel"
grep -E "ptxas info *: (Compiling entry|Function properties|Used)|bytes spill" "$log" | sed 's/^ *//' || true
# (a stack frame too: a local array kept in memory, as a loop not unrolled leaves it)
if grep -E "bytes spill" "$log" | grep -vqE "(^|[^0-9])0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"; then
  echo "a kernel spills registers or keeps a stack frame"; exit 1
fi
echo "== import and CUDA kernels"
(cd /tmp && "$OLDPWD/.venv-cuda/bin/python" - <<'PY'
import torch
import rowconv_ext
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU available:", torch.cuda.is_available())
for op in ("row_conv1d", "row_conv1d_grad_input", "row_conv1d_grad_weight", "row_conv1d_grad_bias",
           "row_conv1d_update"):
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"rowconv::{op}", key), (op, key)
    print(f"rowconv::{op}: CPU and CUDA kernels registered")
assert torch._C._dispatch_has_kernel_for_dispatch_key("rowconv::row_conv1d", "AutocastCUDA")
PY
)
# Without a GPU this is the floor check on the CPU, where scripts/test.sh runs
# every test on the pinned torch: each test function here at least once, an
# eighth of the parametrizations (CI's time: a quarter took 174 s of a
# 2022 s CI run on Zen 3, whose compiling stages are 1.2-1.3x Zen 4's, and
# Zen 4 had run 1711-1802 s against its 30 minutes); on a GPU, all of them. The
# lower instruction sets' sweep (test_cpu_isa.py) is left to scripts/test.sh:
# it reruns four test files in a subprocess per instruction set (100-115 s
# for the baseline one then, half of this stage's tests on Zen 4, where CI
# ran 1802-1827 s against its 30 minutes; 42 s on Zen 3 since it runs with
# an L3 of 2 MiB, session 41), and those files run here anyway.
every_nth=8
.venv-cuda/bin/python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2> /dev/null && every_nth=1
echo "== tests against this build ($(.venv-cuda/bin/python -c 'import torch; print("torch", torch.__version__)'), --every-nth $every_nth)"
.venv-cuda/bin/pytest -q -m "not cuda_emulation" --every-nth "$every_nth" \
  --deselect tests/test_cpu_isa.py::test_lower_instruction_sets_pass_the_sweep "$@"
