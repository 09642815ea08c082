"""Every kernel specialisation the CUDA launcher (csrc/cuda/launch.h) can
pick, launched at least once on small shapes, in float32, float64, float16,
bfloat16 and complex64, through the forward op and the three gradient ops,
then the carried state's reads and the decode step (row_conv1d_update):
the workload of compute-sanitizer in scripts/gpu_session.sh. Under a
sanitizer every launch is slow, so the shapes are tiny and nothing is
compared here (tests/test_cuda.py does that); a fault or a sanitizer report
is what fails.

    python3 scripts/gpu_kernel_tour.py               # on the GPU
    python3 scripts/gpu_kernel_tour.py --device cpu  # the same calls on the CPU kernels
    python3 scripts/gpu_kernel_tour.py --list        # the shapes and what each one is for
    python3 scripts/gpu_kernel_tour.py --coverage    # GPU: the kernels launched (torch.profiler), counted

What picks a specialisation (launch.h): channels per thread 1/4/8 from the
channels per group (4 at most with 8-byte accumulators); positions per
thread 1 for rows of <= 64 outputs, else 4 (2 with 8-byte accumulators);
K = 3; unit stride (grad-input); the depthwise sliding window; grad-weight
tiles of 1 or 4 rows (>= 4 output channels per group) and K taps up to 5,
else 8; split sums when the batch (or width tiles) allow; direct kernels when
one channel's tile does not fit 48 KiB (a long dilated kernel) or offsets
pass int32 (stride >= 2^31).
"""
import argparse
import pathlib
import re
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the in-place build of scripts/gpu_session.sh

# A shape: (B, Cin, H, W, Cout, K, stride, (pad_left, pad_right), dilation, groups, what for)


def _grid():
    """12 shapes: forward (channels per thread 1/4/8) x (1 or several
    positions) x (K = 3 or not); grad-input the same with its own channels
    per group and unit stride or not; grad-weight 1 or 4 rows, taps 1-5."""
    per_group = (1, 3, 6)  # -> 1, 4, 8 channels per thread
    other_k = {0: (1, 2), 1: (4, 5), 2: (1, 5)}
    shapes = []
    for o in range(3):
        for long_row in (0, 1):
            for k3 in (0, 1):
                out_pg, in_pg = per_group[o], per_group[(o + 1) % 3]
                K = 3 if k3 else other_k[o][long_row]
                W = 150 if long_row else 40  # > 64 positions, before and after the stride
                shapes.append((2, 2 * in_pg, 2, W, 2 * out_pg, K, 2 if k3 else 1, (K // 2, K // 2), 1, 2,
                               f"grid: {in_pg} in/{out_pg} out per group, W {W}, K {K}"))
    return shapes


SHAPES = _grid() + [
    (1, 3, 1, 700, 3, 13, 1, (12, 0), 1, 3, "depthwise sliding window, 2 tiles; grad-weight 1 row x 8 taps"),
    (1, 12, 1, 130, 72, 3, 1, (1, 1), 1, 1, "lanes: 9 blocks of 8 output channels share a tile"),
    (1, 64, 1, 600, 8, 3, 1, (1, 1), 1, 1, "forward: several shared-memory chunks of input channels"),
    (1, 8, 1, 600, 64, 3, 1, (1, 1), 1, 1, "grad-input: several shared-memory chunks of output channels"),
    (2, 2, 1, 30, 4, 2, 1, (0, 1), 1, 1, "grad-weight 4 rows x 2 taps"),
    (1, 2, 1, 30, 4, 4, 1, (3, 3), 2, 1, "grad-weight 4 rows x 4 taps, one split (no sum)"),
    (2, 16, 1, 40, 12, 6, 2, (2, 3), 2, 2, "grad-weight 4 rows x 8 taps, split sums"),
    (1, 2, 1, 4000, 2, 64, 1, (9450, 9450), 300, 1, "a channel's tile > 48 KiB: direct forward, grad-input, grad-weight (8 taps)"),
    (1, 2, 1, 12000, 2, 4, 1, (7500, 7500), 5000, 1, "direct grad-weight, 4 taps"),
    (1, 2, 1, 5, 2, 2, 2**32, (1, 1), 1, 1, "stride past int32: direct kernels"),
]
DTYPES = ["float32", "float64", "float16", "bfloat16", "complex64"]

# Distinct kernels the tour launches on a GPU (--coverage), from launch.h:
# forward tiled 2 x 2 x 3 (+ slide) per 4-byte-accumulator type, 2 x 2 x 2
# (+ slide) for float64; grad-input tiled the same without the slide;
# grad-weight tiled 2 rows x 6 taps and direct 4/8 taps; grad-bias and the
# split sum once per type; the decode step once per type. Four scalar types
# (complex64 runs the float ones).
EXPECTED = {
    "row_conv1d_forward_tiled": 3 * 13 + 9,
    "row_conv1d_forward_direct": 4,
    "row_conv1d_grad_input_tiled": 3 * 12 + 8,
    "row_conv1d_grad_input_direct": 4,
    "row_conv1d_grad_weight_tiled": 4 * 12,
    "row_conv1d_grad_weight_direct": 4 * 2,
    "row_conv1d_grad_bias_partial": 4,
    "row_conv1d_sum_splits": 4,
    "row_conv1d_update": 4,
}


def out_width(s):
    B, Cin, H, W, Cout, K, stride, (left, right), dilation, groups, _ = s
    return (W + left + right - dilation * (K - 1) - 1) // stride + 1


def run_tour(device, dtypes, verbose=False, sliced=True):
    import torch

    import rowconv_ext  # noqa: F401  (registers torch.ops.rowconv)

    ops = torch.ops.rowconv
    g = torch.Generator().manual_seed(0)
    calls = 0
    for name in dtypes:
        dtype = getattr(torch, name)
        for s in SHAPES:
            B, Cin, H, W, Cout, K, stride, (left, right), dilation, groups, why = s
            conv = (stride, left, right, dilation, groups)

            def randn(*shape):  # drawn on the CPU: the device sees only copies
                return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(device)

            x, w, b = randn(B, Cin, H, W), randn(H, Cout, Cin // groups, K), randn(H, Cout)
            gy = randn(B, Cout, H, out_width(s))
            t0 = time.perf_counter()
            ops.row_conv1d(x, w, b, *conv)
            ops.row_conv1d_grad_input(gy, w, W, *conv)
            ops.row_conv1d_grad_weight(gy, x, K, *conv)
            ops.row_conv1d_grad_bias(gy)
            if device == "cuda":
                torch.cuda.synchronize()  # a fault is reported against this shape
            calls += 4
            if verbose:
                print(f"  {name:9} {why}: {1e3 * (time.perf_counter() - t0):.1f} ms", flush=True)
        calls += _streaming_calls(ops, device, randn)
    if sliced:  # strided reads: a view into a larger tensor, for memcheck's bounds
        s = SHAPES[1]
        B, Cin, H, W, Cout, K, stride, (left, right), dilation, groups, _ = s
        big = torch.randn(B, Cin, H, 2 * W + 3, generator=g).to(device)
        x = big[..., 1:2 * W + 1:2]
        w = torch.randn(H, Cout, Cin // groups, K, generator=g).to(device)
        gy = torch.randn(2 * B, Cout, H, out_width(s), generator=g).to(device)[::2]
        conv = (stride, left, right, dilation, groups)
        ops.row_conv1d(x, w, None, *conv)
        ops.row_conv1d_grad_input(gy, w, W, *conv)
        ops.row_conv1d_grad_weight(gy, x, K, *conv)
        ops.row_conv1d_grad_bias(gy)
        calls += 4
    if device == "cuda":
        torch.cuda.synchronize()
    return calls


def _streaming_calls(ops, device, randn):
    """The carried state's reads (a causal forward and grad-weight with a
    prefix) and the decode step (row_conv1d_update, the one kernel that
    writes in place): shifted, circular across the buffer's end, more new
    inputs than the state holds, and a pool with a skipped entry. Returns the
    op calls made."""
    import torch

    B, Cin, H, Cout, K, d, groups = 3, 4, 2, 6, 3, 2, 2
    S = d * (K - 1)
    w, b = randn(H, Cout, Cin // groups, K), randn(H, Cout)
    x, prefix = randn(B, Cin, H, 9), randn(B, Cin, H, S)
    causal = (1, S, 0, d, groups, 0)  # stride, pad_left, pad_right, dilation, groups, fft_block (direct)
    ops.row_conv1d(x, w, b, *causal, prefix)
    ops.row_conv1d_grad_weight(randn(B, Cout, H, 9), x, K, *causal, prefix)
    index = lambda values: torch.tensor(values, dtype=torch.int64, device=device)  # noqa: E731
    ops.row_conv1d_update(randn(B, Cin, H, 1), randn(B, Cin, H, S), w, b, d, groups, None, None)
    ops.row_conv1d_update(randn(B, Cin, H, 2), randn(B, Cin, H, S + 1), w, b, d, groups,
                          index([S, 2 * S + 1, 7]), None)  # circular: writes across the end
    ops.row_conv1d_update(randn(B, Cin, H, S + 3), randn(B, Cin, H, S), w, None, d, groups, None, None)
    ops.row_conv1d_update(randn(B, Cin, H, 1), randn(B + 2, Cin, H, S), w, b, d, groups, None,
                          index([4, -1, 0]))  # a pool, an entry skipped
    if device == "cuda":
        torch.cuda.synchronize()
    return 6


def coverage(dtypes):
    """Runs the tour under torch.profiler and counts the distinct kernels of
    each family; False when a family has fewer than EXPECTED (the tour no
    longer reaches every specialisation: launch.h changed)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_tour("cuda", dtypes)
    names = {e.name for e in prof.events() if "row_conv1d" in e.name}
    ok = True
    for family, expected in EXPECTED.items():
        # demangled (family<...>) or, should the profiler not demangle, mangled (familyI...)
        found = sorted(n for n in names if re.search(family + "[<I(]", n))
        status = "ok" if len(found) >= expected else "MISSING"
        ok &= len(found) >= expected
        print(f"{family:32} {len(found):3} distinct kernels (expected {expected}) {status}")
    print("all kernel names:")
    for n in sorted(names):
        print("  " + n)
    return ok and bool(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--list", action="store_true", help="print the shapes (one per line: the 11 numbers, then why)")
    ap.add_argument("--coverage", action="store_true", help="count the kernels launched (GPU, torch.profiler)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    dtypes = args.dtypes.split(",")
    unknown = set(dtypes) - set(DTYPES)
    if unknown:
        ap.error(f"unknown dtypes {sorted(unknown)}; choose from {DTYPES}")
    if args.list:
        for s in SHAPES:
            B, Cin, H, W, Cout, K, stride, (left, right), dilation, groups, why = s
            print(B, Cin, H, W, Cout, K, stride, left, right, dilation, groups, " #", why)
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False (use --device cpu to run the tour on the CPU kernels)")
        return 2
    if args.coverage:
        return 0 if coverage(dtypes) else 1
    t0 = time.perf_counter()
    calls = run_tour(args.device, dtypes, args.verbose)
    print(f"tour: {calls} op calls ({len(SHAPES)} shapes x {len(dtypes)} dtypes x 4 ops, 6 streaming calls a dtype, "
          f"+ a strided one) "
          f"on {args.device} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
