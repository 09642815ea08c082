#!/usr/bin/env bash
# The CUDA kernels, run by the CPU emulator, under AddressSanitizer + UBSan
# (with -fsanitize=bounds) and under ThreadSanitizer; then the self-test: a
# build with one barrier removed, which ThreadSanitizer must report. Any
# sanitizer report fails. Needs the torch headers of .venv (no libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/sanitizers
mkdir -p "$out"
includes=$(.venv/bin/python -c 'from torch.utils.cpp_extension import include_paths; print(" ".join("-isystem" + p for p in include_paths()))')
# shellcheck disable=SC2086
build() { g++ -std=c++20 -O1 -g -pthread -Icsrc $includes tests/cuda_emulation/sanitizer_harness.cpp "$@"; }
build -fsanitize=address,undefined,bounds -fno-sanitize-recover=all -fno-omit-frame-pointer -o "$out/harness_asan" &
build -fsanitize=thread -o "$out/harness_tsan" &
build -fsanitize=thread -DROWCONV_PLANTED_MISSING_BARRIER -o "$out/harness_tsan_planted" &
wait

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$out/harness_asan"
echo "== ThreadSanitizer"
TSAN_OPTIONS=halt_on_error=1 "$out/harness_tsan"
echo "== ThreadSanitizer self-test: a kernel with one barrier removed"
if TSAN_OPTIONS=halt_on_error=1 "$out/harness_tsan_planted" > "$out/planted.log" 2>&1; then
  echo "the planted race was NOT reported: the sanitizer run cannot fail"; exit 1
fi
grep -q "WARNING: ThreadSanitizer: data race" "$out/planted.log" || { tail -40 "$out/planted.log"; exit 1; }
echo "reported, as it must be:"; grep -m1 -A3 "WARNING: ThreadSanitizer: data race" "$out/planted.log"
