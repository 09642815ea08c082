"""GPU benchmark: row_conv1d's CUDA kernels against the transpose + grouped
F.conv1d recipe (cuDNN), the per-row loop and native grouped conv1d (on data
already in the (B, H*C, W) layout), float32, forward and forward+backward.

First the in-run ceilings of this card, measured, not quoted:
  copy  a 2 GiB device-to-device copy (bytes read + bytes written per second)
  fma   cuBLAS SGEMM 8192^3 with TF32 off: an FP32 FMA-bound rate
then every shape: ms (CUDA events around each call, median), TFLOP/s and
GB/s as fractions of those ceilings (the nominal peaks, --peak-tflops and
--peak-gbs, are a second reference in the CSV). GB/s counts the least
traffic a kernel can make: every input read once, every output written once.
TF32 is off for cuDNN too: every implementation computes in full float32.

Each measurement rotates among enough copies of its inputs that the L2 (50
MB on an H200) holds none of them from one call to the next, runs at least
5 and at most --reps calls, and stops after about --budget seconds.

The alternatives, the shape specs and the check against the recipe are those
of bench_cpu.py; a shape that fails the check is timed anyway, marked, and
makes the exit status 1. `--dry-run` runs every code path (ceilings
included) on the CPU with tiny shapes and one call: CI's proof that the
script works where there is no GPU.

    python3 benchmarks/bench_cuda.py            # on a GPU machine: ~2 min on an H200
"""
import argparse
import csv
import math
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # bench_cpu, from any cwd
import bench_cpu as common  # noqa: E402
from bench_cpu import Spec  # noqa: E402

SHAPES = [
    Spec("forum", 32, 15, 10, 100, 15, 3),
    Spec("forum-x100", 3200, 15, 10, 100, 15, 3),  # the forum shape, 100x the batch
    Spec("forum-stride2", 32, 15, 10, 100, 15, 3, stride=2),
    Spec("forum-long", 32, 15, 10, 4096, 15, 3),  # long rows
    Spec("wide", 8, 64, 16, 1024, 64, 5),
    Spec("dw-k4", 64, 1, 4096, 1024, 1, 4),
    Spec("dw-k20", 64, 1, 4096, 1024, 1, 20),
    Spec("dw-k64", 16, 1, 256, 8192, 1, 64),  # depthwise, long rows
    Spec("causal", 32, 15, 10, 512, 15, 5, padding="causal", dilation=2),
]
SUMMARY_SHAPES = ["forum", "dw-k4", "dw-k20", "dw-k64"]
IMPLS = {"ours": common.ours, "loop": common.loop, "recipe": common.recipe, "native": common.native}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def measure_ms(steps, device, max_reps, budget_s):
    """Median ms of steps[i % len(steps)]() (one step per copy of the inputs),
    after a warm-up of each copy; CUDA events on a GPU, perf_counter on the CPU."""
    for step in steps:
        step()  # warm-up: allocator, cuDNN's algorithm choice, first touch of each copy
    sync(device)
    times, t_start = [], time.perf_counter()
    while len(times) < max_reps and (len(times) < 5 or time.perf_counter() - t_start < budget_s):
        step = steps[len(times) % len(steps)]
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def tf32_off():
    # Full float32 everywhere: the ceilings and the alternatives alike.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def ceilings(device, dry_run, max_reps):
    """(copy GB/s, fp32 FMA TFLOP/s, descriptions) measured on this device."""
    n_bytes = 2**20 if dry_run else 2**31
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    copy_ms = measure_ms([lambda: dst.copy_(src)], device, max_reps, 0.5)
    copy_gbs = 2 * n_bytes / copy_ms / 1e6  # read + write
    n = 256 if dry_run else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    mm_ms = measure_ms([lambda: torch.mm(a, b, out=c)], device, min(max_reps, 20), 1.0)
    fma_tflops = 2 * n**3 / mm_ms / 1e9
    return copy_gbs, fma_tflops, (f"device-to-device copy of {n_bytes / 2**30:g} GiB (read + write)",
                                  f"cuBLAS SGEMM {n}^3, TF32 off (an FP32 FMA-bound rate)")


def min_bytes(s, backward):
    """Least traffic: inputs read once, outputs written once (float32)."""
    x, w, b = s.B * s.Cin * s.H * s.W, s.H * s.Cout * (s.Cin // s.groups) * s.K, s.H * s.Cout
    y = s.B * s.Cout * s.H * common.wout(s)
    fwd = x + w + b + y
    return 4 * (fwd + (y + x + w + x + w + b if backward else 0))  # grad_out in; grads out


def copies_for(s, l2_bytes):
    """Enough copies of a shape's inputs that, cycling through them, the L2
    holds none of the next call's inputs (at least 2; 3 when one exceeds it)."""
    per_copy = 4 * (s.B * s.Cin * s.H * s.W + s.B * s.Cout * s.H * common.wout(s)
                    + s.H * s.Cout * (s.Cin // s.groups + 1) * s.K)
    return max(3, math.ceil(2 * l2_bytes / per_copy) + 1)


def forward_only(fn, inputs, grad, s):
    """A closure: the forward on inputs that do not require grad (grad unused)."""
    def step():
        with torch.no_grad():
            return fn(*inputs, s)
    return step


def bench_shape(s, device, l2_bytes, max_reps, budget_s):
    """{(direction, impl): ms} and whether ours matched the recipe."""
    torch.manual_seed(0)
    n_copies = 1 if device == "cpu" else copies_for(s, l2_bytes)
    base = [t.to(device) for t in common.make_inputs(s)]
    ok = True
    try:
        common.verify(s, *base)
    except SystemExit as e:  # verify reports and exits: time the shape anyway, fail at the end
        print(e, file=sys.stderr)
        ok = False
    # independent random copies (same shapes): no copy is in the L2 when its turn comes
    copies = [base] + [[torch.randn_like(t) for t in base] for _ in range(n_copies - 1)]
    data = {impl: copies for impl in IMPLS}
    data["native"] = [common.to_native(*c, s) for c in copies]
    times = {}
    for direction, backward in (("fwd", False), ("fwd+bwd", True)):
        for impl, fn in IMPLS.items():
            make = common.fwd_bwd if backward else forward_only
            steps = [make(fn, (x, w, b), g, s) for x, w, b, g in data[impl]]
            times[direction, impl] = measure_ms(steps, device, max_reps, budget_s)
    return times, ok, n_copies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(s.name for s in SHAPES))
    ap.add_argument("--reps", type=int, default=50, help="most calls per measurement")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement, after 5 calls")
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="nominal FP32 peak (H200: 67)")
    ap.add_argument("--peak-gbs", type=float, default=4800.0, help="nominal memory bandwidth (H200: 4800)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="h200")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, one call each")
    args = ap.parse_args()

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_cuda.py needs a GPU (use --dry-run to check the script on the CPU)")
    tf32_off()
    reps = 1 if args.dry_run else args.reps
    wanted = args.shapes.split(",")
    unknown = set(wanted) - {s.name for s in SHAPES}
    if unknown:
        ap.error(f"unknown shapes {sorted(unknown)}")
    specs = [s for s in SHAPES if s.name in wanted]
    if args.dry_run:  # the same shapes, a tiny batch and width
        specs = [s._replace(B=2, W=min(s.W, 64), H=min(s.H, 8)) for s in specs]
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        l2 = getattr(props, "L2_cache_size", 50 * 2**20) or 50 * 2**20
        name = f"{props.name}, {props.multi_processor_count} SMs, L2 {l2 / 2**20:.0f} MiB"
        versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        l2, name, versions = 50 * 2**20, "cpu (dry run)", f"torch {torch.__version__}"
    copy_gbs, fma_tflops, ceiling_names = ceilings(device, args.dry_run, reps)
    header_lines = [
        f"device: {name}; {versions}; float32, TF32 off; "
        + (f"CUDA events, median of 5 to {reps} calls" if device == "cuda" else "perf_counter, one call"),
        f"ceiling copy: {copy_gbs:.0f} GB/s = {100 * copy_gbs / args.peak_gbs:.0f}% of nominal "
        f"{args.peak_gbs:g} ({ceiling_names[0]})",
        f"ceiling fma: {fma_tflops:.2f} TFLOP/s = {100 * fma_tflops / args.peak_tflops:.0f}% of nominal "
        f"{args.peak_tflops:g} ({ceiling_names[1]})",
        "%fma, %copy: fractions of these measured ceilings; x_ours = impl time / our time (> 1: ours faster)",
    ]
    for line in header_lines:
        print("# " + line, flush=True)
    header = ("shape", "dir", "impl", "copies", "ms", "TFLOP/s", "%fma", "%nominal_flops", "GB/s", "%copy",
              "%nominal_bw", "x_ours", "check")
    print("{:13} {:8} {:7} {:>6} {:>9} {:>8} {:>6} {:>8} {:>6} {:>7}".format(
        *(header[i] for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 11))))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cuda_{'dryrun' if args.dry_run else args.tag}.csv"
    f = open(path, "w", newline="")  # written shape by shape: a run cut short keeps what it measured
    f.writelines("# " + line + "\n" for line in header_lines)  # pandas.read_csv(path, comment="#")
    writer = csv.writer(f)
    writer.writerow(header)
    rows, all_ok = [], True
    for s in specs:
        times, ok, n_copies = bench_shape(s, device, l2, reps, args.budget)
        all_ok &= ok
        for (direction, impl), ms in times.items():
            backward = direction == "fwd+bwd"
            tflops = common.fwd_flops(s) * (3 if backward else 1) / ms / 1e9
            gbs = min_bytes(s, backward) / ms / 1e6
            row = (s.name, direction, impl, n_copies, round(ms, 5), round(tflops, 4),
                   round(100 * tflops / fma_tflops, 2), round(100 * tflops / args.peak_tflops, 2), round(gbs, 1),
                   round(100 * gbs / copy_gbs, 2), round(100 * gbs / args.peak_gbs, 2),
                   round(ms / times[direction, "ours"], 3), "ok" if ok else "MISMATCH")
            rows.append(row)
            writer.writerow(row)
            print("{:13} {:8} {:7} {:6d} {:9.4f} {:8.3f} {:6.1f} {:8.0f} {:6.1f} {:7.2f}".format(
                *(row[i] for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 11))) + ("" if ok else "  MISMATCH"), flush=True)
        f.flush()
    f.close()
    print(f"wrote {path}")
    ratios = {(r[0], r[1]): r[11] for r in rows if r[2] == "recipe"}
    parts = [f"{name} {ratios[name, 'fwd']:.2f}x/{ratios[name, 'fwd+bwd']:.2f}x"
             for name in SUMMARY_SHAPES if (name, "fwd") in ratios]
    print("summary: recipe time / our time (fwd/fwd+bwd): " + (", ".join(parts) or "-")
          + ("" if all_ok else "; CHECK FAILED for some shapes"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
