"""Streaming causal row convolutions on the CPU.

Part "decode": the per-step latency of rowconv_ext.row_conv1d_update at T = 1
(one new input per row, the state shifted in place) against
  (a) rerun:  rowconv_ext.row_conv1d over the last dilation*(K-1)+1 inputs
              (a valid convolution of a kept window; keeping the window up to
              date is NOT counted, so the ratio against it is conservative);
  (b) torch:  the best plain-PyTorch step we could write: torch.cat of the state
              and the new input, the contraction (einsum, or a broadcast
              multiply-and-sum where that is faster: the faster of the two is
              timed and named), the bias, and the state's in-place copy_;
plus the call overhead of a trivial op (torch.neg on a one-element tensor) for
context: a decode step cannot be much cheaper than one dispatched op call.
Shapes (B, C, H, K) of issue 13: forum (32, 15, 10, 3), depthwise decode
(64, 1, 1024, 4), wide (8, 64, 16, 5); float32, --threads threads (default 2).
Every implementation is checked against (b) first.

Times: medians over batches of calls (each batch timed with perf_counter and
divided by its calls, ~2 ms a batch), after a warmup; the implementations'
batches run in turn, round after round, and the ratios are the medians of
the rounds' ratios (this host's speed drifts by tens of percent within
minutes: both sides of a ratio then see the same spell). Writes <out>/streaming_<tag>.csv with
the machine header (CPU model, L1d per core) as '#' lines.
Other parts (the chunked forward against one pass) add their own functions
and rows, each part a function returning rows of one table.

  .venv/bin/python benchmarks/bench_streaming.py [--quick] [--threads N] [--out DIR] [--tag NAME]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cpu as common  # noqa: E402

import rowconv_ext  # noqa: E402

DECODE_SHAPES = {  # name: (B, C, H, K), Cin = Cout = C, groups 1, dilation 1
    "forum": (32, 15, 10, 3),
    "depthwise": (64, 1, 1024, 4),
    "wide": (8, 64, 16, 5),
}
TARGETS = {"torch": 5.0, "rerun": 3.0}  # issue 13: at least this many times faster


def torch_step_einsum(x, state, w, b):
    """(B, C, H, 1) step in plain PyTorch: window, contraction over (c, k) per row, bias, state shift."""
    window = torch.cat([state, x], dim=-1)  # (B, Cin, H, K)
    y = torch.einsum("bchk,hock->boh", window, w).add_(b.t())
    state.copy_(window[..., 1:])
    return y.unsqueeze(-1)


def torch_step_mulsum(x, state, w, b):
    """The same with a broadcast multiply and a sum (faster for one input channel)."""
    window = torch.cat([state, x], dim=-1)  # (B, Cin, H, K)
    y = (window.unsqueeze(1) * w.permute(1, 2, 0, 3)).sum(dim=(2, 4)).add_(b.t())
    state.copy_(window[..., 1:])
    return y.unsqueeze(-1)


TORCH_STEPS = {"einsum": torch_step_einsum, "mul-sum": torch_step_mulsum}


def per_call_us_in_turn(fns, min_time):
    """Per-call times of each of fns ({name: fn}, "ours" among them) by
    common.time_in_turn, in batches of about 2 ms of calls (at least 7
    rounds and min_time of batches each): the median microseconds of a
    call of each, and the median over rounds of each one's time over ours."""
    batches = {}
    for k, fn in fns.items():
        fn()
        # the median of a few calls: one call alone may be a slow first one
        # (thread wake-up, caches refilled after the other steps), and a
        # batch sized from it would be too short and carry that cost into
        # every round (wide: 9 calls a batch where ~30 were meant)
        once = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            once.append(time.perf_counter() - t0)
        batches[k] = max(1, min(1000, int(2e-3 / max(statistics.median(once), 1e-7))))  # ~2 ms
    n = len(fns)
    sec, ratios = common.time_in_turn(fns, min_time * n, 7, warm_seconds=0.2 * min_time * n, batches=batches)
    return {k: 1e6 * v for k, v in sec.items()}, ratios


def decode_rows(names, min_time):
    rows = []
    gen = torch.Generator().manual_seed(0)
    tiny = torch.randn(1)
    for name in names:
        B, C, H, K = DECODE_SHAPES[name]
        w = torch.randn(H, C, C, K, generator=gen)
        b = torch.randn(H, C, generator=gen)
        x = torch.randn(B, C, H, 1, generator=gen)
        state0 = torch.randn(B, C, H, K - 1, generator=gen)

        # check every implementation against the plain step, one step each
        want_state = state0.clone()
        want = torch_step_einsum(x, want_state, w, b)
        state = state0.clone()
        with torch.inference_mode():
            got = rowconv_ext.row_conv1d_update(x, state, w, b)
        window = torch.cat([state0, x], dim=-1)
        rerun = rowconv_ext.row_conv1d(window, w, b)
        for label, y in (("row_conv1d_update", got), ("row_conv1d rerun", rerun),
                         ("mul-sum step", torch_step_mulsum(x, state0.clone(), w, b))):
            torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-4, msg=f"{name}: {label} disagrees")
        assert torch.equal(state, want_state), f"{name}: state after row_conv1d_update disagrees"

        state = state0.clone()
        with torch.inference_mode():
            fns = {"ours": lambda: rowconv_ext.row_conv1d_update(x, state, w, b),
                   "rerun": lambda: rowconv_ext.row_conv1d(window, w, b),
                   "empty": lambda: torch.neg(tiny),
                   **{k: (lambda f=f: f(x, state, w, b)) for k, f in TORCH_STEPS.items()}}
            us, ratios = per_call_us_in_turn(fns, min_time)
        best = min(TORCH_STEPS, key=us.get)
        rows.append({"shape": name, "B,C,H,K": f"{B},{C},{H},{K}", "ours_us": us["ours"], "rerun_us": us["rerun"],
                     "torch_us": us[best], "torch_variant": best, "empty_op_us": us["empty"],
                     "x_rerun": ratios["rerun"], "x_torch": ratios[best],
                     "ours_over_empty": 1 / ratios["empty"]})
    return rows


DECODE_COLS = [("shape", "{}", "shape"), ("B,C,H,K", "{}", "B,C,H,K"), ("ours_us", "{:.2f}", "ours us"),
               ("rerun_us", "{:.2f}", "(a) rerun us"), ("torch_us", "{:.2f}", "(b) torch us"),
               ("torch_variant", "{}", "(b) variant"), ("x_rerun", "{:.1f}", "x (a)"), ("x_torch", "{:.1f}", "x (b)"),
               ("empty_op_us", "{:.2f}", "empty op us"), ("ours_over_empty", "{:.1f}", "ours/empty")]


def decode_verdicts(rows):
    lines = []
    for r in rows:
        ok = r["x_torch"] >= TARGETS["torch"] and r["x_rerun"] >= TARGETS["rerun"]
        lines.append(f"target decode {r['shape']}: {'met' if ok else 'MISSED'} "
                     f"({r['x_torch']:.1f}x the plain step, need {TARGETS['torch']:.0f}x; "
                     f"{r['x_rerun']:.1f}x the rerun, need {TARGETS['rerun']:.0f}x; "
                     f"{r['ours_us']:.2f} us = {r['ours_over_empty']:.1f} empty op calls)")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short timings (a smoke run; numbers are rough)")
    ap.add_argument("--shapes", default=",".join(DECODE_SHAPES), help="decode shapes, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=None, help="timed seconds per measurement")
    ap.add_argument("--out", default=str(common.REPO / "benchmarks" / "results"))
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    min_time = args.min_time or (0.05 if args.quick else 1.0)
    names = [n for n in args.shapes.split(",") if n]
    unknown = [n for n in names if n not in DECODE_SHAPES]
    if unknown:
        ap.error(f"unknown shapes {unknown}; known: {list(DECODE_SHAPES)}")
    header = common.machine_header(args.threads, float("nan"), min_time)
    header.pop("mkl_matmul_gflops")  # no matmul rate measured: a latency benchmark
    header["timing"] = f"median per call over batches of calls (perf_counter), >= {min_time} s each, after warmup"
    common.print_header(header)
    rows = decode_rows(names, min_time)
    print("\ndecode step, T = 1, float32 (x = their time / ours: above 1, ours is faster)")
    print(common.format_table(rows, DECODE_COLS))
    for line in decode_verdicts(rows):
        print(line)
    header["line_round_trip_at_end"] = common.describe_line_round_trip()
    print(f"# line_round_trip_at_end: {header['line_round_trip_at_end']}")
    tag = args.tag or ("quick" if args.quick else "full")
    path = Path(args.out) / f"streaming_decode_{tag}.csv"
    common.write_csv(path, header, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
