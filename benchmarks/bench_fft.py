"""FFT benchmark: row_conv1d's methods ('auto', 'direct', 'fft') on long kernels,
convolve_rows against scipy, and the quality of 'auto's choice.

Parts (--part, comma-separated; default: all four, in this order):
  rowconv   long-kernel shapes (B, Cin, H, W, Cout, K), float32, fwd and fwd+bwd:
            ours with method auto / direct / fft against bench_cpu.py's loop, recipe
            and native; ratios against the faster of loop and recipe; 'auto's
            forward choice and transform length. Checked first: direct against the
            recipe element-wise (bench_cpu.verify, with loop and native), fft and
            auto norm-wise (the FFT's error is relative to the norms); aborts on a
            disagreement.
  convolve  convolve_rows(A, B) ('full') with method auto / direct / fft against
            the scipy per-row loop (np.vstack of scipy.signal.convolve per row,
            which picks its own method; timed on a subset of the rows and scaled
            when the whole would be slow, said in the output),
            scipy.signal.fftconvolve(A, B, axes=1) and oaconvolve(A, B, axes=1);
            A: 1024 x 8192, B: 1024 x P, P in {20, 64, 256, 1024, 4096}, float32 and
            float64. scipy runs under scipy.fft.set_workers(--threads), so both sides
            may use the same threads. Checked first against a float64 fftconvolve,
            row by row, norm-wise.
  sweep     K from 3 to 2048 (log-spaced) x W x two channel configs (depthwise,
            and Cin = Cout = 8), forward, valid padding: direct and fft timed,
            'auto's choice recorded; auto's time is the measured time of the method
            it picks, and auto / best = that time over the faster method's. Reports
            the share of points within 1.5x, the worst ratio, and a heatmap (PNG),
            as scipy judges choose_conv_method. Rows per point are sized by the
            cost model so that the slower method takes about --sweep-target
            seconds (capped in memory).
  auto-on-cpu-shapes
            every shape of bench_cpu.py: what choose_method returns, the cost
            model's predictions, and auto against direct, fwd and fwd+bwd (the
            backward ops decide for themselves, so fwd+bwd is timed too).

GFLOP/s count the direct method's work, 2 x multiply-adds (bench_cpu.fwd_flops;
3 x that for fwd+bwd; 2*M*N*P for convolve_rows): for the FFT method and scipy
that is an EFFECTIVE rate (the direct-equivalent work over the time), not the
flops executed. Timing: bench_cpu.time_median_ms (median of single calls after
a warmup), synchronised on CUDA. The scipy baselines are CPU-only and are not
timed with --device cuda.

Run under GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
for stable numbers (see BENCHMARKING.md); the header says which allocator ran.
"""
import argparse
import inspect
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cpu, from any cwd
import bench_cpu as common  # noqa: E402
from bench_cpu import Spec  # noqa: E402

import rowconv_ext  # noqa: E402
from rowconv_ext.method import cost_plan  # noqa: E402

PARTS = ("rowconv", "convolve", "sweep", "auto-on-cpu-shapes")
METHODS = ("auto", "direct", "fft")
ALTS = ("loop", "recipe", "native")

LONG_SHAPES = [
    Spec("issue-k255", 4, 8, 8, 16384, 8, 255),  # the shape the issue names
    Spec("dw-k1024", 1, 1, 128, 8192, 1, 1024),
    Spec("ch16-k511", 2, 16, 4, 8192, 16, 511),
    Spec("ch4-k127", 8, 4, 16, 4096, 4, 127),
    Spec("grp-dil-same", 4, 8, 8, 8192, 8, 255, padding="same", dilation=2, groups=2),
]
QUICK_LONG_SHAPES = [
    Spec("q-k255", 1, 4, 4, 2048, 4, 255),
    Spec("q-grp-dil-same", 1, 4, 2, 1024, 4, 63, padding="same", dilation=2, groups=2),
]
ISSUE_SHAPE = "issue-k255"
CONVOLVE = dict(M=1024, N=8192, P=(20, 64, 256, 1024, 4096), dtypes=("float32", "float64"))
QUICK_CONVOLVE = dict(M=32, N=1024, P=(20, 256), dtypes=("float32", "float64"))
SWEEP = dict(K=sorted({int(round(k)) for k in np.geomspace(3, 2048, 20)}), W=(512, 2048, 8192, 32768),
             configs={"depthwise": 1, "C8": 8}, target_s=0.05, max_mib=64)
QUICK_SWEEP = dict(K=(3, 31, 255), W=(512, 2048), configs={"depthwise": 1, "C8": 8}, target_s=0.002, max_mib=2)
# Targets the results are read against (the issue's).
TARGET_SPEEDUP, TARGET_WITHIN, TARGET_SHARE, TARGET_WORST = 8.0, 1.5, 0.95, 2.5


# ---------------------------------------------------------------- shared

class Timer:
    """bench_cpu.time_median_ms, synchronised on CUDA."""
    def __init__(self, device, min_time):
        self.device, self.min_time = device, min_time

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def ms(self, fn, min_time=None, min_reps=common.MIN_REPS):
        def call():
            fn()
            self.sync()
        return common.time_median_ms(call, self.min_time if min_time is None else min_time, min_reps)


def ours(method):
    """row_conv1d with a method, in bench_cpu's (x, w, b, spec) convention."""
    def fn(x, w, b, s):
        return rowconv_ext.row_conv1d(x, w, b, s.stride, s.padding, s.dilation, s.groups, method=method)
    fn.__name__ = f"ours_{method}"
    return fn


OURS = {m: ours(m) for m in METHODS}


def rel_err(got, ref):
    """||got - ref|| / ||ref|| (torch or NumPy), as a float."""
    if isinstance(got, torch.Tensor):
        return ((got - ref).double().norm() / ref.double().norm()).item()
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def normwise_tol(dtype):
    """Norm-wise tolerance of an FFT convolution against an exact one: the error
    grows like eps * log(n); 1000 eps is far above it and far below a wrong answer."""
    return 1000 * (torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else np.finfo(dtype).eps)


def abort_unless(ok, label, err, tol):
    if not ok:
        sys.exit(f"\nABORT: {label}: ||got - ref|| / ||ref|| = {err:.3g} > {tol:.3g}")


def plan_of(x, w, s):
    """choose_method and cost_plan for spec s."""
    left, right = common.pad_pair(s)
    plan = cost_plan(x, w, s.stride, left, right, s.dilation, s.groups)
    pick = rowconv_ext.choose_method(x, w, s.stride, s.padding, s.dilation, s.groups)
    return pick, plan


def spec_fields(s):
    return {"shape": s.name, "B": s.B, "Cin": s.Cin, "H": s.H, "W": s.W, "Cout": s.Cout, "K": s.K,
            "stride": s.stride, "padding": str(s.padding), "dilation": s.dilation, "groups": s.groups,
            "Wout": common.wout(s)}


def finish_part(name, rows, cols, header, out, tag, notes=(), n_names=2):
    """Table on stdout, CSV in out (written as soon as the part is done)."""
    if not rows:
        return None
    print(common.format_table(rows, cols, n_names))
    for note in notes:
        print(note)
    warning = common.busy_warning(sorted({r["label"] for r in rows if r.get("other_cpu_pct", 0) > 10}))
    if warning:
        print(warning)
    path = out / f"fft_{name}_{tag}.csv"
    common.write_csv(path, header, rows)
    print(f"wrote {path}", flush=True)
    return path


def plot_bars(rows, series, title, path, targets=()):
    """Grouped bars of r[key] per row label for each (key, legend) in series, log scale,
    with horizontal lines at the targets."""
    plt = common.pyplot_or_none(path)
    if plt is None:
        return

    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(labels) * len(series) / 3 + 2), 5.5))
    width = 0.8 / len(series)
    for i, (key, legend) in enumerate(series):
        vals = [r[key] for r in rows]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        bars = ax.bar(xs, vals, width, label=legend)
        ax.bar_label(bars, labels=[f"{v:.2g}" if math.isfinite(v) else "" for v in vals], fontsize=6)
    for value, text in targets:
        ax.axhline(value, color="black", linewidth=1, linestyle="-" if value == 1 else "--")
        ax.annotate(text, (len(labels) - 0.5, value), fontsize=7, ha="right", va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


# ---------------------------------------------------------------- part 1: rowconv

def verify_methods(s, x, w, b, g):
    """direct element-wise against the recipe (and loop, native: bench_cpu.verify);
    fft and auto norm-wise, output and the three grads. Returns the worst
    norm-wise error of fft and of auto."""
    common.verify(s, x, w, b, g, impl=OURS["direct"])
    y_ref, grads_ref = common.fwd_bwd(common.recipe, (x, w, b), g, s)()
    tol, errs = normwise_tol(x.dtype), {}
    for method in ("fft", "auto"):
        y, grads = common.fwd_bwd(OURS[method], (x, w, b), g, s)()
        worst = 0.0
        for name, got, ref in zip(("output", "grad x", "grad weight", "grad bias"), (y, *grads), (y_ref, *grads_ref)):
            err = rel_err(got, ref)
            abort_unless(err <= tol, f"{s.name}: {method} {name} against the recipe", err, tol)
            worst = max(worst, err)
        errs[method] = worst
    return errs


def bench_rowconv(specs, timer, device, peak):
    rows = []
    for s in specs:
        x, w, b, g = (t.to(device) for t in common.make_inputs(s))
        errs = verify_methods(s, x, w, b, g)
        pick, plan = plan_of(x, w, s)
        x2, w2, b2, g2 = common.to_native(x, w, b, g, s)
        fns = {**OURS, "loop": common.loop, "recipe": common.recipe, "native": common.native}
        data = {k: ((x, w, b), g) for k in fns}
        data["native"] = ((x2, w2, b2), g2)
        for direction in ("fwd", "fwd+bwd"):
            if direction == "fwd":
                calls = {k: (lambda f=fns[k], a=data[k][0]: f(*a, s)) for k in fns}
            else:
                calls = {k: common.fwd_bwd(fns[k], *data[k], s) for k in fns}
            with common.OtherLoad() as load:
                ms = {k: timer.ms(call) for k, call in calls.items()}
            best_alt = min(ms["loop"], ms["recipe"])
            gflop = common.fwd_flops(s) * (1 if direction == "fwd" else 3) / 1e9
            rows.append({
                **spec_fields(s), "direction": direction, "label": f"{s.name} {direction}",
                "auto_pick": pick, "fft_block": plan["block"],
                "pred_direct_ms": 1e3 * plan["direct_seconds"], "pred_fft_ms": 1e3 * plan["fft_seconds"],
                **{f"{k}_ms": v for k, v in ms.items()},
                **{f"{m}_x_best_alt": best_alt / ms[m] for m in METHODS},
                **{f"{m}_x_native": ms["native"] / ms[m] for m in METHODS},
                "gflop": gflop, **{f"{m}_gflops_eff": gflop / (ms[m] / 1e3) for m in METHODS},
                "direct_pct_matmul_peak": 100 * gflop / (ms["direct"] / 1e3) / peak,
                "fft_rel_err": errs["fft"], "auto_rel_err": errs["auto"],
                "other_cpu_pct": round(100 * load.share, 1),
            })
            print(f"  {s.name:16s} {direction:8s} auto {ms['auto']:.3f} ms ({pick})", file=sys.stderr, flush=True)
    return rows


def ms_cols(*names):
    """Table columns (bench_cpu.format_table) of the <name>_ms times."""
    return [(f"{n}_ms", "{:9.3f}", f"{n} ms") for n in names]


BUSY_COL = ("other_cpu_pct", "{:5.0f}", "busy%")
ROWCONV_COLS = [("shape", "{:16s}", "shape"), ("direction", "{:8s}", "dir"), ("auto_pick", "{:6s}", "auto"),
                ("fft_block", "{:6d}", "block"), *ms_cols(*METHODS, *ALTS),
                *[(f"{m}_x_best_alt", "{:7.2f}", f"{m} x") for m in METHODS],
                ("auto_gflops_eff", "{:8.1f}", "auto GF/s"), ("fft_rel_err", "{:8.1e}", "fft err"), BUSY_COL]
ROWCONV_NOTES = (
    "<method> x = min(loop, recipe) time / that method's time (> 1: ours faster). auto = forward's choice "
    "(the backward ops choose for themselves); block = the FFT's planned transform length.",
    "auto GF/s: the direct-equivalent work (2 x multiply-adds; x3 for fwd+bwd) over auto's time, an effective "
    "rate when it runs the FFT. fft err: worst norm-wise error of fft vs recipe (output and grads).",
)


def rowconv_verdicts(rows):
    out = []
    for r in rows:
        if r["shape"] == ISSUE_SHAPE:
            ok = r["auto_x_best_alt"] >= TARGET_SPEEDUP
            out.append(f"target rowconv {ISSUE_SHAPE} {r['direction']}: auto >= {TARGET_SPEEDUP:g}x the faster of "
                       f"loop and recipe: {r['auto_x_best_alt']:.2f}x {'PASS' if ok else 'FAIL'}")
    others = [f"{r['label']} {r['auto_x_best_alt']:.1f}x" for r in rows if r["shape"] != ISSUE_SHAPE]
    if others:
        out.append("other long-kernel shapes, auto vs the faster of loop and recipe: " + ", ".join(others))
    return out


# ---------------------------------------------------------------- part 2: convolve

def _convolve_rows_shim(a, b, mode="full", method="auto", out=None):
    """convolve_rows(a, b, method=...) until rowconv_ext.convolve_rows takes a
    method: 'full' mode of real 2-D a (M, N) and b (M, P), through row_conv1d on
    the (1, 1, M, N) layout (a true convolution: the kernel flipped)."""
    if mode != "full" or out is not None:
        raise NotImplementedError("the shim does mode='full' without out= only")
    numpy_in = isinstance(a, np.ndarray)
    ta, tb = (torch.from_numpy(v) if numpy_in else v for v in (a, b))
    m, n = ta.shape
    p = tb.shape[1]
    y = rowconv_ext.row_conv1d(ta.reshape(1, 1, m, n), tb.flip(-1).reshape(m, 1, 1, p), padding=(p - 1, p - 1),
                               method=method).reshape(m, n + p - 1)
    return y.numpy() if numpy_in else y


def convolve_impl():
    """(convolve_rows taking method=, its description): the package's once it
    takes a method, else the shim."""
    fn = rowconv_ext.convolve_rows
    if "method" in inspect.signature(fn).parameters:
        return fn, "rowconv_ext.convolve_rows(A, B, method=m)"
    return _convolve_rows_shim, ("shim (rowconv_ext.convolve_rows has no method= yet): row_conv1d(method=m) on the "
                                 "(1, 1, M, N) layout, kernel flipped, padding (P-1, P-1)")


def scipy_loop(a, b):
    import scipy.signal
    return np.vstack([scipy.signal.convolve(ai, bi) for ai, bi in zip(a, b)])


def time_scipy_loop(a, b, timer, budget_s):
    """(ms for all rows, rows timed): on a subset of the rows, scaled, when the
    whole loop would take longer than budget_s per measurement."""
    m = a.shape[0]
    probe = min(m, 16)
    t0 = time.perf_counter()
    scipy_loop(a[:probe], b[:probe])
    per_row = (time.perf_counter() - t0) / probe
    rows = m if per_row * m * (common.MIN_REPS + 1) <= budget_s else \
        max(probe, min(m, int(budget_s / (per_row * (common.MIN_REPS + 1)))))
    return timer.ms(lambda: scipy_loop(a[:rows], b[:rows])) * m / rows, rows


def bench_convolve(cfg, timer, device, threads, loop_budget_s):
    import scipy.fft
    import scipy.signal

    conv, _ = convolve_impl()
    rng = np.random.default_rng(0)
    n_rows, n = cfg["M"], cfg["N"]
    rows = []
    for dtype in cfg["dtypes"]:
        tdtype = getattr(torch, dtype)
        for p in cfg["P"]:
            a = rng.standard_normal((n_rows, n)).astype(dtype)
            b = rng.standard_normal((n_rows, p)).astype(dtype)
            ref = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), axes=1)
            ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
            ins = (ta, tb) if device == "cuda" else (a, b)  # NumPy in, NumPy out on the CPU, as scipy
            ours_calls = {m: (lambda m=m: conv(*ins, method=m)) for m in METHODS}
            scipy_calls = {"fftconvolve": lambda: scipy.signal.fftconvolve(a, b, axes=1),
                           "oaconvolve": lambda: scipy.signal.oaconvolve(a, b, axes=1)}
            tol, errs = normwise_tol(np.dtype(dtype)), {}
            checks = dict(ours_calls) if device == "cuda" else {**ours_calls, **scipy_calls}
            for name, call in checks.items():
                got = call()
                got = got.cpu().numpy() if isinstance(got, torch.Tensor) else got
                errs[name] = float(np.max(np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)))
                abort_unless(errs[name] <= tol, f"convolve {dtype} P={p}: {name} (worst row)", errs[name], tol)
            if device != "cuda":
                few = min(n_rows, 4)
                got = scipy_loop(a[:few], b[:few])
                errs["scipy_loop"] = rel_err(got, ref[:few])
                abort_unless(errs["scipy_loop"] <= tol, f"convolve {dtype} P={p}: scipy loop", errs["scipy_loop"], tol)
            empty = torch.empty((), dtype=tdtype, device=device)
            pick = rowconv_ext.choose_method(empty.expand(1, 1, n_rows, n), empty.expand(n_rows, 1, 1, p),
                                             padding=(p - 1, p - 1))
            with common.OtherLoad() as load:
                ms = {k: timer.ms(call) for k, call in ours_calls.items()}
                if device == "cuda":
                    ms.update({k: math.nan for k in SCIPY_TIMED})
                    loop_rows = 0
                else:
                    # as called (scipy's default: one worker), and with our threads
                    with scipy.fft.set_workers(1):
                        ms.update({f"{k}_1w": timer.ms(call) for k, call in scipy_calls.items()})
                    with scipy.fft.set_workers(threads):
                        ms.update({k: timer.ms(call) for k, call in scipy_calls.items()})
                        ms["scipy_loop"], loop_rows = time_scipy_loop(a, b, timer, loop_budget_s)
            gflop = 2 * n_rows * n * p / 1e9
            best_scipy = min(ms["fftconvolve"], ms["oaconvolve"])
            rows.append({
                "dtype": dtype, "M": n_rows, "N": n, "P": p, "label": f"{dtype} P={p}", "auto_pick": pick,
                **{f"{k}_ms": v for k, v in ms.items()}, "scipy_loop_rows_timed": loop_rows,
                **{f"{m}_x_{alt}": ms[alt] / ms[m] for m in METHODS for alt in SCIPY_TIMED},
                "auto_x_best_scipy": best_scipy / ms["auto"],
                "gflop": gflop, **{f"{k}_gflops_eff": gflop / (v / 1e3) for k, v in ms.items()},
                **{f"err_{k}": v for k, v in errs.items()},
                "other_cpu_pct": round(100 * load.share, 1),
            })
            print(f"  convolve {dtype} P={p:5d} auto {ms['auto']:.3f} ms ({pick})", file=sys.stderr, flush=True)
    return rows


# scipy's timed calls: fftconvolve and oaconvolve with --threads workers, the
# same as called (one worker, scipy's default: "_1w"), and the per-row loop.
SCIPY_TIMED = ("fftconvolve", "oaconvolve", "fftconvolve_1w", "oaconvolve_1w", "scipy_loop")

CONVOLVE_COLS = [("dtype", "{:8s}", "dtype"), ("P", "{:5d}", "P"), ("auto_pick", "{:6s}", "auto"),
                 *ms_cols(*METHODS, "scipy_loop"), ("scipy_loop_rows_timed", "{:5d}", "loop rows"),
                 *ms_cols("fftconvolve", "oaconvolve", "fftconvolve_1w", "oaconvolve_1w"),
                 *[(f"auto_x_{alt}", "{:7.2f}", f"x {alt}") for alt in SCIPY_TIMED],
                 ("auto_gflops_eff", "{:8.1f}", "auto GF/s"), ("err_fft", "{:8.1e}", "fft err"), BUSY_COL]


def convolve_notes(rows, impl_name):
    notes = [f"convolve_rows: {impl_name}",
             "x <alt> = alt time / auto's time (> 1: convolve_rows faster); scipy under "
             "scipy.fft.set_workers(--threads), and _1w: as called, scipy's default of one worker. "
             "auto = row_conv1d's choice on the equivalent layout.",
             "GF/s: 2*M*N*P (the direct-equivalent work) over the time: an effective rate for FFT methods."]
    scaled = [r for r in rows if 0 < r["scipy_loop_rows_timed"] < r["M"]]
    if scaled:
        notes.append("scipy loop timed on a subset of the rows and scaled to all M rows for: "
                     + ", ".join(f"{r['label']} ({r['scipy_loop_rows_timed']} of {r['M']})" for r in scaled))
    if any(r["scipy_loop_rows_timed"] == 0 for r in rows):
        notes.append("scipy baselines: CPU-only, not timed with --device cuda (nan).")
    return notes


def convolve_verdicts(rows):
    timed = [r for r in rows if math.isfinite(r["fftconvolve_ms"])]
    if not timed:
        return []
    lines = []
    for suffix, how in (("_1w", "as called (one worker)"), ("", "with our threads")):
        fc, oa = f"auto_x_fftconvolve{suffix}", f"auto_x_oaconvolve{suffix}"
        slow = [f"{r['label']} ({r[fc]:.2f}x fftconv, {r[oa]:.2f}x oaconv)" for r in timed
                if r[fc] <= 1 or r[oa] <= 1]
        worst = min(min(r[fc], r[oa]) for r in timed)
        lines.append(f"target convolve: auto faster than fftconvolve and oaconvolve (axes=1) {how} at every P "
                     f"and dtype: worst {worst:.2f}x " + ("PASS" if not slow else "FAIL at " + ", ".join(slow)))
    return lines


# ---------------------------------------------------------------- part 3: sweep

def sweep_rows_for(c, w_len, k, dtype, device, target_s, max_mib):
    """Rows H (B = 1) such that the slower method's predicted time is about target_s,
    at least 1, and x, y within max_mib."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    cap = max(1, int(max_mib * 2**20 / (2 * c * w_len * itemsize)))
    h = 16
    for _ in range(2):  # linear in rows but for the call overheads: twice is enough
        empty = torch.empty((), dtype=dtype, device=device)
        plan = cost_plan(empty.expand(1, c, h, w_len), empty.expand(h, c, c, k))
        slower = max(plan["direct_seconds"], plan["fft_seconds"])
        h = max(1, min(cap, int(round(h * target_s / slower))))
    return h


def bench_sweep(cfg, timer, device, dtype, min_time):
    rows = []
    tol = normwise_tol(dtype)
    gen = torch.Generator().manual_seed(0)
    for config, c in cfg["configs"].items():
        for w_len in cfg["W"]:
            for k in cfg["K"]:
                if k > w_len:
                    continue
                h = sweep_rows_for(c, w_len, k, dtype, device, cfg["target_s"], cfg["max_mib"])
                s = Spec(f"{config} W={w_len} K={k}", 1, c, h, w_len, c, k)
                x = torch.randn(1, c, h, w_len, generator=gen, dtype=dtype).to(device)
                w = torch.randn(h, c, c, k, generator=gen, dtype=dtype).to(device)
                pick, plan = plan_of(x, w, s)
                y_direct, y_fft = OURS["direct"](x, w, None, s), OURS["fft"](x, w, None, s)
                err = rel_err(y_fft, y_direct)
                abort_unless(err <= tol, f"sweep {s.name}: fft against direct", err, tol)
                with common.OtherLoad() as load:
                    ms = {m: timer.ms(lambda m=m: OURS[m](x, w, None, s), min_time, 3) for m in ("direct", "fft")}
                best = min(ms.values())
                gflop = common.fwd_flops(s) / 1e9
                rows.append({
                    "config": config, "C": c, "H": h, "W": w_len, "K": k, "label": s.name, "auto_pick": pick,
                    "fft_block": plan["block"], "direct_ms": ms["direct"], "fft_ms": ms["fft"],
                    "auto_ms": ms[pick], "best": "fft" if ms["fft"] < ms["direct"] else "direct",
                    "auto_over_best": ms[pick] / best, "fft_over_direct": ms["fft"] / ms["direct"],
                    "pred_direct_ms": 1e3 * plan["direct_seconds"], "pred_fft_ms": 1e3 * plan["fft_seconds"],
                    "pred_fft_over_direct": plan["fft_seconds"] / plan["direct_seconds"],
                    "direct_gflops": gflop / (ms["direct"] / 1e3), "fft_gflops_eff": gflop / (ms["fft"] / 1e3),
                    "fft_rel_err": err, "other_cpu_pct": round(100 * load.share, 1),
                })
            print(f"  sweep {config} W={w_len} done", file=sys.stderr, flush=True)
    return rows


SWEEP_COLS = [("config", "{:9s}", "config"), ("W", "{:6d}", "W"), ("K", "{:5d}", "K"), ("H", "{:5d}", "rows"),
              ("auto_pick", "{:6s}", "auto"), ("best", "{:6s}", "best"), *ms_cols("direct", "fft"),
              ("auto_over_best", "{:6.2f}", "auto/best"),
              ("fft_over_direct", "{:8.3f}", "fft/dir"), ("pred_fft_over_direct", "{:8.3f}", "pred f/d"), BUSY_COL]


def sweep_summary(rows):
    ratios = np.array([r["auto_over_best"] for r in rows])
    worst = rows[int(np.argmax(ratios))]
    share = float(np.mean(ratios <= TARGET_WITHIN))
    return share, worst


def sweep_verdicts(rows):
    share, worst = sweep_summary(rows)
    over = sum(r["auto_over_best"] > TARGET_WORST for r in rows)
    ok = share >= TARGET_SHARE and worst["auto_over_best"] <= TARGET_WORST
    return [f"target sweep: auto within {TARGET_WITHIN:g}x of the better method on >= {100 * TARGET_SHARE:.0f}% "
            f"of the points and never beyond {TARGET_WORST:g}x: {100 * share:.1f}% of {len(rows)} within, "
            f"worst {worst['auto_over_best']:.2f}x at {worst['label']} (auto {worst['auto_pick']}), "
            f"{over} beyond {TARGET_WORST:g}x: {'PASS' if ok else 'FAIL'}"]


def plot_sweep(rows, title, path):
    """Per channel config: a heatmap of auto / best over (K, W), the pick in each cell
    (F fft, D direct, lower case where it is the slower one), and the measured and
    predicted fft / direct time ratios against K, one line per W."""
    plt = common.pyplot_or_none(path)
    if plt is None:
        return
    from matplotlib.lines import Line2D

    configs = list(dict.fromkeys(r["config"] for r in rows))
    ks = sorted({r["K"] for r in rows})
    ws = sorted({r["W"] for r in rows})
    fig, axes = plt.subplots(2, len(configs), figsize=(max(7, 0.55 * len(ks) + 2) * len(configs), 10), squeeze=False)
    for col, config in enumerate(configs):
        cells = {(r["W"], r["K"]): r for r in rows if r["config"] == config}
        grid = np.full((len(ws), len(ks)), np.nan)
        ax = axes[0, col]
        for (w_len, k), r in cells.items():
            i, j = ws.index(w_len), ks.index(k)
            grid[i, j] = r["auto_over_best"]
            mark = "F" if r["auto_pick"] == "fft" else "D"
            ax.text(j, i, f"{r['auto_over_best']:.2f}\n{mark if r['auto_pick'] == r['best'] else mark.lower()}",
                    ha="center", va="center", fontsize=6)
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn_r", vmin=1.0, vmax=TARGET_WORST, aspect="auto",
                       origin="lower")
        ax.set_xticks(range(len(ks)), ks, fontsize=7, rotation=90)
        ax.set_yticks(range(len(ws)), ws, fontsize=8)
        ax.set_xlabel("K")
        ax.set_ylabel("W")
        ratios = np.array([r["auto_over_best"] for r in cells.values()])
        ax.set_title(f"{config}: auto's time / best method's time\n{100 * np.mean(ratios <= TARGET_WITHIN):.0f}% "
                     f"within {TARGET_WITHIN:g}x, worst {ratios.max():.2f}x  (F/D: auto's pick; "
                     f"lower case: not the faster)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03)
        ax = axes[1, col]
        for n_w, w_len in enumerate(ws):
            pts = sorted((r for r in cells.values() if r["W"] == w_len), key=lambda r: r["K"])
            color = f"C{n_w}"
            ax.plot([r["K"] for r in pts], [r["fft_over_direct"] for r in pts], "-", color=color, label=f"W={w_len}")
            ax.plot([r["K"] for r in pts], [r["pred_fft_over_direct"] for r in pts], ":", color=color)
            for r in pts:
                ax.plot(r["K"], r["fft_over_direct"], "o", color=color,
                        markerfacecolor=color if r["auto_pick"] == "fft" else "none")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K")
        ax.set_ylabel("fft time / direct time")
        ax.set_title(f"{config}: below 1 the FFT is faster; solid measured, dotted predicted; "
                     "filled: auto picks fft", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="gray", linestyle=":"), Line2D([], [], color="gray", marker="o",
                                                                          linestyle="none")]
        ax.legend(handles, labels + ["predicted", "measured point"], fontsize=7)
        ax.grid(which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


# ---------------------------------------------------------------- part 4: auto on bench_cpu's shapes

def bench_auto_on_cpu_shapes(specs, timer, device):
    rows = []
    for s in specs:
        x, w, b, g = (t.to(device) for t in common.make_inputs(s))
        pick, plan = plan_of(x, w, s)
        for direction in ("fwd", "fwd+bwd"):
            if direction == "fwd":
                calls = {m: (lambda m=m: OURS[m](x, w, b, s)) for m in ("auto", "direct")}
            else:
                calls = {m: common.fwd_bwd(OURS[m], (x, w, b), g, s) for m in ("auto", "direct")}
            with common.OtherLoad() as load:
                ms = {m: timer.ms(call) for m, call in calls.items()}
            rows.append({
                **spec_fields(s), "direction": direction, "label": f"{s.name} {direction}", "auto_pick": pick,
                "fft_block": plan["block"], "pred_direct_ms": 1e3 * plan["direct_seconds"],
                "pred_fft_ms": 1e3 * plan["fft_seconds"], "auto_ms": ms["auto"], "direct_ms": ms["direct"],
                "auto_over_direct": ms["auto"] / ms["direct"], "other_cpu_pct": round(100 * load.share, 1),
            })
    return rows


AUTO_CPU_COLS = [("shape", "{:14s}", "shape"), ("direction", "{:8s}", "dir"), ("auto_pick", "{:6s}", "auto"),
                 ("pred_direct_ms", "{:9.3f}", "pred dir ms"), ("pred_fft_ms", "{:9.3f}", "pred fft ms"),
                 *ms_cols("auto", "direct"),
                 ("auto_over_direct", "{:8.2f}", "auto/dir"), BUSY_COL]


def auto_cpu_verdicts(rows, slack=1.1):
    """The target: auto picks direct on every shape, or is not slower than
    direct where it picks the FFT. Where it picks direct, auto runs the very
    same kernels, so a time difference there is noise and is not judged."""
    ffts = sorted({r["shape"] for r in rows if r["auto_pick"] == "fft"})
    slow = [f"{r['label']} {r['auto_over_direct']:.2f}x" for r in rows
            if r["auto_pick"] == "fft" and r["auto_over_direct"] > slack]
    shapes = len({r["shape"] for r in rows})
    return [f"target auto-on-cpu-shapes: auto picks direct (forward) on {shapes - len(ffts)} of {shapes} shapes"
            + (f" (fft on {', '.join(ffts)}; slower than direct by > {slack:g}x, the noise allowance: "
               + (", ".join(slow) if slow else "none") + ")" if ffts else "")
            + (" FAIL" if slow else " PASS")]


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS))
    p.add_argument("--quick", action="store_true", help="tiny settings for every part (a smoke test; seconds)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--min-time", type=float, help="seconds of timed calls per measurement (default 0.5; 0.02 "
                                                   "with --quick); the sweep uses a fifth of it per method")
    p.add_argument("--sweep-dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--sweep-target", type=float, help="seconds the slower method should take at each sweep point "
                                                       f"(default {SWEEP['target_s']}; {QUICK_SWEEP['target_s']} "
                                                       "with --quick)")
    p.add_argument("--loop-budget", type=float, help="seconds one scipy-loop measurement may take before it is timed "
                                                      "on a subset of rows and scaled (default 3; 0.05 with --quick)")
    p.add_argument("--out", type=Path, default=common.REPO / "benchmarks" / "results")
    p.add_argument("--tag", help="file name part: fft_<part>_<tag>.csv/.png "
                                 "(default: <quick|full>_<tuned|default>malloc[_cuda])")
    args = p.parse_args()
    parts = args.part.split(",")
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {unknown}; known: {list(PARTS)}")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no GPU")
        from bench_cuda import tf32_off
        tf32_off()  # full float32 for cuDNN and the ceilings, as bench_cuda.py

    quick = args.quick
    min_time = args.min_time or (0.02 if quick else 0.5)
    torch.set_num_threads(args.threads)
    mm_n = 512 if quick else (4096 if args.device == "cuda" else 2048)
    peak = common.matmul_peak_gflops(n=mm_n, device=args.device)
    header = common.machine_header(args.threads, peak, min_time)
    header["mkl_matmul_gflops" if args.device == "cpu" else "fp32_matmul_gflops"] = (
        f"{peak:.1f} (best of torch.mm {mm_n}x{mm_n}, {args.device}, {args.threads} threads: a reference)")
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        header["device"] = f"cuda: {props.name}, {props.multi_processor_count} SMs, CUDA {torch.version.cuda}"
    else:
        header["device"] = "cpu"
    impl_name = convolve_impl()[1]
    header["convolve_rows"] = impl_name
    header["cost_constants"] = " ".join(f"{k}={v:.3g}" for k, v in
                                        rowconv_ext.method.cost_constants(args.device).items())
    header["quick"] = quick
    tag = args.tag or (f"{'quick' if quick else 'full'}_{'tuned' if header['mmap_threshold_raised'] else 'default'}"
                       f"malloc{'_cuda' if args.device == 'cuda' else ''}")
    common.print_header(header)
    timer = Timer(args.device, min_time)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    verdicts, t_start = [], time.perf_counter()

    if "rowconv" in parts:
        rows = bench_rowconv(QUICK_LONG_SHAPES if quick else LONG_SHAPES, timer, args.device, peak)
        finish_part("rowconv", rows, ROWCONV_COLS, header, out, tag, ROWCONV_NOTES)
        plot_bars(rows, [(f"{m}_x_best_alt", f"ours {m}") for m in METHODS],
                  "row_conv1d, long kernels: min(loop, recipe) time / ours (> 1: ours faster)",
                  out / f"fft_rowconv_{tag}.png", [(1.0, ""), (TARGET_SPEEDUP, f"target {TARGET_SPEEDUP:g}x")])
        verdicts += rowconv_verdicts(rows)
    if "convolve" in parts:
        rows = bench_convolve(QUICK_CONVOLVE if quick else CONVOLVE, timer, args.device, args.threads,
                              args.loop_budget or (0.05 if quick else 3.0))
        finish_part("convolve", rows, CONVOLVE_COLS, header, out, tag, convolve_notes(rows, impl_name))
        if args.device != "cuda":
            plot_bars(rows, [(f"auto_x_{alt}", f"vs {alt}") for alt in ("scipy_loop", "fftconvolve", "oaconvolve")],
                      "convolve_rows (auto), full mode: scipy's time / ours (> 1: ours faster)",
                      out / f"fft_convolve_{tag}.png", [(1.0, "")])
        verdicts += convolve_verdicts(rows)
    if "sweep" in parts:
        cfg = dict(QUICK_SWEEP if quick else SWEEP)
        cfg["target_s"] = args.sweep_target or cfg["target_s"]
        rows = bench_sweep(cfg, timer, args.device, getattr(torch, args.sweep_dtype), min_time / 5)
        finish_part("sweep", rows, SWEEP_COLS, header, out, tag,
                    ["auto/best: the measured time of auto's pick over the faster method's; best: the faster; "
                     "fft/dir and pred f/d: measured and predicted fft time / direct time."])
        share, worst = sweep_summary(rows)
        plot_sweep(rows, f"{header['cpu'] if args.device == 'cpu' else header['device']}, {args.threads} threads, "
                         f"{args.sweep_dtype}, forward, valid padding; {100 * share:.1f}% of {len(rows)} points "
                         f"within {TARGET_WITHIN:g}x, worst {worst['auto_over_best']:.2f}x ({worst['label']})",
                   out / f"fft_sweep_{tag}.png")
        verdicts += sweep_verdicts(rows)
    if "auto-on-cpu-shapes" in parts:
        by_name = {s.name: s for s in common.SHAPES}
        specs = [by_name[n] for n in common.QUICK] if quick else common.SHAPES
        rows = bench_auto_on_cpu_shapes(specs, timer, args.device)
        finish_part("auto_cpu_shapes", rows, AUTO_CPU_COLS, header, out, tag,
                    ["auto = choose_method (forward); pred = the cost model's seconds; auto/dir = measured "
                     "auto time / direct time."])
        verdicts += auto_cpu_verdicts(rows)

    print()
    for line in verdicts:
        print(line)
    print(f"(verdicts mean something only on an idle machine; {'--quick: tiny shapes, ' if quick else ''}"
          f"total {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
