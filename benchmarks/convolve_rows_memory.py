"""Peak memory of convolve_rows(A, B, out=out) with A and out numpy.memmaps.

A is float32, (rows, N) with N = --length (default 65536) and rows chosen so that A
is --gib GiB (default 4); B is (rows, P), P = --kernel (default 256), in memory; out
is a float32 memmap of the 'full' result, (rows, N + P - 1). Each case (one per
method in --methods) runs in a subprocess of its own, so that peaks do not mix, and
reports:

  peak_rss     the process's peak resident set (ru_maxrss): it counts the pages of
               the two memmaps that the kernel keeps resident (page cache mapped into
               the process), which grow towards input + result size while memory is
               plentiful and are dropped under pressure, so it is not what the work
               needs;
  peak_anon    the peak of the anonymous resident memory (RssAnon in
               /proc/self/status, sampled every 2 ms): torch, B and the temporaries;
  anon_growth  peak_anon minus RssAnon just before the call: the temporaries of the
               call, which convolve_rows bounds by its block budget (_BLOCK_BYTES),
               whatever the size of A and of the result.

and checks three rows of the result against np.convolve in float64.

    python benchmarks/convolve_rows_memory.py --gib 0.25
    python benchmarks/convolve_rows_memory.py --gib 4 --tmp /big/disk

Output: a table on stdout and <out>/convolve_rows_memory_<gib>gib.csv (default out:
benchmarks/results). The memmap files go to --tmp (default: the system's temporary
directory) and are deleted at the end; they need (2 + P / N) x --gib GiB of disk.
"""
import argparse
import importlib.util
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

GIB = 1 << 30
FIELDS = ("method", "gib", "rows", "length", "kernel", "input_bytes", "result_bytes", "block_budget_bytes",
          "seconds", "peak_rss_bytes", "peak_anon_bytes", "baseline_anon_bytes", "anon_growth_bytes",
          "max_rel_err")


def _anon_bytes():
    """RssAnon of this process (Linux); None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _PeakSampler(threading.Thread):
    """The highest RssAnon seen, sampled every 2 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _anon_bytes() or 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.002):
            self.peak = max(self.peak, _anon_bytes() or 0)

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, _anon_bytes() or 0)
        return self.peak


def _shapes(gib, length, kernel):
    rows = max(1, round(gib * GIB / (4 * length)))
    return rows, (rows, length), (rows, kernel), (rows, length + kernel - 1)


def _write_inputs(tmp, gib, length, kernel, seed=0):
    """A (a float32 memmap file of random normals, written in slices) and B (.npy)."""
    rows, a_shape, b_shape, _ = _shapes(gib, length, kernel)
    rng = np.random.default_rng(seed)
    a = np.memmap(tmp / "a.f32", np.float32, "w+", shape=a_shape)
    step = max(1, (64 << 20) // (4 * length))
    for start in range(0, rows, step):
        a[start:start + step] = rng.standard_normal((min(step, rows - start), length), dtype=np.float32)
    a.flush()
    del a
    np.save(tmp / "b.npy", rng.standard_normal(b_shape, dtype=np.float32))


def _child(args):
    """One case: convolve_rows(A, B, out=out) on the files of the parent; prints a JSON line."""
    import rowconv_ext  # noqa: PLC0415 (the children's only: the parent needs no torch)
    from rowconv_ext import convolve as convolve_module  # noqa: PLC0415

    tmp = Path(args.tmp)
    rows, a_shape, b_shape, out_shape = _shapes(args.gib, args.length, args.kernel)
    a = np.memmap(tmp / "a.f32", np.float32, "r", shape=a_shape)
    b = np.load(tmp / "b.npy")
    out = np.memmap(tmp / f"out_{args.child}.f32", np.float32, "w+", shape=out_shape)
    rowconv_ext.convolve_rows(a[:1], b[:1], method=args.child)  # warm-up: libraries loaded, plans made
    baseline = _anon_bytes() or 0
    sampler = _PeakSampler()
    sampler.start()
    start = time.perf_counter()
    result = rowconv_ext.convolve_rows(a, b, method=args.child, out=out)
    out.flush()
    seconds = time.perf_counter() - start
    peak_anon = sampler.stop()
    assert result is out
    errors = []
    for i in sorted({0, rows // 2, rows - 1}):
        ref = np.convolve(a[i].astype(np.float64), b[i].astype(np.float64))
        errors.append(float(np.linalg.norm(out[i] - ref) / (np.linalg.norm(a[i]) * np.linalg.norm(b[i]))))
    print(json.dumps(dict(
        method=args.child, gib=args.gib, rows=rows, length=args.length, kernel=args.kernel,
        input_bytes=a.nbytes + b.nbytes, result_bytes=out.nbytes, block_budget_bytes=convolve_module._BLOCK_BYTES,
        seconds=round(seconds, 3), peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        peak_anon_bytes=peak_anon, baseline_anon_bytes=baseline, anon_growth_bytes=peak_anon - baseline,
        max_rel_err=max(errors))))


def _run_case(args, method, tmp):
    command = [sys.executable, __file__, "--child", method, "--tmp", str(tmp), "--gib", str(args.gib),
               "--length", str(args.length), "--kernel", str(args.kernel)]
    # The children import the rowconv_ext this process would import (found,
    # not imported: the parent needs no torch), else the source tree's.
    spec = importlib.util.find_spec("rowconv_ext")
    package_root = (Path(spec.origin).resolve().parents[1] if spec and spec.origin
                    else Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(package_root),
                                                                   os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    (tmp / f"out_{method}.f32").unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mib(n):
    return f"{n / (1 << 20):9.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=4.0, help="size of A in GiB (default 4)")
    parser.add_argument("--length", type=int, default=65536, help="N, the length of A's rows (default 65536)")
    parser.add_argument("--kernel", type=int, default=256, help="P, the length of B's rows (default 256)")
    parser.add_argument("--methods", default="auto,fft", help="comma-separated methods, one case each")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="CSV folder")
    parser.add_argument("--tmp", default=None, help="folder for the memmap files (default: a temporary one)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="convolve_rows_memory_") as tmp:
        tmp = Path(tmp)
        _write_inputs(tmp, args.gib, args.length, args.kernel)
        results = [_run_case(args, method, tmp) for method in args.methods.split(",")]

    print(f"A float32 {args.gib} GiB, rows of {args.length}, kernels of {args.kernel}; MiB:")
    print(f"{'method':>8} {'input':>9} {'result':>9} {'budget':>9} {'peak RSS':>9} {'peak anon':>9} "
          f"{'anon +':>9} {'seconds':>8} {'rel err':>8}")
    for r in results:
        print(f"{r['method']:>8} {_mib(r['input_bytes'])} {_mib(r['result_bytes'])} "
              f"{_mib(r['block_budget_bytes'])} {_mib(r['peak_rss_bytes'])} {_mib(r['peak_anon_bytes'])} "
              f"{_mib(r['anon_growth_bytes'])} {r['seconds']:8.2f} {r['max_rel_err']:8.1e}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"convolve_rows_memory_{args.gib:g}gib.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(results)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
