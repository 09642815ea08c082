"""CPU benchmark on random shapes: row_conv1d ('auto') against the per-row loop,
the transpose + grouped F.conv1d recipe and native grouped conv on the
(B, H*C, W) layout, forward and forward+backward, float32.

The named shapes of bench_cpu.py are the ones issues talk about; this sweep
draws shapes no issue names (a seeded mix of batch, channels, rows, widths,
kernel lengths, strides, dilations, paddings and groups, between 3e4 and 2e8
multiply-adds) and reports, per shape, the time of the faster of loop and
recipe (the loop is left out above 64 rows) and of native over ours, then the
worst of each and the share of shapes where ours is faster. Each output is
checked against the recipe before it is timed. Timing as bench_cpu.py (the
implementations called in turn, --min-time seconds a call; ratios are the
medians of the rounds' ratios).

  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295 \\
      .venv/bin/python benchmarks/bench_random_shapes.py [--count 40] [--seed 1] [--threads 2] [--range wide]
"""
import argparse
import csv
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cpu as common  # noqa: E402

import rowconv_ext  # noqa: E402

MIN_MACS, MAX_MACS = 3e4, 2e8
LOOP_MAX_ROWS = 64  # a Python loop over more rows than this only measures Python


def random_specs(count, seed):
    """count seeded random shapes of bench_cpu.Spec with a valid output and a
    size in [MIN_MACS, MAX_MACS] multiply-adds."""
    rng = random.Random(seed)
    specs = []
    while len(specs) < count:
        groups = rng.choice([1, 1, 1, 2, 4])
        K = rng.choice([1, 2, 3, 4, 5, 7, 9, 15, 31])
        stride = rng.choice([1, 1, 1, 2, 3])
        padding = rng.choice([0, "same", "causal", K // 2, (1, 3)])
        if padding == "same":
            stride = 1
        s = common.Spec(f"r{len(specs)}", rng.choice([1, 2, 4, 8, 16, 32, 64]),
                        groups * rng.choice([1, 2, 3, 4, 8, 16, 32]), rng.choice([1, 2, 4, 8, 16, 64, 256]),
                        rng.choice([16, 50, 100, 257, 512, 1024, 4096]),
                        groups * rng.choice([1, 2, 3, 4, 8, 16, 32]), K, stride, padding,
                        rng.choice([1, 1, 2, 4]), groups)
        left, right = common.pad_pair(s)
        if s.W + left + right < s.dilation * (s.K - 1) + 1:
            continue
        macs = s.B * s.Cout * s.H * common.wout(s) * (s.Cin // s.groups) * s.K
        if MIN_MACS < macs < MAX_MACS:
            specs.append(s)
    return specs


def wide_range_specs(count, seed):
    """count seeded random shapes over a wider range than random_specs'
    (rows 1-40000 long, kernels up to 257 taps, up to 256 channels a side,
    strides up to 4, results up to 6e7 elements): the sweep that found the
    short rows of many channels (docs/design.md, "Short rows")."""
    rng = random.Random(seed)
    specs = []
    while len(specs) < count:
        groups = rng.choice([1, 1, 2, 8])
        K = rng.choice([1, 3, 5, 11, 33, 65, 127, 257])
        stride = rng.choice([1, 1, 2, 4])
        padding = rng.choice([0, "same", "causal", K // 2])
        if padding == "same":
            stride = 1
        s = common.Spec(f"w{len(specs)}", rng.choice([1, 2, 4, 16]), groups * rng.choice([1, 2, 8, 32, 64]),
                        rng.choice([1, 2, 3, 16, 128, 1024]), rng.choice([7, 33, 300, 2000, 10000, 40000]),
                        groups * rng.choice([1, 2, 8, 32, 64]), K, stride, padding, rng.choice([1, 1, 3]), groups)
        left, right = common.pad_pair(s)
        if s.W + left + right < s.dilation * (s.K - 1) + 1:
            continue
        macs = s.B * s.Cout * s.H * common.wout(s) * (s.Cin // s.groups) * s.K
        elements = s.B * s.Cin * s.H * s.W + s.B * s.Cout * s.H * common.wout(s)
        if 1e4 < macs < 2e9 and elements < 6e7:
            specs.append(s)
    return specs


def bench_spec(s, min_time):
    x, w, b, g = common.make_inputs(s)
    common.verify(s, x, w, b, g)
    x2, w2, b2, g2 = common.to_native(x, w, b, g, s)
    impls = {"ours": (common.ours, (x, w, b), g), "recipe": (common.recipe, (x, w, b), g),
             "native": (common.native, (x2, w2, b2), g2)}
    if s.H <= LOOP_MAX_ROWS:
        impls["loop"] = (common.loop, (x, w, b), g)
    ms, ratios = {}, {}
    for d in ("fwd", "fwdbwd"):
        calls = {name: (lambda f=fn, a=args: f(*a, s)) if d == "fwd" else common.fwd_bwd(fn, args, grad, s)
                 for name, (fn, args, grad) in impls.items()}
        d_ms, d_ratios = common.time_interleaved_ms(calls, min_time)
        ms.update({f"{name}_{d}": v for name, v in d_ms.items()})
        ratios.update({f"{name}_{d}": v for name, v in d_ratios.items()})
    row = {"B": s.B, "Cin": s.Cin, "H": s.H, "W": s.W, "Cout": s.Cout, "K": s.K, "stride": s.stride,
           "padding": str(s.padding), "dilation": s.dilation, "groups": s.groups,
           "method": rowconv_ext.choose_method(x, w, s.stride, s.padding, s.dilation, s.groups), **ms}
    for d in ("fwd", "fwdbwd"):  # medians of paired ratios (bench_cpu.time_interleaved_ms)
        row[f"x_best_alt_{d}"] = min(ratios[f"{k}_{d}"] for k in ("loop", "recipe") if f"{k}_{d}" in ratios)
        row[f"x_native_{d}"] = ratios[f"native_{d}"]
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.15, help="seconds of timed calls per measurement")
    p.add_argument("--out", type=Path, default=common.REPO / "benchmarks" / "results")
    p.add_argument("--range", choices=["usual", "wide"], default="usual",
                   help="usual: random_specs; wide: wide_range_specs (longer kernels and rows, more channels)")
    p.add_argument("--tag", help="file name part: random_shapes_<tag>.csv (default: seed<seed>)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    header = common.machine_header(args.threads, common.matmul_peak_gflops(), args.min_time)
    header["shapes"] = f"{args.count} random shapes, seed {args.seed}, range {args.range}"
    common.print_header(header)

    rows = []
    for s in (wide_range_specs if args.range == "wide" else random_specs)(args.count, args.seed):
        rows.append(bench_spec(s, args.min_time))
        r = rows[-1]
        print(f"B={s.B} Cin={s.Cin} H={s.H} W={s.W} Cout={s.Cout} K={s.K} s={s.stride} p={s.padding} "
              f"d={s.dilation} g={s.groups} [{r['method']}]  ours fwd {r['ours_fwd']:.3f} ms, fwd+bwd "
              f"{r['ours_fwdbwd']:.3f} ms | x best of loop/recipe: fwd {r['x_best_alt_fwd']:.2f}, fwd+bwd "
              f"{r['x_best_alt_fwdbwd']:.2f} | x native: fwd {r['x_native_fwd']:.2f}, fwd+bwd "
              f"{r['x_native_fwdbwd']:.2f}", flush=True)

    print("\nx <alt> = alt time / our time (> 1: ours is faster)")
    for key, label in (("x_best_alt", "the faster of loop and recipe"), ("x_native", "native grouped conv")):
        for d, dl in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
            vals = [r[f"{key}_{d}"] for r in rows]
            faster = sum(v > 1 for v in vals)
            print(f"against {label}, {dl}: worst {min(vals):.2f}x, median {sorted(vals)[len(vals) // 2]:.2f}x, "
                  f"ours faster on {faster} of {len(vals)}")
    path = args.out / f"random_shapes_{args.tag or f'seed{args.seed}'}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.writelines(f"# {k}: {v}\n" for k, v in header.items())
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
