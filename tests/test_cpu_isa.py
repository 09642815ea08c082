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
