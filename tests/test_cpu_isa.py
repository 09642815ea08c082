"""The CPU micro-kernels exist in AVX-512, AVX2 and baseline builds, chosen at
run time (ROWCONV_CPU_ISA forces a lower one). The selection happens once per
process, so each build runs the sweep in a subprocess."""
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import rowconv_ext  # noqa: F401

TESTS = pathlib.Path(__file__).resolve().parent
ORDER = ["baseline", "avx2", "avx512"]
BEST = torch.ops.rowconv.cpu_isa()


def _run(code, isa):
    env = dict(os.environ, ROWCONV_CPU_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=TESTS)


def test_default_is_the_best_the_cpu_runs():
    assert BEST in ORDER
    assert _run("import torch, rowconv_ext; print(torch.ops.rowconv.cpu_isa())", "").stdout.strip() == BEST


@pytest.mark.slow
@pytest.mark.parametrize("isa", [i for i in ORDER if ORDER.index(i) < ORDER.index(BEST)])
def test_lower_instruction_sets_pass_the_sweep(isa):
    code = ("import sys, pytest, torch, rowconv_ext; assert torch.ops.rowconv.cpu_isa() == sys.argv[1]; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_against_pytorch.py', "
            "'test_layouts_and_threads.py', 'test_autograd.py']))")
    env = dict(os.environ, ROWCONV_CPU_ISA=isa)
    done = subprocess.run([sys.executable, "-c", code, isa], env=env, capture_output=True, text=True, cwd=TESTS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_unknown_instruction_set_is_a_clear_error():
    done = _run("import torch, rowconv_ext; torch.ops.rowconv.row_conv1d(torch.randn(1, 1, 1, 4), "
                "torch.randn(1, 1, 1, 2), None, 1, 0, 0, 1, 1)", "sse9")
    assert done.returncode != 0
    assert "ROWCONV_CPU_ISA must be avx512, avx2 or baseline, got 'sse9'" in done.stderr


def _cpu_flags():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_fma_peak_is_measured_for_each_dtype():
    # The benchmarks' ceiling: a positive rate for the float types, and for
    # bfloat16 exactly where the CPU has AVX-512 BF16 (0 elsewhere). Its size
    # is a measurement, not a test: no timing is asserted.
    for dtype in ("float32", "float64"):
        assert torch.ops.rowconv.cpu_fma_peak_gflops(dtype, 0.01) > 0
    bf16 = torch.ops.rowconv.cpu_fma_peak_gflops("bfloat16", 0.01)
    assert (bf16 > 0) == ("avx512_bf16" in _cpu_flags())


def test_fma_peak_names_a_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be float32, float64 or bfloat16, got 'int8'"):
        torch.ops.rowconv.cpu_fma_peak_gflops("int8", 0.01)
