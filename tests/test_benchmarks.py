"""The GPU benchmark script runs end to end (on the CPU, --dry-run: every code
path, the ceilings included), so that it works the day a GPU is there; its
numbers are not looked at here."""
import importlib.util
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cuda.py"


def run_benchmark(script, args, tmp_path, timeout=300):
    """script (a path under benchmarks/) with args, in tmp_path, importing the
    rowconv_ext under test wherever it is (the scripts' ops are new); its
    completed process, once it exited with 0."""
    import os

    import rowconv_ext
    package_root = str(pathlib.Path(rowconv_ext.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


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


FFT_BENCH = BENCH.parent / "bench_fft.py"


def test_fft_benchmark_quick(tmp_path):
    """bench_fft.py --quick: every part runs on tiny settings and writes its CSV
    (machine header included) and plots; the verdict lines are printed."""
    done = subprocess.run([sys.executable, str(FFT_BENCH), "--quick", "--min-time", "0.005", "--out", str(tmp_path),
                           "--tag", "smoke"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for part in ("rowconv", "convolve", "sweep", "auto_cpu_shapes"):
        lines = (tmp_path / f"fft_{part}_smoke.csv").read_text().splitlines()
        assert any(line.startswith("# l1d_per_core:") for line in lines), part
        assert len([line for line in lines if not line.startswith("#")]) >= 2, part  # column names and data
    if importlib.util.find_spec("matplotlib"):  # plots are skipped, and said, without it
        for part in ("rowconv", "convolve", "sweep"):
            assert (tmp_path / f"fft_{part}_smoke.png").stat().st_size > 0
    for verdict in ("target convolve:", "target sweep:", "target auto-on-cpu-shapes:"):
        assert verdict in done.stdout


def test_fft_benchmark_calls_convolve_rows_with_method(monkeypatch):
    """The convolve part calls convolve_rows(A, B, method=m) once convolve_rows
    takes a method, and the shim it stands in for until then gives scipy's numbers."""
    import numpy as np
    import scipy.signal

    sys.path.insert(0, str(FFT_BENCH.parent))
    import bench_fft
    import rowconv_ext

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 40)), rng.standard_normal((3, 7))
    for method in ("auto", "direct", "fft"):
        np.testing.assert_allclose(bench_fft._convolve_rows_shim(a, b, method=method),
                                   scipy.signal.fftconvolve(a, b, axes=1), rtol=1e-10, atol=1e-10)
    calls = []

    def with_method(a, b, mode="full", method="auto", out=None):
        calls.append(method)
        return bench_fft._convolve_rows_shim(a, b, mode, method, out)
    monkeypatch.setattr(rowconv_ext, "convolve_rows", with_method)
    fn, name = bench_fft.convolve_impl()
    assert fn is with_method and name.startswith("rowconv_ext.convolve_rows")
    fn(a, b, method="fft")
    assert calls == ["fft"]


STREAMING_BENCH = BENCH.parent / "bench_streaming.py"


def test_streaming_benchmark_quick(tmp_path):
    """bench_streaming.py --quick: the decode part runs on its shapes, checks
    every implementation against the plain step, writes its CSV (machine
    header included) and prints a verdict per shape."""
    done = run_benchmark(STREAMING_BENCH, ["--quick", "--min-time", "0.01", "--out", str(tmp_path), "--tag", "smoke"],
                         tmp_path)
    lines = (tmp_path / "streaming_decode_smoke.csv").read_text().splitlines()
    assert any(line.startswith("# cpu:") for line in lines)
    assert any(line.startswith("# l1d_per_core:") for line in lines)
    assert len([line for line in lines if not line.startswith("#")]) == 1 + 3  # column names + shapes
    for shape in ("forum", "depthwise", "wide"):
        assert f"target decode {shape}:" in done.stdout


CHUNKED_BENCH = BENCH.parent / "bench_chunked.py"


def test_chunked_benchmark_quick(tmp_path):
    """bench_chunked.py --quick: tiny shapes, both directions, the machine line,
    the table and the verdict against the 10% target."""
    done = run_benchmark(CHUNKED_BENCH, ["--quick", "--chunk", "64"], tmp_path)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# machine: ") and "L1d" in lines[0]
    rows = [line.split() for line in lines if line.startswith("tiny")]
    assert [row[6] for row in rows] == ["fwd", "fwd-views", "fwd+bwd"] * 2
    assert all(float(row[9]) > 0 for row in rows)
    assert "target chunked forward (stream layout) within 10% of one pass: worst ratio" in lines[-1]


CPU_BENCH = BENCH.parent / "bench_cpu.py"


def test_cpu_benchmark_runs_every_padding_form(tmp_path):
    """bench_cpu.py on the shapes with padding 'same', causal, stride and
    dilation: every implementation and both backward kernels alone run (the
    native backward needs numeric padding: 'same' once crashed the full
    table), and the CSV has a row per shape and direction."""
    run_benchmark(CPU_BENCH, ["--shapes", "same,causal,forum-stride2,forum-dil2", "--min-time", "0.01",
                              "--out", str(tmp_path), "--tag", "smoke"], tmp_path, timeout=600)
    text = (tmp_path / "cpu_smoke.csv").read_text()
    rows = [line.split(",") for line in text.splitlines() if not line.startswith("#")]
    assert len(rows) == 1 + 4 * 4  # column names + shapes x (fwd, fwd+bwd, grad_in, grad_w)
    # the roofline: the measured bandwidth in the header, a bound and a
    # percentage on every row
    assert "# memory_bandwidth_gbps: " in text
    bound, pct = rows[0].index("bound"), rows[0].index("ours_pct_roofline")
    assert all(row[bound] in ("compute", "memory") and float(row[pct]) > 0 for row in rows[1:])


def test_cpu_benchmark_bfloat16_table(tmp_path):
    """bench_cpu.py --dtype bfloat16 (issue 12's bf16 target): every
    implementation runs on bf16 inputs and the CSV says so."""
    run_benchmark(CPU_BENCH, ["--shapes", "forum", "--dtype", "bfloat16", "--min-time", "0.01",
                              "--out", str(tmp_path), "--tag", "smoke"], tmp_path, timeout=600)
    text = (tmp_path / "cpu_smoke.csv").read_text()
    assert "# dtype: bfloat16" in text
    rows = [line.split(",") for line in text.splitlines() if not line.startswith("#")]
    dtype = rows[0].index("dtype")
    assert [row[dtype] for row in rows[1:]] == ["bfloat16"] * 4


def test_random_shapes_benchmark_runs(tmp_path):
    """bench_random_shapes.py: random shapes, each checked against the recipe,
    then timed against loop, recipe and native; the summary and the CSV."""
    done = run_benchmark(BENCH.parent / "bench_random_shapes.py",
                         ["--count", "3", "--min-time", "0.01", "--out", str(tmp_path), "--tag", "smoke"],
                         tmp_path, timeout=600)
    assert "against the faster of loop and recipe, fwd+bwd: worst" in done.stdout
    rows = [line for line in (tmp_path / "random_shapes_smoke.csv").read_text().splitlines()
            if not line.startswith("#")]
    assert len(rows) == 1 + 3


def test_wide_range_shapes_are_valid_and_reach_the_short_rows():
    """bench_random_shapes.py --range wide: every drawn shape has an output
    and stays within its bounds, and the range holds rows shorter than the
    short-rows kernels' limit (csrc/cpu/short_rows_kernel.h) and kernels
    longer than their rows."""
    spec = importlib.util.spec_from_file_location("bench_random_shapes", BENCH.parent / "bench_random_shapes.py")
    sys.path.insert(0, str(BENCH.parent))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    common = module.common
    specs = module.wide_range_specs(60, seed=3)
    assert len(specs) == 60
    for s in specs:
        assert common.wout(s) >= 1
        macs = s.B * s.Cout * s.H * common.wout(s) * (s.Cin // s.groups) * s.K
        assert 1e4 < macs < 2e9
    assert any(s.W < 32 for s in specs) and any(s.K > s.W for s in specs)
