"""GPU benchmark: row_conv1d's CUDA kernels against the transpose + grouped
F.conv1d recipe (cuDNN), the per-row loop and native grouped conv1d (on data
already in the (B, H*C, W) layout), float32,
forward and forward+backward, timed with CUDA events (medians). Reports ms,
TFLOP/s and GB/s, and their fraction of the card's peaks (--peak-tflops,
--peak-gbs; the defaults are the H200's FP32 non-tensor rate and HBM3e
bandwidth). GB/s counts the least traffic a kernel can make: every input read
once, the output written once.

The alternatives, the shape specs and the check against the recipe are those of
bench_cpu.py. `--dry-run` runs the whole script on the CPU with tiny shapes and
one repetition: CI's proof that it works where there is no GPU.

    .venv-cuda/bin/python benchmarks/bench_cuda.py            # on a GPU machine
"""
import argparse
import csv
import pathlib
import statistics
import sys
import time

import torch

import bench_cpu as common
from bench_cpu import Spec

SHAPES = [
    Spec("forum", 32, 15, 10, 100, 15, 3),
    Spec("forum-x100", 3200, 15, 10, 100, 15, 3),  # the forum shape, 100x the batch
    Spec("forum-stride2", 32, 15, 10, 100, 15, 3, stride=2),
    Spec("wide", 8, 64, 16, 1024, 64, 5),
    Spec("dw-many-rows", 64, 1, 4096, 1024, 1, 20),
    Spec("dw-long", 16, 1, 256, 8192, 1, 64),
    Spec("causal", 32, 15, 10, 512, 15, 5, padding="causal", dilation=2),
]
IMPLS = {"ours": common.ours, "loop": common.loop, "recipe": common.recipe, "native": common.native}


def timer(device):
    """median_ms(fn, reps): CUDA events around each call on a GPU, perf_counter on the CPU."""
    def median_ms(fn, reps):
        fn()  # warm-up (and cuDNN's algorithm choice)
        times = []
        for _ in range(reps):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    return median_ms


def min_bytes(s, backward):
    """Least traffic: inputs read once, outputs written once (float32)."""
    x, w, b = s.B * s.Cin * s.H * s.W, s.H * s.Cout * (s.Cin // s.groups) * s.K, s.H * s.Cout
    y = s.B * s.Cout * s.H * common.wout(s)
    fwd = x + w + b + y
    return 4 * (fwd + (y + x + w + x + w + b if backward else 0))  # grad_out in; grads out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(s.name for s in SHAPES))
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="FP32 peak of the card (H200: 67)")
    ap.add_argument("--peak-gbs", type=float, default=4800.0, help="memory bandwidth of the card (H200: 4800)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="h200")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, one repetition")
    args = ap.parse_args()

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_cuda.py needs a GPU (use --dry-run to check the script on the CPU)")
    reps = 1 if args.dry_run else args.reps
    wanted = set(args.shapes.split(","))
    specs = [s for s in SHAPES if s.name in wanted]
    if args.dry_run:  # the same shapes, a tiny batch and width
        specs = [s._replace(B=2, W=min(s.W, 64), H=min(s.H, 8)) for s in specs]
    median_ms = timer(device)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)"
    print(f"# device: {name}; torch {torch.__version__}; float32; CUDA events, median of {reps}")
    print(f"# peaks: {args.peak_tflops} TFLOP/s, {args.peak_gbs} GB/s")
    header = ("shape", "dir", "impl", "ms", "TFLOP/s", "%peak_flops", "GB/s", "%peak_bw", "x_ours")
    print("{:14} {:8} {:7} {:>9} {:>8} {:>7} {:>8} {:>7} {:>7}".format(*header))
    rows = []
    for s in specs:
        x, w, b, g = (t.to(device) for t in common.make_inputs(s))
        common.verify(s, x, w, b, g)
        # native: grouped conv1d on data already in the (B, H*C, W) layout
        data = {impl: (x, w, b, g) for impl in IMPLS}
        data["native"] = common.to_native(x, w, b, g, s)
        for direction, backward in (("fwd", False), ("fwd+bwd", True)):
            flops = common.fwd_flops(s) * (3 if backward else 1)
            times = {}
            for impl, fn in IMPLS.items():
                xi, wi, bi, gi = data[impl]
                if backward:
                    step = common.fwd_bwd(fn, (xi, wi, bi), gi, s)
                else:
                    def step(fn=fn, args=(xi, wi, bi)):
                        with torch.no_grad():
                            return fn(*args, s)
                times[impl] = median_ms(step, reps)
            for impl, ms in times.items():
                tflops, gbs = flops / ms / 1e9, min_bytes(s, backward) / ms / 1e6
                row = (s.name, direction, impl, ms, tflops, 100 * tflops / args.peak_tflops, gbs,
                       100 * gbs / args.peak_gbs, ms / times["ours"])
                rows.append(row)
                print("{:14} {:8} {:7} {:9.4f} {:8.2f} {:7.1f} {:8.0f} {:7.1f} {:7.2f}".format(*row))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cuda_{'dryrun' if args.dry_run else args.tag}.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header] + rows)
    print(f"wrote {path}  (x_ours = impl time / our time: > 1 means ours is faster)")


if __name__ == "__main__":
    main()
