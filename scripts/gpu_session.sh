#!/usr/bin/env bash
# The GPU session: everything that needs a real GPU, as one command, on a lent
# machine as it is (its python3 and torch, no network, no venv, nothing
# installed): the extension built in place for sm_90 with every core, then
# the tests on the GPU, the kernels under compute-sanitizer, the benchmark.
# Each step is timed, logged, and guarded by a timeout; a failed step is
# recorded and the next one runs. The last line sums it up.
#
#   bash scripts/gpu_session.sh    # logs: $OUT/gpu/ when $OUT is set, else build/gpu/
#
# Steps, with the time estimated for an H200 machine with 16 cores (limit):
#   env          versions, GPU, tools                                   ~5 s   (60)
#   build        setup.py build_ext --inplace, sm_90, MAX_JOBS=nproc:
#                one nvcc unit (all kernels) next to the C++ files     ~150 s (330)
#   import       the CUDA kernels registered                            ~5 s   (60)
#   tests        pytest --device cuda: test_cuda.py + the device-capable
#                CPU modules, ~880 tests, most a few ms of GPU and a CPU
#                float64 reference; torch.compile ones ~10 s each       ~100 s (240)
#   tour         the tour's kernels counted with torch.profiler          ~15 s  (90)
#   sanitizers   memcheck, racecheck, synccheck, initcheck, in parallel,
#                on the tour (440 op calls on tiny shapes)              ~90 s  (200)
#   bench        ceilings, then 9 shapes x 2 directions x 4 impls,
#                <= 1 s each                                            ~100 s (240)
#   total                                                               ~7.8 min worst case of
# the estimates (the limits, all hit, add up to more: they catch hangs, not slow steps).
# How estimated: the build from its CPU time here (2 cores: nvcc of
# row_conv1d_cuda.cu for sm_90 alone, the C++ files in parallel beside it);
# the tests from the CPU time of the same modules on the CPU (the GPU run does
# the same Python and CPU float64 references, its kernels take microseconds);
# the sanitizers from 4 launches per op call at ~10-50 ms each under a tool
# plus ~20 s of start-up with libtorch; the bench from its per-measurement
# budget. See docs/architecture.md ("The GPU session").
#
# Without a GPU (no nvidia-smi, or torch sees none) every GPU step prints
# "no GPU: skipped <step>", and what needs no GPU still runs: the build
# (needs nvcc and a CUDA build of torch; with a CPU build of torch it is
# skipped, and said so), the tests' collection, the tour on the CPU kernels
# and its --list, the benchmark's --dry-run. Exit status 0 when every step
# that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
LOG_DIR=${OUT:-$REPO/build}/gpu
mkdir -p "$LOG_DIR"
exec > >(tee "$LOG_DIR/session.log") 2>&1
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # the in-place build, from any directory
export PYTHONDONTWRITEBYTECODE=1
export PY=${PYTHON:-python3}
TOUR=scripts/gpu_kernel_tour.py
export TOUR
T_START=$(date +%s.%N)
FAILED=()
: > "$LOG_DIR/steps.csv"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME LIMIT_S CMD...: runs CMD with its output in $LOG_DIR/NAME.log
# (the tail shown here), under a timeout; records the outcome, never stops.
step() {
  local name=$1 limit=$2 t0 rc status
  shift 2
  echo
  echo "=== $name (limit ${limit} s, log $LOG_DIR/$name.log)"
  t0=$(date +%s.%N)
  # bash -c: CMD may be one of the functions below (exported)
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$LOG_DIR/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-15}" "$LOG_DIR/$name.log"
  case $rc in
    0) status=ok ;;
    124 | 137) status="TIMEOUT after ${limit} s"; FAILED+=("$name") ;;
    *) status="FAILED (exit $rc)"; FAILED+=("$name") ;;
  esac
  echo "=== $name: $status in $(elapsed "$t0") s"
  echo "$name,$(elapsed "$t0"),$rc" >> "$LOG_DIR/steps.csv"
  return "$rc"
}

skip() { echo; echo "=== $1: $2"; echo "$1,0,skipped" >> "$LOG_DIR/steps.csv"; }

# ---------------------------------------------------------------- what is here
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
for d in "$CUDA_HOME/bin" "$CUDA_HOME/compute-sanitizer"; do
  [ -d "$d" ] && PATH=$PATH:$d
done
TORCH_CUDA=$($PY -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null)
GPU=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 \
   && $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2> /dev/null; then
  GPU=1
fi
env_report() {
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
  command -v nvcc > /dev/null && nvcc --version | tail -n 2 || echo "nvcc: not found"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi: not found"
  command -v compute-sanitizer > /dev/null && compute-sanitizer --version | tail -n 1 || echo "compute-sanitizer: not found"
  echo "cores: $(nproc); repo: $(git -C "$REPO" rev-parse --short HEAD 2> /dev/null) $(git -C "$REPO" status --porcelain 2> /dev/null | grep -c .) changed files"
}
export -f env_report
TAIL=20 step env 60 env_report

# ---------------------------------------------------------------- build
# setup.py build_ext --inplace, of rowconv_ext._C only: the CPU emulation of
# the kernels (_cuda_emulation) is not needed here, and torch < 2.13 compiles
# it with -std=c++17, which its std::barrier does not build with.
build_c() {
  $PY - <<'PY'
import sys
import setuptools

setup = setuptools.setup


def only_c(**kw):
    kw["ext_modules"] = [e for e in kw["ext_modules"] if e.name == "rowconv_ext._C"]
    setup(**kw)


setuptools.setup = only_c
sys.argv = ["setup.py", "build_ext", "--inplace"]
exec(compile(open("setup.py").read(), "setup.py", "exec"), {"__name__": "__main__", "__file__": "setup.py"})
PY
}
export -f build_c
BUILT=0
if [ -z "$TORCH_CUDA" ]; then
  skip build "CPU build of torch ($($PY -c 'import torch; print(torch.__version__)' 2>&1)): skipped build (it needs a CUDA build of torch)"
elif ! command -v nvcc > /dev/null; then
  skip build "no nvcc (CUDA_HOME=$CUDA_HOME): skipped build"
else
  # sm_90 only; every core for the C++ files (the .cu file is one nvcc job)
  if FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=$(nproc) step build 330 build_c; then
    BUILT=1
  fi
  spills=$(grep -E "bytes spill" "$LOG_DIR/build.log" | grep -vc " 0 bytes spill stores, 0 bytes spill loads")
  echo "ptxas: $spills kernel(s) spill registers"
fi
check_import() {
  $PY - <<'PY'
import torch
import rowconv_ext
print("rowconv_ext from", rowconv_ext.__file__)
for op in ("row_conv1d", "row_conv1d_grad_input", "row_conv1d_grad_weight", "row_conv1d_grad_bias"):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"rowconv::{op}", "CUDA"), f"{op}: no CUDA kernel"
print("CUDA kernels registered for the four ops")
PY
}
export -f check_import
IMPORTS=0
if [ "$BUILT" = 1 ]; then
  step import 60 check_import && IMPORTS=1
elif [ -z "$TORCH_CUDA" ] && $PY -c 'import rowconv_ext' 2> /dev/null; then
  IMPORTS=1  # no build here, but one from before: the CPU steps can use it (never after a failed build)
fi

# ---------------------------------------------------------------- tests
TEST_FILES=(tests/test_cuda.py tests/test_against_pytorch.py tests/test_autograd.py tests/test_func_transforms.py
            tests/test_complex.py tests/test_compile.py tests/test_layouts_and_threads.py
            tests/test_ecosystem.py::test_cuda_autocast_casts_like_conv1d)
PYTEST=($PY -m pytest -q -p no:cacheprovider -rfEs --durations=15)
if [ "$GPU" = 1 ] && [ "$IMPORTS" = 1 ]; then
  TAIL=40 step tests 240 "${PYTEST[@]}" --device cuda --junitxml="$LOG_DIR/tests.xml" "${TEST_FILES[@]}"
else
  echo; echo "=== no GPU: skipped tests (the GPU run); collecting them instead"
  TAIL=3 step tests-collect 120 "${PYTEST[@]}" --collect-only "${TEST_FILES[@]}"
fi

# ---------------------------------------------------------------- the kernel tour
step tour-list 30 $PY "$TOUR" --list
if [ "$GPU" = 1 ] && [ "$IMPORTS" = 1 ]; then
  TAIL=12 step tour-coverage 90 $PY "$TOUR" --coverage
elif [ "$IMPORTS" = 1 ]; then
  skip tour-coverage "no GPU: skipped tour-coverage"
  step tour-cpu 120 $PY "$TOUR" --device cpu
else
  skip tour "no GPU and no build: skipped tour"
fi

# ---------------------------------------------------------------- compute-sanitizer
TOOLS=(memcheck racecheck synccheck initcheck)
sanitize() {
  # Without the caching allocator every tensor is its own allocation: memcheck
  # sees the end of each, initcheck sees fresh memory.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$1" --error-exitcode 1 --target-processes all \
    --print-limit 50 $PY "$TOUR"
}
export -f sanitize
if [ "$GPU" = 1 ] && [ "$IMPORTS" = 1 ] && command -v compute-sanitizer > /dev/null; then
  # in parallel: each one's start-up and host-side bookkeeping are CPU-bound, and there are 16 cores
  t0=$(date +%s.%N)
  for tool in "${TOOLS[@]}"; do
    (TAIL=6 step "sanitizer-$tool" 200 sanitize "$tool" > "$LOG_DIR/sanitizer-$tool.console" 2>&1) &
  done
  wait
  for tool in "${TOOLS[@]}"; do
    cat "$LOG_DIR/sanitizer-$tool.console"
    grep -q ",0$" <(grep "^sanitizer-$tool," "$LOG_DIR/steps.csv") || FAILED+=("sanitizer-$tool")
  done
  echo "=== sanitizers: $(elapsed "$t0") s in all"
else
  for tool in "${TOOLS[@]}"; do skip "sanitizer-$tool" "no GPU: skipped sanitizer-$tool"; done
fi

# ---------------------------------------------------------------- benchmark
if [ "$GPU" = 1 ] && [ "$IMPORTS" = 1 ]; then
  TAIL=80 step bench 240 $PY benchmarks/bench_cuda.py --out "$LOG_DIR" --tag h200
  [ -f "$LOG_DIR/cuda_h200.csv" ] && mkdir -p benchmarks/results && cp "$LOG_DIR/cuda_h200.csv" benchmarks/results/
else
  skip bench "no GPU: skipped bench; running its --dry-run on the CPU"
  [ "$IMPORTS" = 1 ] && TAIL=3 step bench-dry-run 180 $PY benchmarks/bench_cuda.py --dry-run --out "$LOG_DIR"
fi

# ---------------------------------------------------------------- summary
tests_line=$(grep -hEo "[0-9]+ (passed|failed|skipped|errors?|deselected)" "$LOG_DIR/tests.log" 2> /dev/null | paste -sd, -)
san=()
for tool in "${TOOLS[@]}"; do
  log=$LOG_DIR/sanitizer-$tool.log
  if [ ! -f "$log" ]; then san+=("$tool skipped"); continue; fi
  n=$(grep -Eo "(ERROR SUMMARY: [0-9]+|RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?)" "$log" | grep -Eo "[0-9]+" | tail -n 1)
  san+=("$tool ${n:-?}")
done
ratios=$(grep -h "^summary: recipe time" "$LOG_DIR/bench.log" 2> /dev/null | sed 's/^summary: //')
status=PASS
[ ${#FAILED[@]} -gt 0 ] && status="FAIL (${FAILED[*]})"
echo
echo "GPU SESSION $status in $(elapsed "$T_START") s | gpu $([ "$GPU" = 1 ] && echo yes || echo no) | tests: ${tests_line:-not run}" \
     "| sanitizer reports: $(IFS=,; echo "${san[*]}") | ${ratios:-bench not run} | logs: $LOG_DIR"
[ ${#FAILED[@]} -eq 0 ]
