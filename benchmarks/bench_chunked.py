"""Chunked causal row convolution with carried state against one pass, CPU, float32.

A sequence of W steps is run either in one call,
    y = row_conv1d(x, w, b, padding='causal')
or in chunks of --chunk steps, each chunk's final state passed to the next,
    y_i, state = row_conv1d(x_i, w, b, padding='causal',
                            initial_state=state, return_final_state=True)
Chunk outputs are kept as they come, not concatenated: a streaming caller
consumes them. Two layouts of the chunks x_i:
  - stream: each chunk its own contiguous tensor, as a stream or a reader of a
    sequence too long for memory delivers them (issue 13's case);
  - views:  x[..., i:i+chunk] of one x in memory. Each (b, c, h) row is then
    read in pieces of chunk*4 bytes that start a new stretch of memory each;
    on a memory-bound shape (depthwise) every piece pays a fresh DRAM latency
    (about 100-190 ns per piece measured here, against a stream that runs on
    in the contiguous layout), so this row is slower by that much.
Placement: the same data read 0.92-1.11x as fast depending on where its
memory landed (Zen 4, one pass over differently allocated tensors of one
layout), so a ratio of two tensors carries several percent from placement
alone. Each side therefore rotates over --copies independent copies of its
inputs, allocated alternately, one copy a round.
Order: a call's time depends on the call before it. Forum chunked after
one pass took 1.13x one pass (after chunked), each in blocks of its own
calls 1.09x (Zen 4, session 33): a fixed order would charge the one pass's
aftermath to chunked. So the two alternate which goes first, round by
round (time_in_turn's `alternate`), and each follows each as often.
Directions: fwd (no grad) and fwd+bwd (forward, then backward of x, weight,
bias with an output grad; chunked: one backward through the chain of chunks,
each chunk of x and of the output grad its own tensor, as in training on a
stream: slices of one big leaf would make autograd add a zero-filled gradient
of the whole x per slice, autograd's cost, not the op's). Timing: one pass and
chunked called in turn, after warm-up rounds until a round takes no page fault
(the heap has grown to what both need), then at least --min-reps pairs and
--min-time seconds; the ratio is the median of the pairs' ratios.
Target (issue 13): the chunked forward within 10% of one pass (ratio <=
1.10), on the stream layout; fwd+bwd and the views layout are reported.

Run: nice -n 19 python benchmarks/bench_chunked.py [--quick] [--threads 2]
"""
import argparse
import itertools
import resource
import statistics
import sys
from pathlib import Path

import torch

import rowconv_ext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cost_model import _machine  # noqa: E402  (lscpu model and L1d, threads, torch)
from bench_cpu import describe_line_round_trip, time_in_turn, warm_up_in_turn  # noqa: E402

# (name, B, C, H, K, W): C input = output channels, groups 1
SHAPES = [
    ("forum", 32, 15, 10, 3, 8192),
    ("depthwise", 64, 1, 1024, 4, 4096),
    ("wide", 8, 64, 16, 5, 8192),
]
COPIES_BYTES = 8 * 2**30  # at most this much in copies of the inputs (24 GiB machines)
QUICK_SHAPES = [("tiny", 2, 3, 2, 3, 300), ("tiny-dw", 2, 1, 4, 4, 257)]


def _counting_faults(fn, faults):
    """fn, appending the page faults each call takes to `faults`."""
    def call():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        out = fn()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return out
    return call


def _paired_seconds(one, chunked, min_reps, min_time, copies):
    """Medians of one pass and chunked, called in turn (time_in_turn), the
    median of their paired ratios, chunked over one pass, and the median page
    faults of a call of each. Warmed up first over every copy until a round
    takes no page fault: a fault cost up to 8 us here (memory the host had
    taken back), so a heap still growing would time the faults."""
    warm_up_in_turn([one, chunked] * copies)
    faults = {"one": [], "chunked": []}
    sec, ratios = time_in_turn({k: _counting_faults(fn, faults[k]) for k, fn in (("one", one), ("chunked", chunked))},
                               min_time, min_reps, reference="one", alternate=True)
    return sec["one"], sec["chunked"], ratios["chunked"], {k: statistics.median(v) for k, v in faults.items()}


def _rotating(fns):
    """One call that calls fns[0], fns[1], ... in turn, one a call."""
    turn = itertools.cycle(fns)
    return lambda: next(turn)()


def _runs(x, w, b, gy, chunk, method, copies):
    """The timed calls: one pass and chunked, forward (both layouts) and
    forward+backward, each rotating over `copies` copies of its inputs."""
    kw = dict(padding="causal", method=method)

    def chunked(pieces, w=w, b=b):
        state, outs = None, []
        for xc in pieces:
            y, state = rowconv_ext.row_conv1d(xc, w, b, **kw, initial_state=state, return_final_state=True)
            outs.append(y)
        return outs

    calls = {"fwd": ([], []), "fwd-views": ([], []), "fwd+bwd": ([], [])}
    for i in range(copies):  # one pass's and chunked's copies allocated alternately
        xi = x if i == 0 else x.clone()
        stream = [c.contiguous() for c in x.split(chunk, dim=3)]
        gyi = gy if i == 0 else gy.clone()
        grad_chunks = [c.contiguous() for c in gy.split(chunk, dim=3)]
        views = list(xi.split(chunk, dim=3))
        # leaves that share the inputs' memory (the weights' gradients are small)
        leaves = [xi.detach().requires_grad_()] + [t.detach().clone().requires_grad_() for t in (w, b)]
        x_chunks = [c.detach().requires_grad_() for c in stream]
        wl, bl = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()

        def one_pass(xi=xi):
            return rowconv_ext.row_conv1d(xi, w, b, **kw)

        def one_pass_backward(leaves=leaves, gyi=gyi):
            torch.autograd.grad(rowconv_ext.row_conv1d(*leaves, **kw), leaves, gyi)

        def chunked_backward(x_chunks=x_chunks, wl=wl, bl=bl, grad_chunks=grad_chunks):
            torch.autograd.grad(chunked(x_chunks, wl, bl), x_chunks + [wl, bl], grad_chunks)

        for direction, one, chunks in (("fwd", one_pass, torch.no_grad()(lambda s=stream: chunked(s))),
                                       ("fwd-views", one_pass, torch.no_grad()(lambda v=views: chunked(v))),
                                       ("fwd+bwd", one_pass_backward, chunked_backward)):
            calls[direction][0].append(torch.no_grad()(one) if direction != "fwd+bwd" else one)
            calls[direction][1].append(chunks)
    return {direction: (_rotating(ones), _rotating(chunks)) for direction, (ones, chunks) in calls.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--method", default="direct", choices=("direct", "fft", "auto"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-reps", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--copies", type=int, default=3,
                        help="independent copies of each side's inputs, one a round (placement, above)")
    parser.add_argument("--shapes", default=",".join(name for name, *_ in SHAPES),
                        help="comma-separated names of SHAPES to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one timed call: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.min_reps, args.min_time, args.copies = 1, 0.0, 2
    torch.set_num_threads(args.threads)
    m = _machine()
    print(f"# machine: {m['model']}, L1d {m['l1d']}, {m['threads']} threads, torch {m['torch']}")
    print(f"# line round trip at start: {describe_line_round_trip()}", flush=True)
    print(f"# float32, method={args.method}, chunks of {args.chunk} with carried state; "
          f"ratio = median of paired chunked / one pass times (target <= 1.10)")
    print(f"{'shape':10s} {'B':>3s} {'C':>3s} {'H':>5s} {'K':>2s} {'W':>5s} {'direction':10s} "
          f"{'one pass ms':>11s} {'chunked ms':>10s} {'ratio':>6s} {'copies':>6s} {'page faults a call (one/chunked)'}")
    worst = 0.0
    wanted = args.shapes.split(",")
    for name, B, C, H, K, W in QUICK_SHAPES if args.quick else [s for s in SHAPES if s[0] in wanted]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(B, C, H, W, generator=g)
        w = torch.randn(H, C, C, K, generator=g) / (C * K) ** 0.5
        b = torch.randn(H, C, generator=g)
        gy = torch.randn(B, C, H, W, generator=g)
        # each copy holds x and the output grad twice (one pass's, chunked's)
        copies = max(1, min(args.copies, int(COPIES_BYTES // (4 * x.numel() * x.element_size()))))
        for direction, (one, chunked) in _runs(x, w, b, gy, args.chunk, args.method, copies).items():
            t_one, t_chunked, ratio, faults = _paired_seconds(one, chunked, args.min_reps, args.min_time, copies)
            if direction == "fwd":  # the target's; the others are reported (see above)
                worst = max(worst, ratio)
            print(f"{name:10s} {B:3d} {C:3d} {H:5d} {K:2d} {W:5d} {direction:10s} {t_one * 1e3:11.3f} "
                  f"{t_chunked * 1e3:10.3f} {ratio:6.3f} {copies:6d} {faults['one']:8.0f}/{faults['chunked']:.0f}",
                  flush=True)
    print(f"# line round trip at end: {describe_line_round_trip()}")
    print(f"target chunked forward (stream layout) within 10% of one pass: worst ratio {worst:.3f} "
          f"({'met' if worst <= 1.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
