#!/usr/bin/env bash
# The CUDA kernels, run by the CPU emulator (which enforces a GPU's launch
# rules and 16-byte load alignment), under AddressSanitizer + UBSan (with
# -fsanitize=bounds) and under ThreadSanitizer, side by side; then the
# self-tests: a build with one barrier removed, which ThreadSanitizer must
# report, and one planted violation of each hardware rule, which the
# emulator must report. Any sanitizer report fails.
# ThreadSanitizer (one OS thread per CUDA thread) runs the harness's "tsan"
# set: every kernel specialisation over several shared-memory chunks on a
# small grid (where a race would be); AddressSanitizer runs the "asan" set:
# those, the same in one chunk on the full grid, and the larger problems.
# The run fails if the "tsan" set launches fewer kernels than the "asan" set.
# Needs the torch headers of .venv (no libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/sanitizers
mkdir -p "$out"
includes=$(.venv/bin/python -c 'from torch.utils.cpp_extension import include_paths; print(" ".join("-isystem" + p for p in include_paths()))')
start=$(date +%s)
phase_start=$start
phase() {  # prints the time of the phase that just ended
  local now; now=$(date +%s)
  echo "-- $1: $((now - phase_start)) s (total $((now - start)) s)"
  phase_start=$now
}
# shellcheck disable=SC2086
compile() { g++ -std=c++20 -O1 -g -pthread -Icsrc $includes "$@"; }
harness=tests/cuda_emulation/sanitizer_harness.cpp
echo "== building the harness (ASan+UBSan, TSan, TSan with a barrier removed) and the rules self-test"
pids=()
compile $harness -fsanitize=address,undefined,bounds -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -o "$out/harness_asan" & pids+=($!)
compile $harness -fsanitize=thread -o "$out/harness_tsan" & pids+=($!)
compile $harness -fsanitize=thread -DROWCONV_PLANTED_MISSING_BARRIER -o "$out/harness_tsan_planted" & pids+=($!)
compile tests/cuda_emulation/launch_rules_selftest.cpp -DROWCONV_PLANTED_MISALIGNED_LOAD16 \
  -o "$out/launch_rules_selftest" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
phase "build"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer (asan set) and ThreadSanitizer (tsan set), side by side"
timed() {  # timed LOG command...: runs the command, its output to LOG, then its time appended
  local log=$1 t0 rc=0; shift; t0=$(date +%s)
  "$@" > "$log" 2>&1 || rc=$?
  echo "($(( $(date +%s) - t0 )) s)" >> "$log"
  return $rc
}
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  timed "$out/asan.log" "$out/harness_asan" asan "$out/kernels_asan.txt" & asan_pid=$!
TSAN_OPTIONS=halt_on_error=1 timed "$out/tsan.log" "$out/harness_tsan" tsan "$out/kernels_tsan.txt" & tsan_pid=$!
status=0
wait $asan_pid || { echo "AddressSanitizer + UBSan run FAILED:"; tail -60 "$out/asan.log"; status=1; }
wait $tsan_pid || { echo "ThreadSanitizer run FAILED:"; tail -60 "$out/tsan.log"; status=1; }
echo "ASan+UBSan: $(grep "set:" "$out/asan.log" || true) $(tail -1 "$out/asan.log")"
echo "TSan:       $(grep "set:" "$out/tsan.log" || true) $(tail -1 "$out/tsan.log")"
[ $status -eq 0 ] || exit 1
missing=$(comm -23 <(cut -f1 "$out/kernels_asan.txt" | sort) <(cut -f1 "$out/kernels_tsan.txt" | sort))
if [ -n "$missing" ]; then
  echo "kernels launched under ASan+UBSan but not under ThreadSanitizer:"; echo "$missing"; exit 1
fi
echo "every kernel launched under ASan+UBSan ($(wc -l < "$out/kernels_asan.txt")) also ran under ThreadSanitizer"
for set in asan tsan; do  # where the time went (each case's time is in the log)
  # (awk reads all of sort's output: `head` exiting early made sort die of
  # SIGPIPE now and then, and pipefail turned that into a failed run)
  echo "slowest cases ($set):"; grep -E "^ *[0-9.]+ s  " "$out/$set.log" | sort -rn | awk 'NR <= 3'
done
phase "sanitizer runs"

echo "== ThreadSanitizer self-test: a kernel with one barrier removed"
if TSAN_OPTIONS=halt_on_error=1 "$out/harness_tsan_planted" > "$out/planted.log" 2>&1; then
  echo "the planted race was NOT reported: the sanitizer run cannot fail"; exit 1
fi
grep -q "WARNING: ThreadSanitizer: data race" "$out/planted.log" || { tail -40 "$out/planted.log"; exit 1; }
echo "reported, as it must be:"; grep -m1 -A3 "WARNING: ThreadSanitizer: data race" "$out/planted.log"

echo "== emulator self-test: the hardware rules, each violated once"
"$out/launch_rules_selftest" valid > "$out/rules_valid.log" 2>&1 || {
  echo "the launches within the rules failed:"; cat "$out/rules_valid.log"; exit 1; }
check_rule() {  # check_rule MODE EXPECTED: the planted violation must fail with EXPECTED in its output
  local log="$out/rules_$1.log"
  if ("$out/launch_rules_selftest" "$1"; exit $?) > "$log" 2>&1; then  # the subshell reports the abort, in the log
    echo "$1: the planted violation was NOT reported"; cat "$log"; exit 1
  fi
  grep -q -- "$2" "$log" || { echo "$1: failed without the expected report ($2):"; cat "$log"; exit 1; }
  echo "$1: reported, as it must be: $(grep -m1 -- "$2" "$log" | sed 's/^ *what(): *//')"
}
check_rule misaligned-load16 "misaligned address: load16 from"
check_rule launch-bound "1024 threads per block, outside 1 .. 512 (its launch bound)"
check_rule shared-memory "bytes of dynamic shared memory, more than its limit of 49152"
check_rule grid "grid of 2147483648 blocks, outside 1 .. 2147483647"
grep -q "grid of 0 blocks" "$out/rules_grid.log" || { echo "grid: 0 blocks NOT reported"; exit 1; }
phase "self-tests"
