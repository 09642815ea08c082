"""The GPU benchmark script runs end to end (on the CPU, --dry-run: every code
path, the ceilings included), so that it works the day a GPU is there; its
numbers are not looked at here."""
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cuda.py"


def test_gpu_benchmark_dry_run(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--dry-run", "--shapes", "forum,dw-k64",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (tmp_path / "cuda_dryrun.csv").read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert any(line.startswith("# ceiling copy:") for line in comments)
    assert any(line.startswith("# ceiling fma:") for line in comments)
    assert len(lines) - len(comments) == 1 + 2 * 2 * 4  # header + shapes x directions x implementations
    assert "summary: recipe time / our time (fwd/fwd+bwd): forum " in done.stdout
