#!/usr/bin/env bash
# The GPU session: everything that needs a real GPU, as one command, on a lent
# machine as it is (its python3 and torch, no network, no venv, nothing
# installed): the extension built in place for sm_90 with every core, then
# the tests on the GPU, the kernels under compute-sanitizer, the benchmark.
# Each step is timed, logged, and guarded by a timeout; a failed step is
# recorded and the next one runs. The last line sums it up.
#
#   bash scripts/gpu_session.sh    # logs: build/gpu/; with $OUT set, packed there too (below)
#
# Phases, with the time estimated for an H200 machine with 16 cores (limit):
#   env, import  versions, GPU, tools; the CUDA kernels registered   ~10 s  (60 each)
#   build        setup.py build_ext --inplace of rowconv_ext._C, sm_90,
#                MAX_JOBS=nproc: the four nvcc units (one per op) are
#                the critical path, the C++ files compile beside them ~120 s (300)
#   checks       in parallel (16 cores, one GPU shared):              ~150 s (200 each)
#                tests-gpu: tests/test_cuda.py (~410 tests)
#                tests-device-{a,b,c,d}: the make_inputs modules with
#                  --device cuda (~480 tests in four processes)
#                tour-coverage: the tour's kernels counted (torch.profiler)
#                sanitizer-{memcheck,racecheck,synccheck,initcheck}: the
#                  tour (474 op calls on tiny shapes) under each tool
#   bench        ceilings, then 9 shapes x 2 directions x 4 impls,
#                each measurement 5..50 calls and about 1 s          ~110 s (180)
#   bench-fft    bench_fft.py --quick --device cuda: the FFT method's
#                four parts on tiny shapes (scipy's CPU-only baselines
#                not timed), 0.02 s a measurement                    ~30 s (60)
#   cost-model   benchmarks/cost_model.py --device cuda: both methods
#                on 12 shapes, ~50 timed calls of 1-100 ms            ~20 s (60)
#   total                                                             ~7.5 min
# and never much more than 8 minutes: each limit is cut to what is left of
# a 480-second budget (GPU_SESSION_BUDGET), so a hang cannot eat the session.
# How estimated (no GPU was available to time it, and the 2 shared cores
# here ran at a load average of 400-800, so only CPU time means anything):
#   build: 160 CPU-s here for all of _C and most of the emulator; its
#     critical path, nvcc of the largest of the four row_conv1d_cuda_*.cu
#     for sm_90 alone, is one serial job, faster on an idle server core.
#   tests: the same six modules on the CPU here took over 10 CPU-min (the GPU
#     run does the same Python work and the same CPU float64 references; its
#     kernels take microseconds, its launches and syncs tens of them);
#     test_cuda.py is a sweep of the same weight. Split into five processes:
#     about 2 CPU-min each on a faster core.
#   sanitizers: ~700 launches of tiny kernels at 10-50 ms each under a
#     tool, plus ~20 s to start libtorch under it.
#   bench: its per-measurement budget (the per-row loop over 4096 rows is the
#     slowest, ~0.5 s a call, 5 calls).
#   bench-fft: ~5 s here on the CPU with --quick (about 150 measurements of
#     0.02 s and their warmups), plus CUDA's start and cuFFT's plans.
# Each step's time goes to steps.csv in the log folder: the first session
# should replace these estimates with it.
#
# Without a GPU (no nvidia-smi, or torch sees none) every GPU step prints
# "no GPU: skipped <step>", and what needs no GPU still runs: the build
# (needs nvcc and a CUDA build of torch; with a CPU build of torch it is
# skipped, and said so), the tests' collection, the tour on the CPU kernels
# and its --list, the benchmark's --dry-run; there is no time budget then.
# Exit status 0 when every step that ran passed, 1 otherwise.
set -uo pipefail

# All in one function, read whole before it runs: editing this file during a
# session cannot change the session.
main() {
cd "$(dirname "$0")/.."
REPO=$PWD
LOG_DIR=$REPO/build/gpu
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
# The device tool brings back at most 8 files from $OUT (and none deeper
# than two folders), and this session writes about 40: with $OUT set, the
# whole log folder goes there as one archive, with the files a session
# commits beside it (at exit, whatever ended it).
pack_for_out() {
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT"
  tar czf "$OUT/gpu_logs.tar.gz" -C "$REPO/build" gpu
  local f
  for f in summary.txt steps.csv session.log cuda_h200.csv cuda_h100.csv cost_model_cuda.json; do
    [ -f "$LOG_DIR/$f" ] && cp "$LOG_DIR/$f" "$OUT/"
  done
  echo "packed for \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
}
trap pack_for_out EXIT
exec > >(tee "$LOG_DIR/session.log") 2>&1
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # the in-place build, from any directory
export PYTHONDONTWRITEBYTECODE=1
export PY=${PYTHON:-python3}
export TOUR=scripts/gpu_kernel_tour.py
T_START=$(date +%s)
DEADLINE=  # set once a GPU is known to be there
FAILED=()
BG_PIDS=()
BG_NAMES=()
: > "$LOG_DIR/steps.csv"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME LIMIT_S CMD...: runs CMD with its output in $LOG_DIR/NAME.log
# (the last $TAIL lines shown here), under a timeout cut to the session's
# deadline; records the outcome in steps.csv (a failure fails the session
# unless INFO is set), never stops the script.
step() {
  local name=$1 limit=$2 t0 rc status
  shift 2
  if [ -n "$DEADLINE" ]; then
    local left=$(( DEADLINE - $(date +%s) ))
    if [ "$left" -lt 10 ]; then
      echo; echo "=== $name: NOT RUN, the session's time budget is spent"
      echo "$name,0,budget" >> "$LOG_DIR/steps.csv"; FAILED+=("$name"); return 1
    fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  echo
  echo "=== $name (limit ${limit} s, log $LOG_DIR/$name.log)"
  t0=$(date +%s.%N)
  # bash -c: CMD may be one of the functions below (exported)
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$LOG_DIR/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-15}" "$LOG_DIR/$name.log"
  case $rc in
    0) status=ok ;;
    124 | 137) status="TIMEOUT after ${limit} s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  if [ "$rc" != 0 ]; then
    if [ -n "${INFO:-}" ]; then status="$status (information only)"; else FAILED+=("$name"); fi
  fi
  echo "=== $name: $status in $(elapsed "$t0") s"
  echo "$name,$(elapsed "$t0"),$rc" >> "$LOG_DIR/steps.csv"
  return "$rc"
}

# bg_step NAME LIMIT_S CMD...: step in the background (its console in
# NAME.console); join_steps waits for them all and collects their outcome.
bg_step() {
  (step "$@" > "$LOG_DIR/$1.console" 2>&1) &
  BG_PIDS+=($!)
  BG_NAMES+=("$1")
}
join_steps() {
  [ ${#BG_PIDS[@]} -gt 0 ] || return 0
  wait "${BG_PIDS[@]}"
  local name
  for name in "${BG_NAMES[@]}"; do
    cat "$LOG_DIR/$name.console"
    grep -q "^$name,[0-9.]*,0$" "$LOG_DIR/steps.csv" || FAILED+=("$name")
  done
  BG_PIDS=()
  BG_NAMES=()
}

skip() { echo; echo "=== $1: $2"; echo "$1,0,skipped" >> "$LOG_DIR/steps.csv"; }

# ---------------------------------------------------------------- what is here
# CUDA_HOME: as given, else /usr/local/cuda where it exists; else unset, and
# torch's build looks for the nvcc on PATH itself (a CUDA_HOME without one
# would stop it looking)
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then
  export CUDA_HOME=/usr/local/cuda
fi
for d in "${CUDA_HOME:-/nonexistent}/bin" "${CUDA_HOME:-/nonexistent}/compute-sanitizer"; do
  [ -d "$d" ] && PATH=$PATH:$d
done
TORCH_CUDA=$($PY -c 'import torch; print(torch.version.cuda or "")' 2> /dev/null)
GPU=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 \
   && $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2> /dev/null; then
  GPU=1
  DEADLINE=$(( T_START + ${GPU_SESSION_BUDGET:-480} ))
fi
env_report() {
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
  command -v nvcc > /dev/null && nvcc --version | tail -n 2 || echo "nvcc: not found"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi: not found"
  command -v compute-sanitizer > /dev/null && compute-sanitizer --version | tail -n 1 || echo "compute-sanitizer: not found"
  echo "cores: $(nproc); repo: $(git -C "$REPO" rev-parse --short HEAD 2> /dev/null) with $(git -C "$REPO" status --porcelain 2> /dev/null | grep -c .) changed files"
}
export -f env_report
TAIL=20 INFO=1 step env 60 env_report

# ---------------------------------------------------------------- build
# setup.py build_ext --inplace, of rowconv_ext._C only: the CPU emulation of
# the kernels (_cuda_emulation) is not needed on a GPU machine.
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
  skip build "no nvcc (CUDA_HOME=${CUDA_HOME:-unset}): skipped build"
  FAILED+=(nvcc-missing)
else
  # 300 s on the GPU machine; longer where there is no GPU (CI: 2 shared cores), as nothing waits
  limit=300
  [ "$GPU" = 1 ] || limit=1800
  # sm_90 only (GPU_SESSION_ARCHS: CI passes the list scripts/cuda_build.sh
  # has just built, whose objects in build/nvcc are then all up to date);
  # every core (one nvcc job per op, the C++ files beside them)
  if ROWCONV_BUILD_BASE=${ROWCONV_BUILD_BASE:-build/nvcc} FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${GPU_SESSION_ARCHS:-9.0} MAX_JOBS=$(nproc) \
     step build "$limit" build_c; then
    BUILT=1
  fi
  spills=$(grep -E "bytes spill" "$LOG_DIR/build.log" \
           | grep -vcE "(^|[^0-9])0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads")
  echo "ptxas: $spills kernel(s) spill registers or keep a stack frame"
  # a spill is a slow kernel: fails the session (CI: cuda_build.sh checks them, where they were compiled)
  [ "$BUILT" = 1 ] && [ "$spills" != 0 ] && FAILED+=(register-spills)
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
RUN_GPU=0
[ "$GPU" = 1 ] && [ "$IMPORTS" = 1 ] && RUN_GPU=1

# ---------------------------------------------------------------- checks, in parallel
# Tests: test_cuda.py (GPU against CPU float64 references, autocast,
# compile, torch.func, streams) and, with --device cuda, every module built
# on make_inputs, in four processes of about equal CPU time (the gradchecks
# of test_func_transforms.py are the largest part).
GPU_TESTS=(tests/test_cuda.py tests/test_ecosystem.py::test_cuda_autocast_casts_like_conv1d)
DEVICE_A=(-k over_the_sweep tests/test_func_transforms.py)
DEVICE_B=(-k "not over_the_sweep" tests/test_func_transforms.py)
DEVICE_C=(tests/test_against_pytorch.py tests/test_autograd.py)
DEVICE_D=(tests/test_complex.py tests/test_compile.py tests/test_layouts_and_threads.py)
# A few CPU threads each (the references are small); compiles in-process
# (no worker pool to start for graphs of a kernel or two).
PYTEST=(env OMP_NUM_THREADS=4 TORCHINDUCTOR_COMPILE_THREADS=1
        $PY -m pytest -q -p no:cacheprovider -rfEs --durations=10 --device cuda)
TOOLS=(memcheck racecheck synccheck initcheck)
sanitize() {
  # Without the caching allocator every tensor is its own allocation: memcheck
  # sees the end of each, initcheck sees fresh memory. $SAN_FILTER: only our
  # kernels are checked (torch's own are not ours to fix).
  # On some machines (gVisor) compute-sanitizer refuses the device ("Device
  # not supported", then error 999): said so, and not a failure of ours.
  local log rc
  log=$(mktemp)
  # shellcheck disable=SC2086
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$1" --error-exitcode 1 --target-processes all \
    --print-limit 50 $SAN_FILTER $PY "$TOUR" > "$log" 2>&1
  rc=$?
  cat "$log"
  if [ "$rc" != 0 ] && grep -q "Device not supported" "$log"; then
    echo "SANITIZER UNSUPPORTED: compute-sanitizer does not support this device (as on gVisor machines): nothing checked"
    rc=0
  fi
  rm -f "$log"
  return "$rc"
}
export -f sanitize

step tour-list 30 $PY "$TOUR" --list
if [ "$RUN_GPU" = 1 ]; then
  SAN_FILTER=
  if command -v compute-sanitizer > /dev/null; then
    # The kernel-name filter's spelling changed between releases: the first
    # one this compute-sanitizer accepts (tried on a program without CUDA).
    for opt in --kernel-name --kernel-regex --filter; do
      if compute-sanitizer --help 2>&1 | grep -q -- "$opt" \
         && compute-sanitizer "$opt" kns=row_conv1d true > /dev/null 2>&1; then
        SAN_FILTER="$opt kns=row_conv1d"
        break
      fi
    done
    echo; echo "=== compute-sanitizer kernel filter: ${SAN_FILTER:-none (every kernel checked)}"
  fi
  export SAN_FILTER
  t_checks=$(date +%s.%N)
  echo; echo "=== checks: tests, tour coverage and sanitizers in parallel; their output follows when all are done"
  TAIL=25 bg_step tests-gpu 200 "${PYTEST[@]}" --junitxml="$LOG_DIR/tests-gpu.xml" "${GPU_TESTS[@]}"
  TAIL=25 bg_step tests-device-a 200 "${PYTEST[@]}" --junitxml="$LOG_DIR/tests-device-a.xml" "${DEVICE_A[@]}"
  TAIL=25 bg_step tests-device-b 200 "${PYTEST[@]}" --junitxml="$LOG_DIR/tests-device-b.xml" "${DEVICE_B[@]}"
  TAIL=25 bg_step tests-device-c 200 "${PYTEST[@]}" --junitxml="$LOG_DIR/tests-device-c.xml" "${DEVICE_C[@]}"
  TAIL=25 bg_step tests-device-d 200 "${PYTEST[@]}" --junitxml="$LOG_DIR/tests-device-d.xml" "${DEVICE_D[@]}"
  TAIL=12 bg_step tour-coverage 120 $PY "$TOUR" --coverage
  if command -v compute-sanitizer > /dev/null; then
    for tool in "${TOOLS[@]}"; do
      TAIL=6 bg_step "sanitizer-$tool" 200 sanitize "$tool"
    done
  else
    for tool in "${TOOLS[@]}"; do skip "sanitizer-$tool" "no compute-sanitizer: skipped sanitizer-$tool"; done
    FAILED+=(compute-sanitizer-missing)
  fi
  join_steps
  echo; echo "=== checks: all done in $(elapsed "$t_checks") s"
else
  echo; echo "=== no GPU: skipped tests-gpu, tests-device-{a,b,c,d} (collecting them instead, where built)"
  if [ "$IMPORTS" = 1 ]; then
    TAIL=3 step tests-collect 120 $PY -m pytest -q -p no:cacheprovider --collect-only \
      "${GPU_TESTS[@]}" "${DEVICE_C[@]}" "${DEVICE_D[@]}" tests/test_func_transforms.py
    skip tour-coverage "no GPU: skipped tour-coverage; running the tour on the CPU kernels"
    step tour-cpu 300 $PY "$TOUR" --device cpu
  else
    skip tour "no GPU and no build: skipped tour"
  fi
  for tool in "${TOOLS[@]}"; do skip "sanitizer-$tool" "no GPU: skipped sanitizer-$tool"; done
fi

# ---------------------------------------------------------------- benchmark (alone on the GPU)
if [ "$RUN_GPU" = 1 ]; then
  # the tag from the GPU's name: a run may get an H100 as well as an H200
  GPU_TAG=$($PY -c 'import torch; n = torch.cuda.get_device_name(); print(next((t.lower() for t in ("H200", "H100") if t in n), "gpu"))')
  TAIL=80 step bench 180 $PY benchmarks/bench_cuda.py --out "$LOG_DIR" --tag "$GPU_TAG"
  [ -f "$LOG_DIR/cuda_$GPU_TAG.csv" ] && mkdir -p benchmarks/results && cp "$LOG_DIR/cuda_$GPU_TAG.csv" benchmarks/results/
  # the FFT method on tiny settings: every code path on the GPU, its checks included (CSVs, PNGs in the log folder)
  TAIL=12 step bench-fft 60 $PY benchmarks/bench_fft.py --quick --device cuda --out "$LOG_DIR"
  # the cost model's constants on the GPU ('auto' on CUDA runs on estimates until these replace
  # them in csrc/fft_plan.cpp): cost_model_cuda.json in the log folder
  TAIL=4 step cost-model 60 $PY benchmarks/cost_model.py --device cuda --repeats 3 --out "$LOG_DIR"
else
  skip bench "no GPU: skipped bench; running its --dry-run on the CPU"
  [ "$IMPORTS" = 1 ] && TAIL=3 step bench-dry-run 300 $PY benchmarks/bench_cuda.py --dry-run --out "$LOG_DIR"
  [ "$IMPORTS" = 1 ] && TAIL=6 step bench-fft-quick 300 $PY benchmarks/bench_fft.py --quick --out "$LOG_DIR"
fi

# ---------------------------------------------------------------- summary
# pytest's last line of each run, added up: "N passed, M failed, ..."
local tests_line ratios status log n tool
tests_line=$(for log in "$LOG_DIR"/tests-gpu.log "$LOG_DIR"/tests-device-?.log; do
               [ -f "$log" ] && tail -n 1 "$log"; done \
  | grep -Eo "[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed)" \
  | awk '{ n[$2] += $1 } END { for (k in n) printf "%s%d %s", (i++ ? ", " : ""), n[k], k }')
local san=()
for tool in "${TOOLS[@]}"; do
  log=$LOG_DIR/sanitizer-$tool.log
  if [ ! -f "$log" ]; then san+=("$tool skipped"); continue; fi
  if grep -q "^SANITIZER UNSUPPORTED" "$log"; then san+=("$tool unsupported on this device"); continue; fi
  n=$(grep -Eo "(ERROR SUMMARY: [0-9]+|RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?)" "$log" \
      | grep -Eo "[0-9]+" | tail -n 1)
  san+=("$tool ${n:-no summary}")
done
ratios=$(grep -h "^summary: recipe time" "$LOG_DIR/bench.log" 2> /dev/null | sed 's/^summary: //')
status=PASS
[ ${#FAILED[@]} -gt 0 ] && status="FAIL (${FAILED[*]})"
echo
echo "GPU SESSION $status in $(( $(date +%s) - T_START )) s | GPU $([ "$GPU" = 1 ] && echo yes || echo no)" \
     "| tests: ${tests_line:-not run} | sanitizer reports: $(printf '%s, ' "${san[@]}" | sed 's/, $//')" \
     "| ${ratios:-bench not run} | logs: $LOG_DIR" | tee "$LOG_DIR/summary.txt"
[ ${#FAILED[@]} -eq 0 ]
}

main "$@"; exit $?
