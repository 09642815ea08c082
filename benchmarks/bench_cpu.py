"""CPU benchmark: rowconv_ext.row_conv1d against stock PyTorch, float32 (or --dtype).

Alternatives, all in this process, on the same random data:
  loop    per-row F.conv1d over x.unbind(2), then torch.stack(dim=2)
  recipe  x.transpose(1, 2).reshape(B, H*Cin, W) -> grouped F.conv1d(groups=H*groups)
          -> reshape/transpose back -> .contiguous()
  native  grouped F.conv1d on input already laid out as (B, H*Cin, W) (layout done
          outside the timed region; only the conv, and F.pad where needed, is timed)

Directions: fwd (inputs do not require grad), fwd+bwd (forward, then
torch.autograd.grad of x, weight and bias with a fixed random output grad), and
the two backward kernels alone, grad_in and grad_w (ours: the
row_conv1d_grad_input / _grad_weight ops; native: aten.convolution_backward with
one output; loop and recipe have no such split and show nan).
Timing: our own perf_counter loop over the implementations in turn, two
calls each a round, the second timed (warmup, then rounds until --min-time of
timed calls each has passed and at least MIN_REPS rounds were made); the
MEDIAN time of each is reported, and the speedups are the medians of the
rounds' ratios (a drifting host slows both sides of a ratio alike). The thread
count is set once with torch.set_num_threads and applies to every call.
FLOPs: fwd = grad_in = grad_w = 2*B*Cout*H*Wout*(Cin/groups)*K, fwd+bwd = 3 x fwd
(bias ignored). Ceiling: the machine's fp32 FMA peak, measured in the same run
(torch.ops.rowconv.cpu_fma_peak_gflops: independent FMA chains in registers at the
widest vectors the CPU runs, at the benchmark's thread count; with --dtype see
below); %FMA is ours and
native's (oneDNN's) GFLOP/s over it. MKL's torch.mm rate is in the header as a second
reference, named as what it is: MKL does not use AVX-512 on AMD CPUs, so it is no
ceiling there.
Peak extra memory: sum of the allocator events recorded by torch.profiler
(profile_memory=True) in time order; the peak of that running sum is the most
bytes live at once beyond what existed before the call (output included).
Buffers an implementation allocates outside the PyTorch allocator are not seen.

--dtype bfloat16 (or float16, float64) runs every implementation on inputs of
that dtype (the same random numbers, rounded): ours computes the half types in
float32 (with vdpbf16ps nowhere yet), PyTorch's recipe, loop and native run
their own kernels for the dtype; %FMA is then over the fp64 peak for float64,
and for the half types over the bf16 peak where the CPU has AVX-512 BF16, else
over the fp32 peak (what ours runs on). Issue 12's bf16 target is ours against
PyTorch's bf16 recipe.

Run under GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
for stable numbers, and once without it for what users see (see BENCHMARKING.md).
"""
import argparse
import csv
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple, Union

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # keep the profiler's start/stop chatter off stderr

import torch
import torch.nn.functional as F

import rowconv_ext

MIN_REPS = 5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
# F.conv1d(padding='same') with an even K pads a copy of x; the alternatives pay for it, no need to say so.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")
REPO = Path(__file__).resolve().parent.parent


class Spec(NamedTuple):
    name: str
    B: int
    Cin: int
    H: int
    W: int
    Cout: int
    K: int
    stride: int = 1
    padding: Union[int, str, tuple] = 0
    dilation: int = 1
    groups: int = 1


SHAPES = [
    Spec("forum", 32, 15, 10, 100, 15, 3),
    Spec("forum-stride2", 32, 15, 10, 100, 15, 3, stride=2),
    Spec("forum-dil2", 32, 15, 10, 100, 15, 3, dilation=2),
    Spec("forum-long", 32, 15, 10, 4096, 15, 3),
    Spec("wide", 8, 64, 16, 1024, 64, 5),
    Spec("narrow", 64, 4, 64, 512, 4, 7),
    Spec("dw-many-rows", 1, 1, 4096, 1024, 1, 20),
    Spec("dw-long", 16, 1, 256, 8192, 1, 64),
    Spec("grouped", 16, 16, 8, 1024, 32, 5, groups=4),
    Spec("same", 32, 15, 10, 100, 15, 4, padding="same"),
    Spec("causal", 32, 15, 10, 512, 15, 5, padding="causal", dilation=2),
    # rows of the result a power of two apart (H * W), few terms an output
    Spec("same-pow2", 16, 4, 8, 1024, 32, 3, padding="same"),
]
QUICK = ["forum", "forum-stride2", "forum-dil2"]
IMPLS = ["ours", "loop", "recipe", "native"]


# ---------------------------------------------------------------- shapes and padding

def pad_pair(s):
    """(left, right) zero padding of a spec, as the API defines the padding forms."""
    total = s.dilation * (s.K - 1)
    if s.padding == "same":
        return total // 2, total - total // 2
    if s.padding == "causal":
        return total, 0
    if s.padding == "valid":
        return 0, 0
    if isinstance(s.padding, (tuple, list)):
        return tuple(s.padding)
    return s.padding, s.padding


def alt_padding(s):
    """(F.pad amounts or None, padding for F.conv1d). Asymmetric and causal padding
    go through F.pad and padding=0, as a user would write it; this also keeps
    depthwise convs off oneDNN's slow large-padding path."""
    if s.padding == "causal" or isinstance(s.padding, (tuple, list)):
        return pad_pair(s), 0
    return None, s.padding


def wout(s):
    left, right = pad_pair(s)
    return (s.W + left + right - s.dilation * (s.K - 1) - 1) // s.stride + 1


def fwd_flops(s):
    return 2 * s.B * s.Cout * s.H * wout(s) * (s.Cin // s.groups) * s.K


def min_bytes(s, direction, itemsize):
    """The bytes a direction must move at least: each operand read once and
    each result written once (grad_bias's pass over grad_out included in
    fwd+bwd)."""
    x, y = s.B * s.Cin * s.H * s.W, s.B * s.Cout * s.H * wout(s)
    w, b = s.H * s.Cout * (s.Cin // s.groups) * s.K, s.H * s.Cout
    elements = {"fwd": x + w + b + y, "grad_in": y + w + x, "grad_w": y + x + w}
    elements["fwd+bwd"] = sum(elements.values()) + y + b
    return elements[direction] * itemsize


def roofline_ms(gflop, nbytes, fma_gflops, mem_gbps, llc_bytes):
    """(the least time the FMA peak and the memory bandwidth allow, its
    bound): where the bytes exceed the last-level cache they come from (and
    go to) memory at mem_gbps, else from the caches (taken as free: the
    compute bound alone)."""
    compute = gflop / fma_gflops * 1e3
    memory = nbytes / 1e9 / mem_gbps * 1e3 if nbytes > llc_bytes else 0.0
    return (memory, "memory") if memory > compute else (compute, "compute")


# ---------------------------------------------------------------- implementations
# Each takes (x, weight, bias, spec) in its own layout: ours/loop/recipe get
# x (B, Cin, H, W), weight (H, Cout, Cin/g, K), bias (H, Cout); native gets
# x (B, H*Cin, W), weight (H*Cout, Cin/g, K), bias (H*Cout).

def ours(x, w, b, s):
    return rowconv_ext.row_conv1d(x, w, b, s.stride, s.padding, s.dilation, s.groups)


def loop(x, w, b, s):
    pre, pad = alt_padding(s)
    if pre is not None:
        x = F.pad(x, pre)
    # unbind, not x[:, :, h, :]: indexing keeps one full-size grad of x per row in backward.
    rows = [F.conv1d(xh, wh, bh, s.stride, pad, s.dilation, s.groups)
            for xh, wh, bh in zip(x.unbind(2), w.unbind(0), b.unbind(0))]
    return torch.stack(rows, dim=2)


def recipe(x, w, b, s):
    pre, pad = alt_padding(s)
    x2 = x.transpose(1, 2).reshape(s.B, s.H * s.Cin, s.W)
    if pre is not None:
        x2 = F.pad(x2, pre)
    y2 = F.conv1d(x2, w.reshape(s.H * s.Cout, s.Cin // s.groups, s.K), b.reshape(-1),
                  s.stride, pad, s.dilation, s.H * s.groups)
    return y2.reshape(s.B, s.H, s.Cout, -1).transpose(1, 2).contiguous()


def native(x2, w2, b2, s):
    pre, pad = alt_padding(s)
    if pre is not None:
        x2 = F.pad(x2, pre)
    return F.conv1d(x2, w2, b2, s.stride, pad, s.dilation, s.H * s.groups)


def to_native(x, w, b, g, s):
    """The same numbers in the (B, H*C, W) layout, contiguous."""
    return (x.transpose(1, 2).reshape(s.B, s.H * s.Cin, s.W).contiguous(),
            w.reshape(s.H * s.Cout, s.Cin // s.groups, s.K).contiguous(),
            b.reshape(-1).contiguous(),
            g.transpose(1, 2).reshape(s.B, s.H * s.Cout, -1).contiguous())


def make_inputs(s, dtype=torch.float32):
    torch.manual_seed(0)  # fixed random data; never zeros or ones
    x = torch.randn(s.B, s.Cin, s.H, s.W)
    w = torch.randn(s.H, s.Cout, s.Cin // s.groups, s.K)
    b = torch.randn(s.H, s.Cout)
    g = torch.randn(s.B, s.Cout, s.H, wout(s))
    return tuple(t.to(dtype) for t in (x, w, b, g))


def fwd_bwd(fn, inputs, grad, s):
    """A closure: forward, then the three grads (autograd.grad: nothing accumulates)."""
    leaves = [t.detach().requires_grad_() for t in inputs]

    def step():
        out = fn(*leaves, s)
        return out, torch.autograd.grad(out, leaves, grad)
    return step


# ---------------------------------------------------------------- checks

def verify(s, x, w, b, g, impl=ours):
    """ours (or impl, an implementation of ours' signature) vs recipe (output and
    the three grads), and every alternative's output vs recipe; tolerances grow
    with the reduction length behind each number (values from randn data grow
    like sqrt(n), rounding error like eps*sqrt(n))."""
    def close(name, got, ref, n):
        # float32 at least: ours rounds the half types once at the end, the
        # recipe per its own kernels; the tolerance is the wider one's
        tol = 16 * max(torch.finfo(got.dtype).eps, torch.finfo(torch.float32).eps)
        try:
            torch.testing.assert_close(got, ref, rtol=tol * n ** 0.5, atol=tol * n)
        except AssertionError as e:
            sys.exit(f"\nABORT: {s.name}: {name} does not match the recipe\n{e}")

    y_ours, grads_ours = fwd_bwd(impl, (x, w, b), g, s)()
    y_ref, grads_ref = fwd_bwd(recipe, (x, w, b), g, s)()
    close("ours forward", y_ours, y_ref, s.Cin // s.groups * s.K)
    for name, got, ref, n in zip(("grad x", "grad weight", "grad bias"), grads_ours, grads_ref,
                                 ((s.Cout // s.groups) * s.K, s.B * wout(s), s.B * wout(s))):
        close(f"ours {name}", got, ref, n)
    with torch.no_grad():
        close("loop forward", loop(x, w, b, s), y_ref, s.Cin // s.groups * s.K)
        x2, w2, b2, _ = to_native(x, w, b, g, s)
        close("native forward", native(x2, w2, b2, s),
              y_ref.transpose(1, 2).reshape(s.B, s.H * s.Cout, -1), s.Cin // s.groups * s.K)


# ---------------------------------------------------------------- measurement

def time_median_ms(fn, min_time, min_reps=MIN_REPS):
    """Median wall time of single calls, after a warmup of >= 1 call and 20% of min_time."""
    t_end = time.perf_counter() + 0.2 * min_time
    fn()
    while time.perf_counter() < t_end:
        fn()
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def warm_up_in_turn(fns, min_seconds=0.0, max_rounds=8):
    """Calls fns in turn, round after round, for min_seconds and until a round
    takes no page fault (at most max_rounds after that): the allocator's heap
    has then grown to what the calls need in turn. (Large results that
    alternate in size, a 1 GiB one-pass result against 64 MiB chunks, took
    three rounds of page faults, 1.4 s a call against 0.36 s after.)"""
    t_end = time.perf_counter() + min_seconds
    for _ in range(max_rounds):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for fn in fns:
            fn()
        settled = resource.getrusage(resource.RUSAGE_SELF).ru_minflt == faults
        if settled and time.perf_counter() >= t_end:
            return
    while time.perf_counter() < t_end:
        for fn in fns:
            fn()


# Page faults taken inside the timed calls of time_in_turn, over the run (the
# warm-up settles the heap first; a fault here is a fresh page a timed call
# paid for, which the "stable allocator" is meant to rule out).
TIMED_PAGE_FAULTS = {"faults": 0, "calls": 0}


def time_in_turn(calls, seconds, min_rounds, reference="ours", warm_seconds=0.0, batches=None,
                 untimed_first=False, alternate=False):
    """Times each of calls ({name: fn}, `reference` among them) in turn, round
    after round, after warm_up_in_turn for warm_seconds, for >= min_rounds
    rounds and >= `seconds` of rounds. A round times batches[name] calls of
    each (default 1), after one untimed call where untimed_first (the timed
    call then finds its own data in cache, where the other calls left
    theirs, as in a loop of it). With `alternate`, every other round calls
    them in the reverse order, so that each follows each as often (for
    calls whose time depends on the call before them). Returns the median
    seconds of a call of each and, for each, the median over rounds of its
    time over the reference's in the same round: on a shared host whose
    speed drifts (the same call here varied 1.5x within minutes) a slow
    spell then hits both sides of a ratio, where timing one after the other
    would credit or blame one of them."""
    warm_up_in_turn(list(calls.values()), warm_seconds)
    batches = batches or {}
    times = {k: [] for k in calls}
    t_end = time.perf_counter() + seconds
    while len(times[reference]) < min_rounds or time.perf_counter() < t_end:
        order = list(calls.items())
        if alternate and len(times[reference]) % 2:
            order.reverse()
        for k, fn in order:
            if untimed_first:
                fn()
            n = batches.get(k, 1)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[k].append((time.perf_counter() - t0) / n)
            TIMED_PAGE_FAULTS["faults"] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            TIMED_PAGE_FAULTS["calls"] += n
    seconds_each = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(a / o for a, o in zip(v, times[reference])) for k, v in times.items()}
    return seconds_each, ratios


def time_interleaved_ms(calls, min_time, min_reps=MIN_REPS):
    """calls: {name: fn}, "ours" among them, by time_in_turn: each called
    twice a round, the second call timed, >= min_time per call on average.
    Returns the median ms of each and its median ratio over ours."""
    n = len(calls)
    sec, ratios = time_in_turn(calls, 2 * min_time * n, min_reps, warm_seconds=0.2 * min_time * n,
                               untimed_first=True)
    return {k: 1e3 * v for k, v in sec.items()}, ratios


class OtherLoad:
    """Share of the machine's CPU time used by OTHER processes while the block runs
    (/proc/stat busy time minus our own). With OpenMP threads on every core, a busy
    neighbour can slow oneDNN by 10-100x, so a row measured under load is flagged."""
    def _snap(self):
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(vals[:8]) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system

    def __enter__(self):
        self.start = self._snap()
        return self

    def __exit__(self, *exc):
        (w0, b0, o0), (w1, b1, o1) = self.start, self._snap()
        self.share = max(0.0, ((b1 - b0) - (o1 - o0)) / (os.cpu_count() * (w1 - w0)))


def peak_extra_mib(fn):
    """Peak of the running sum of allocations/frees seen by the profiler during fn()."""
    from torch.profiler import ProfilerActivity, profile
    fn()  # warm: first-call allocations (e.g. oneDNN primitive caches) are not the op's
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()  # kept alive to the end, so the output counts
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    del result
    return peak / 2**20


def matmul_peak_gflops(reps=8, n=2048, device="cpu"):
    """Best rate of torch.mm n x n (float32) on device (synchronised on CUDA)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def fma_peaks(samples=5):
    """The measured FMA peaks in GFLOP/s at the current thread count: float32,
    and bfloat16 (AVX-512 BF16's vdpbf16ps; 0 where the CPU lacks it). The
    best of `samples` measurements: a ceiling, which one slow sample
    understates (Zen 5, six in a row: 556, 576, 577, 576, 576, 576; a run
    whose one sample read 535 put the wide kernels at 82% of it, 76% of 576)."""
    return {d: max(torch.ops.rowconv.cpu_fma_peak_gflops(d) for _ in range(samples)) for d in ("float32", "bfloat16")}


def backward_calls(s, x, w, g, x2, w2, g2):
    """The two backward kernels alone, ours and native's: {direction: {impl: call}}."""
    left, right = pad_pair(s)
    block = rowconv_ext.method.fft_block_arg("auto")  # what ours() runs
    pre, pad = alt_padding(s)
    if isinstance(pad, str):  # 'same': aten's backward takes one number a side: pad first
        pre, pad = pad_pair(s), 0
    x2p = F.pad(x2, pre) if pre is not None else x2

    def native_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            g2, x2p, w2, None, [s.stride], [pad] if isinstance(pad, int) else pad, [s.dilation], False, [0],
            s.H * s.groups, mask)
    return {
        "grad_in": {"ours": lambda: torch.ops.rowconv.row_conv1d_grad_input(
                        g, w, s.W, s.stride, left, right, s.dilation, s.groups, block),
                    "native": native_backward([True, False, False])},
        "grad_w": {"ours": lambda: torch.ops.rowconv.row_conv1d_grad_weight(
                       g, x, s.K, s.stride, left, right, s.dilation, s.groups, block),
                   "native": native_backward([False, True, False])},
    }


def bench_shape(s, min_time, peak, dtype=torch.float32, roof=None):
    """roof: (memory GB/s, last-level cache bytes) for the roofline columns."""
    x, w, b, g = make_inputs(s, dtype)
    verify(s, x, w, b, g)
    x2, w2, b2, g2 = to_native(x, w, b, g, s)
    fns = {"ours": ours, "loop": loop, "recipe": recipe, "native": native}
    data = {k: ((x, w, b), g) for k in IMPLS}  # (inputs, output grad) in each one's layout
    data["native"] = ((x2, w2, b2), g2)
    rows = []
    split = backward_calls(s, x, w, g, x2, w2, g2)
    for direction in ("fwd", "fwd+bwd", "grad_in", "grad_w"):
        if direction == "fwd":
            calls = {k: (lambda f=fns[k], a=data[k][0]: f(*a, s)) for k in IMPLS}
        elif direction == "fwd+bwd":
            calls = {k: fwd_bwd(fns[k], *data[k], s) for k in IMPLS}
        else:
            calls = split[direction]
        with OtherLoad() as load:
            ms, ratio = time_interleaved_ms({k: calls[k] for k in IMPLS if k in calls}, min_time)
        ms = {k: ms.get(k, float("nan")) for k in IMPLS}
        gflop = fwd_flops(s) * (3 if direction == "fwd+bwd" else 1) / 1e9
        nbytes = min_bytes(s, direction, x.element_size())
        roof_ms, bound = roofline_ms(gflop, nbytes, peak, *roof) if roof else (float("nan"), "")
        rows.append({
            "shape": s.name, "B": s.B, "Cin": s.Cin, "H": s.H, "W": s.W, "Cout": s.Cout,
            "K": s.K, "stride": s.stride, "padding": str(s.padding), "dilation": s.dilation,
            "groups": s.groups, "Wout": wout(s), "dtype": str(dtype).replace("torch.", ""),
            "direction": direction, "gflop": gflop,
            **{f"{k}_ms": ms[k] for k in IMPLS},
            "ours_gflops": gflop / (ms["ours"] / 1e3),
            "ours_pct_peak": 100 * gflop / (ms["ours"] / 1e3) / peak,
            "native_pct_peak": 100 * gflop / (ms["native"] / 1e3) / peak,
            "min_mb": nbytes / 1e6, "roofline_ms": roof_ms, "bound": bound,
            "ours_pct_roofline": 100 * roof_ms / ms["ours"],
            **{f"speedup_vs_{k}": ratio.get(k, float("nan")) for k in IMPLS[1:]},
            "ours_peak_mib": peak_extra_mib(calls["ours"]),
            "recipe_peak_mib": peak_extra_mib(calls["recipe"]) if "recipe" in calls else float("nan"),
            "other_cpu_pct": round(100 * load.share, 1),
        })
        print(f"  {s.name:14s} {direction:8s} ours {ms['ours']:.3f} ms", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------- header and report

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile")


def cache_size(level, kind):
    """CPU 0's cache of that level and type ("Data", "Unified") as sysfs writes
    its size ("32K"), or None."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == str(level) and (index / "type").read_text().strip() == kind:
                return (index / "size").read_text().strip()
        except OSError:
            pass
    return None


def llc_bytes():
    """The last-level cache (L3) in bytes; 32 MiB where sysfs does not say."""
    size = cache_size(3, "Unified") or "32768K"
    m = re.fullmatch(r"(\d+)([KMG]?)", size)
    return int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)] if m else 32 * 2**20


def cpu_cache_and_flags():
    """(L1d size per core, the SIMD flags of ISA_FLAGS the CPU has): the L1d tells
    Zen 4 (32 KiB) from Zen 5 (48 KiB) on our machines (BENCHMARKING.md)."""
    l1d = cache_size(1, "Data") or "unknown"
    try:
        m = re.search(r"^flags\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        have = set(m.group(1).split()) if m else set()
    except OSError:
        have = set()
    return l1d, " ".join(f for f in ISA_FLAGS if f in have) or "(none of: " + " ".join(ISA_FLAGS) + ")"


def line_round_trip_ns():
    """The round trip of a cache line between the first two CPUs this process
    may run on (line_round_trip.c, compiled with the C compiler into a
    temporary directory), in ns; None where it cannot run (one CPU, no
    compiler). On our VMs 55-100 ns: both vCPUs on cores of one CCD; 320-400:
    on two (times of the same call differ by up to 1.5x between the two)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "line_round_trip")
        try:
            subprocess.run([os.environ.get("CC", "cc"), "-O2", "-pthread", str(Path(__file__).parent /
                           "line_round_trip.c"), "-o", exe], check=True, capture_output=True, timeout=60)
            out = subprocess.run([exe, str(cpus[0]), str(cpus[1])], check=True, capture_output=True, text=True,
                                 timeout=60).stdout
            return float(out)
        except (OSError, ValueError, subprocess.SubprocessError):
            return None


def describe_line_round_trip():
    """line_round_trip_ns() with what it says about the vCPUs' placement."""
    ns = line_round_trip_ns()
    if ns is None:
        return "n/a"
    return f"{ns:.0f} ns ({'one CCD' if ns < 200 else 'two CCDs'}: the vCPUs' placement, see line_round_trip.c)"


def machine_header(threads, peak, min_time, fma=None):
    """The run's machine and settings; peak: MKL's torch.mm rate; fma: fma_peaks()."""
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    onednn = re.search(r"MKL-DNN (v[\d.]+)", torch.__config__.show())
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    l1d, flags = cpu_cache_and_flags()
    header = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "l1d_per_core": l1d,
        "isa_flags": flags,
        "nproc": f"{os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onednn": f"{torch.backends.mkldnn.is_available()} {onednn.group(1) if onednn else ''}".strip(),
        "threads": threads,
        "loadavg_1_5_15min": " ".join(f"{v:.2f}" for v in os.getloadavg()),  # > 0 before start: shared machine
        "line_round_trip_at_start": describe_line_round_trip(),
        "glibc_tunables": tunables or "(unset)",
        "mmap_threshold_raised": "mmap_threshold" in tunables,
        "repo_commit": commit or "unknown",
        "timing": f"implementations in turn, two calls each a round, the second timed (perf_counter); medians "
                  f"over >= {MIN_REPS} rounds and >= {min_time} s of timed calls each, after warmup; speedups: "
                  f"medians of the rounds' ratios",
        "mkl_matmul_gflops": f"{peak:.1f} (best of torch.mm 2048x2048, {threads} threads: a reference, not a ceiling)",
    }
    if fma is not None:
        header["fp32_fma_peak_gflops"] = (f"{fma['float32']:.1f} (measured: independent FMA chains, {threads} threads; "
                                          "the ceiling of %FMA)")
        header["bf16_fma_peak_gflops"] = (f"{fma['bfloat16']:.1f} (vdpbf16ps)" if fma["bfloat16"] > 0
                                          else "n/a (no AVX-512 BF16)")
    return header


def print_header(header):
    """The header as '# key: value' lines, and a note when the default allocator is in use."""
    for k, v in header.items():
        print(f"# {k}: {v}")
    if not header["mmap_threshold_raised"]:
        print("# note: default glibc allocator; large shapes include page-fault time. For stable ratios also run "
              "under GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295")
    print(flush=True)


def format_table(rows, cols, n_names=2):
    """rows (dicts) as a text table: cols = [(key, format, heading)]; the first
    n_names columns are names (left-aligned), the rest numbers (right-aligned)."""
    cells = [[fmt.format(r[k]) for k, fmt, _ in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, _, h) in enumerate(cols)]

    def line(vals):
        return "  ".join(v.ljust(w) if i < n_names else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    lines = [line([h for _, _, h in cols])]
    return "\n".join(lines + ["-" * len(lines[0])] + [line(c) for c in cells])


def write_csv(path, header, rows):
    """rows (dicts with the same keys) to path, the header as leading '#' lines:
    pandas.read_csv(path, comment="#")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.writelines(f"# {k}: {v}\n" for k, v in header.items())
        writer = csv.writer(f)
        writer.writerow(rows[0])
        writer.writerows([f"{v:.6g}" if isinstance(v, float) else v for v in r.values()] for r in rows)


def busy_warning(labels):
    """The warning for measurements taken while other processes used > 10% of the CPUs, or ''."""
    if not labels:
        return ""
    return (f"WARNING: other processes used > 10% of the CPUs while timing {', '.join(labels)}: "
            "those numbers are not trustworthy; rerun on an idle machine.")


def report(rows, header, out, tag):
    cols = [("shape", "{:14s}", "shape"), ("direction", "{:8s}", "dir"),
            ("ours_ms", "{:9.3f}", "ours ms"), ("loop_ms", "{:9.3f}", "loop ms"),
            ("recipe_ms", "{:9.3f}", "recipe ms"), ("native_ms", "{:9.3f}", "native ms"),
            ("ours_gflops", "{:8.1f}", "GFLOP/s"), ("ours_pct_peak", "{:6.1f}", "%FMA"),
            ("native_pct_peak", "{:6.1f}", "%FMA native"),
            ("ours_pct_roofline", "{:6.1f}", "%roof"), ("bound", "{:7s}", "bound"),
            ("speedup_vs_loop", "{:7.2f}", "x loop"), ("speedup_vs_recipe", "{:8.2f}", "x recipe"),
            ("speedup_vs_native", "{:8.2f}", "x native"),
            ("ours_peak_mib", "{:8.1f}", "ours MiB"), ("recipe_peak_mib", "{:8.1f}", "rcp MiB"),
            ("other_cpu_pct", "{:5.0f}", "busy%")]
    print(format_table(rows, cols))
    print("x <alt> = alt time / our time (> 1: ours is faster). %FMA = GFLOP/s over the measured fp32 FMA peak "
          "(header). %roof = the roofline's least time (the FMA peak, or the measured memory bandwidth for the "
          "bytes each operand and result must move once where they exceed the L3; bound: which) over our time. "
          "MiB = peak extra memory seen by torch.profiler (output included). busy% = CPU share other "
          "processes took while timing.")
    warning = busy_warning([r["shape"] + " " + r["direction"] for r in rows if r["other_cpu_pct"] > 10])
    if warning:
        print(warning)

    csv_path, png_path = out / f"cpu_{tag}.csv", out / f"cpu_{tag}.png"
    write_csv(csv_path, header, rows)
    plotted = plot(rows, header, png_path)
    print(f"wrote {csv_path}" + (f"\nwrote {png_path}" if plotted else ""))


def pyplot_or_none(path):
    """matplotlib's pyplot (Agg), or None, said, where matplotlib is not
    installed (the lent GPU machine has none): the tables and CSVs still come."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib not installed: no {Path(path).name}", flush=True)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(rows, header, path):
    """The bar chart of rows to path; False where matplotlib is missing."""
    plt = pyplot_or_none(path)
    if plt is None:
        return False

    names = list(dict.fromkeys(r["shape"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(names)) * 2, 5), sharey=True)
    width = 0.27
    for ax, direction in zip(axes, ("fwd", "fwd+bwd")):
        by_shape = {r["shape"]: r for r in rows if r["direction"] == direction}
        for i, alt in enumerate(IMPLS[1:]):
            vals = [by_shape[n][f"speedup_vs_{alt}"] for n in names]
            xs = [j + (i - 1) * width for j in range(len(names))]
            bars = ax.bar(xs, vals, width, label=f"vs {alt}")
            ax.bar_label(bars, labels=[f"{v:.2g}" for v in vals], fontsize=7)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{direction}: alternative time / row_conv1d time (> 1: row_conv1d faster)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{header['cpu']}, {header['threads']} threads, torch {header['torch']}, "
                 f"mmap_threshold raised: {header['mmap_threshold_raised']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--shapes", help="comma-separated names: " + ",".join(s.name for s in SHAPES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="dtype of every implementation's inputs (default float32)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--tag", help="file name part: cpu_<tag>.csv/.png "
                                 "(default: <quick|full|custom>_<tuned|default>malloc)")
    p.add_argument("--min-time", type=float, help="seconds of timed calls per measurement "
                                                   "(default 0.5; 0.25 with --quick)")
    args = p.parse_args()

    by_name = {s.name: s for s in SHAPES}
    if args.shapes:
        unknown = [n for n in args.shapes.split(",") if n not in by_name]
        if unknown:
            p.error(f"unknown shape(s) {unknown}; known: {list(by_name)}")
        specs, mode = [by_name[n] for n in args.shapes.split(",")], "custom"
    elif args.quick:
        specs, mode = [by_name[n] for n in QUICK], "quick"
    else:
        specs, mode = SHAPES, "full"

    min_time = args.min_time or (0.25 if mode == "quick" else 0.5)
    torch.set_num_threads(args.threads)
    fma = fma_peaks()
    header = machine_header(args.threads, matmul_peak_gflops(), min_time, fma)
    header["dtype"] = args.dtype
    tag = args.tag or (f"{mode}{'' if args.dtype == 'float32' else '_' + args.dtype}_"
                       f"{'tuned' if header['mmap_threshold_raised'] else 'default'}malloc")
    # the ceiling of what ours runs: fp64 FMAs for float64, vdpbf16ps for
    # bfloat16 where the CPU has it, else fp32 FMAs (the half types' compute)
    if args.dtype == "float64":
        peak = torch.ops.rowconv.cpu_fma_peak_gflops("float64")
    else:
        peak = fma["bfloat16"] if args.dtype == "bfloat16" and fma["bfloat16"] > 0 else fma["float32"]
    header["pct_fma_ceiling_gflops"] = f"{peak:.1f} (the %FMA columns' ceiling for {args.dtype})"
    roof = (torch.ops.rowconv.cpu_memory_bandwidth_gbps(), llc_bytes())
    header["memory_bandwidth_gbps"] = (f"{roof[0]:.1f} (measured: a copy of 2 x 4 L3 with non-temporal stores, "
                                       f"{args.threads} threads, read + written bytes; the roofline's memory side "
                                       f"for operands past the {roof[1] >> 20} MiB L3)")
    print_header(header)

    rows = []
    for s in specs:
        rows += bench_shape(s, min_time, peak, DTYPES[args.dtype], roof)
    header["page_faults_in_timed_calls"] = (f"{TIMED_PAGE_FAULTS['faults']} in {TIMED_PAGE_FAULTS['calls']} "
                                            "timed calls of every implementation (after each measurement's "
                                            "warm-up; 0: no timed call paid for fresh pages)")
    print(f"# page_faults_in_timed_calls: {header['page_faults_in_timed_calls']}")
    header["line_round_trip_at_end"] = describe_line_round_trip()
    print(f"# line_round_trip_at_end: {header['line_round_trip_at_end']}")
    report(rows, header, args.out, tag)


if __name__ == "__main__":
    main()
