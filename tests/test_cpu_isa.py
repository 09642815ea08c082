"""The CPU micro-kernels exist in AVX-512, AVX2 and baseline builds, chosen at
run time (ROWCONV_CPU_ISA forces a lower one). The selection happens once per
process, so each build runs the sweep in a subprocess."""
import itertools
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import rowconv_ext  # noqa: F401
from conftest import last_level_cache_bytes

TESTS = pathlib.Path(__file__).resolve().parent
ORDER = ["baseline", "avx2", "avx512"]
BEST = torch.ops.rowconv.cpu_isa()


def _run(code, isa):
    env = dict(os.environ, ROWCONV_CPU_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=TESTS)


def test_default_is_the_best_the_cpu_runs():
    assert BEST in ORDER
    assert _run("import torch, rowconv_ext; print(torch.ops.rowconv.cpu_isa())", "").stdout.strip() == BEST


# The tilings and fetch rules follow the caches (Zen 3: a 512 KiB L2, the
# products' fetches ahead off; Zen 4: a 32 KiB L1d, fetches into L2; Zen 5:
# 48 KiB, into L1), so that a CI machine of one kind runs none of the
# others'. So each lower instruction set's sweep runs with another machine's
# L1d and L2 (ROWCONV_CPU_CACHES): the first with the other L2 (the fetch
# rule flipped), the next with the other L1d; and an L3 of 2 MiB, so that the
# sweep's shapes of 1.5 MB or more take the paths of operands past the
# caches (outputs streamed, operands fetched ahead).
MACHINE_CACHES = {"zen3": "l1d=32K,l2=512K", "zen4": "l1d=32K,l2=1M", "zen5": "l1d=48K,l2=1M"}
SWEEP_L3 = "l3=2M"


def _cache_bytes(entries):
    """[l1d, l2, l3...] in bytes of a ROWCONV_CPU_CACHES value"""
    return [int(e.split("=")[1][:-1]) * {"K": 2**10, "M": 2**20}[e[-1]] for e in entries.split(",")]


def _other_machines():
    here_l1d, here_l2, _ = torch.ops.rowconv.cpu_cache_bytes()
    fetches = lambda l2: l2 >= 2**20  # noqa: E731  (products_fetch_ahead's rule)
    into_l1 = lambda l1d: l1d >= 48 * 2**10  # noqa: E731  (fetches_into_l2's rule)
    other_l2 = [m for m, c in MACHINE_CACHES.items() if fetches(_cache_bytes(c)[1]) != fetches(here_l2)]
    other_l1d = [m for m, c in MACHINE_CACHES.items()
                 if m not in other_l2 and into_l1(_cache_bytes(c)[0]) != into_l1(here_l1d)]
    return other_l2 + other_l1d


LOWER = [i for i in ORDER if ORDER.index(i) < ORDER.index(BEST)]


@pytest.mark.slow
@pytest.mark.parametrize("isa, machine", list(zip(LOWER, itertools.cycle(_other_machines()))))
def test_lower_instruction_sets_pass_the_sweep_with_other_machines_caches(isa, machine):
    caches = MACHINE_CACHES[machine] + "," + SWEEP_L3
    code = ("import sys, pytest, torch, rowconv_ext; assert torch.ops.rowconv.cpu_isa() == sys.argv[1]; "
            "print(list(torch.ops.rowconv.cpu_cache_bytes()), flush=True); "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_against_pytorch.py', "
            "'test_layouts_and_threads.py', 'test_autograd.py', 'test_streaming_update.py']))")
    env = dict(os.environ, ROWCONV_CPU_ISA=isa, ROWCONV_CPU_CACHES=caches)
    done = subprocess.run([sys.executable, "-c", code, isa], env=env, capture_output=True, text=True, cwd=TESTS)
    assert done.stdout.splitlines()[:1] == [str(_cache_bytes(caches))], done.stdout[:500] + done.stderr[-3000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("value, why", [("l2=1M,l4=8M", "unknown cache 'l4'"), ("l1d=4K", "l1d out of range"),
                                        ("l2:1M", "no '=' in 'l2:1M'"), ("l3=2G", "bad size '2G'")])
def test_bad_cache_sizes_are_a_clear_error(value, why):
    done = subprocess.run([sys.executable, "-c", "import torch, rowconv_ext; torch.ops.rowconv.cpu_cache_bytes()"],
                          env=dict(os.environ, ROWCONV_CPU_CACHES=value), capture_output=True, text=True, cwd=TESTS)
    assert done.returncode != 0
    assert "ROWCONV_CPU_CACHES must be entries like l1d=48K,l2=1M,l3=32M" in done.stderr
    assert f"got '{value}': {why}" in done.stderr


def test_unknown_instruction_set_is_a_clear_error():
    done = _run("import torch, rowconv_ext; torch.ops.rowconv.row_conv1d(torch.randn(1, 1, 1, 4), "
                "torch.randn(1, 1, 1, 2), None, 1, 0, 0, 1, 1)", "sse9")
    assert done.returncode != 0
    assert "ROWCONV_CPU_ISA must be avx512, avx2 or baseline, got 'sse9'" in done.stderr


def _cpu_flags():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_fma_peak_is_measured_for_each_dtype():
    # The benchmarks' ceiling: a positive rate for the float types, and for
    # bfloat16 exactly where the CPU has AVX-512 BF16 (0 elsewhere). Its size
    # is a measurement, not a test: no timing is asserted.
    for dtype in ("float32", "float64"):
        assert torch.ops.rowconv.cpu_fma_peak_gflops(dtype, 0.01) > 0
    bf16 = torch.ops.rowconv.cpu_fma_peak_gflops("bfloat16", 0.01)
    assert (bf16 > 0) == ("avx512_bf16" in _cpu_flags())


def test_memory_bandwidth_is_measured():
    # The roofline's memory side (bench_cpu.py): a positive, finite rate (the
    # op checks its own copy); its size is a measurement, not a test.
    gbps = torch.ops.rowconv.cpu_memory_bandwidth_gbps(0.01)
    assert 0 < gbps < float("inf")


def test_fma_peak_names_a_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be float32, float64 or bfloat16, got 'int8'"):
        torch.ops.rowconv.cpu_fma_peak_gflops("int8", 0.01)


# The bfloat16 forward, gradient of the input and (Cout_g >= 16) gradient of
# the weight at stride 1 run on AVX-512 BF16 (vdpbf16ps, pairs of channels or
# positions summed in float) where the CPU has it and
# the AVX-512 build is in use; elsewhere the float kernels run them and the
# sweeps above cover them.
BF16_PAIRS = BEST == "avx512" and "avx512_bf16" in _cpu_flags()


def _per_row_reference(x, w, b, pad_left, pad_right, dilation, groups):
    # float64 F.conv1d row by row on the bf16 values: exact products, so the
    # only errors left are ours
    rows = [torch.nn.functional.conv1d(torch.nn.functional.pad(x[:, :, h].double(), (pad_left, pad_right)),
                                       w[h].double(), None if b is None else b[h].double(),
                                       dilation=dilation, groups=groups) for h in range(x.shape[2])]
    return torch.stack(rows, 2)


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
@pytest.mark.parametrize("B,Cin,H,W,Cout,K,pad,dilation,groups", [
    (2, 15, 3, 100, 15, 3, 0, 1, 1),    # forum-like
    (2, 64, 2, 300, 64, 5, 2, 1, 1),    # wide: full 8-row strips
    (3, 7, 2, 77, 5, 4, 3, 2, 1),       # odd Cin (a channel without partner), Cout below a strip
    (2, 1, 5, 50, 1, 3, 1, 1, 1),       # depthwise-like, one channel
    (2, 6, 2, 40, 9, 3, 1, 3, 3),       # groups, dilation 3
    (1, 2, 1, 5, 3, 1, 0, 1, 1),        # K = 1, W narrower than a vector
    (2, 33, 2, 2500, 17, 9, 4, 1, 1),   # several tiles a row, 17 = 8 + 4 + 4 + 1 rows
    (2, 5, 2, 101, 16, 3, 1, 2, 1),     # odd Wout (a last pair of one position), Cout_g one vector
    (3, 8, 2, 64, 32, 3, 1, 1, 2),      # groups, Cout_g 16
    (2, 4, 2, 60, 16, 3, 5, 1, 1),      # padding wider than the taps reach (grad-input's t_lo > j0)
    (2, 4, 3, 300, 4, 6, 2, 2, 4),      # depthwise: the forward pairs taps (K even, dilation 2)
    (2, 3, 2, 1100, 6, 5, 2, 1, 3),     # depthwise, two outputs a channel, K odd (last tap with zeros), two tiles
    (3, 2, 2, 70, 2, 9, 8, 3, 2),       # depthwise, K 9, dilation 3, padding past the taps
    (2, 4, 4, 256, 32, 3, 1, 1, 1),     # rows of y 2 KiB apart, 4 strips: blocks in panels
    (1, 32, 4, 256, 4, 3, 1, 1, 1),     # ... of grad_x
])
def test_bfloat16_pairs_match_pytorch(B, Cin, H, W, Cout, K, pad, dilation, groups):
    torch.manual_seed(B * 1000 + Cin * 10 + K)
    # sliced (non-contiguous) input: the kernel reads x's strides
    x = torch.randn(B, Cin, H, W + 3, dtype=torch.bfloat16)[..., 2:-1]
    _check_bfloat16_pairs(x, Cout, K, pad, dilation, groups, other_threads=(1, 3))


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_with_operands_past_the_cache():
    """x and y (grad_out) of the last-level cache's size together: the pair
    kernels fetch each channel's window ahead (fetch_window_ahead), 8
    channels on and past the last channel into the next tile; the values and
    their bits on other thread counts as in the small cases."""
    # rows of several tiles; 12 input and 20 output channels: windows fetched
    # past the last channel into the next tile, grad-weight's pair form
    Cin, H, W, Cout, K = 12, 2, 3000, 20, 3
    B = -(-last_level_cache_bytes() // ((Cin + Cout) * H * W * 2))
    torch.manual_seed(41)
    x = torch.randn(B, Cin, H, W, dtype=torch.bfloat16)
    _check_bfloat16_pairs(x, Cout, K, 1, 1, 1, other_threads=(1,))


def _check_bfloat16_pairs(x, Cout, K, pad, dilation, groups, other_threads):
    """Forward, grad-input and grad-weight of bfloat16 x against float64
    PyTorch, and the same bits on `other_threads`."""
    B, Cin, H, W = x.shape
    w = torch.randn(H, Cout, Cin // groups, K, dtype=torch.bfloat16)
    b = torch.randn(H, Cout, dtype=torch.bfloat16)
    y = rowconv_ext.row_conv1d(x, w, b, padding=pad, dilation=dilation, groups=groups)
    ref = _per_row_reference(x, w, b, pad, pad, dilation, groups)
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    # one rounding to bfloat16 (2^-8 relative) after float sums of R = Cin_g * K
    # pair products (each sum within R * 2^-24 of sum |w x|)
    scale = _per_row_reference(x.abs(), w.abs(), b.abs(), pad, pad, dilation, groups)
    R = Cin // groups * K
    torch.testing.assert_close(y.double(), ref, rtol=2 ** -8, atol=float(scale.max()) * R * 2 ** -23)
    # the gradient of the input (pairs of output channels), against float64 autograd
    go = torch.randn(y.shape, dtype=torch.bfloat16)
    gx = torch.ops.rowconv.row_conv1d_grad_input(go, w, W, 1, pad, pad, dilation, groups)

    def input_grad(xv, wv, gv):
        xv = xv.double().requires_grad_()
        _per_row_reference(xv, wv, None, pad, pad, dilation, groups).backward(gv.double())
        return xv.grad

    R_in = Cout // groups * K
    gx_scale = input_grad(x.abs(), w.abs(), go.abs())
    torch.testing.assert_close(gx.double(), input_grad(x, w, go), rtol=2 ** -8,
                               atol=float(gx_scale.max()) * R_in * 2 ** -23)
    # the gradient of the weight (pairs of positions where Cout_g fills a
    # vector), against float64 autograd: float sums of the B * Wout terms in
    # runs of at most 4096 positions (kFlushTerms), each run's sum then added
    # to the total: within (run + runs) * 2^-24 of sum |go x|
    gw = torch.ops.rowconv.row_conv1d_grad_weight(go, x, K, 1, pad, pad, dilation, groups)
    terms = B * y.shape[-1]
    rounding_steps = min(terms, 4096) + -(-terms // 4096)

    def weight_grad(xv, wv, gv):
        wv = wv.double().requires_grad_()
        _per_row_reference(xv, wv, None, pad, pad, dilation, groups).backward(gv.double())
        return wv.grad

    gw_scale = weight_grad(x.abs(), w.abs(), go.abs())
    torch.testing.assert_close(gw.double(), weight_grad(x, w, go), rtol=2 ** -8,
                               atol=float(gw_scale.max()) * rounding_steps * 2 ** -23)
    # and the same bits on any thread count (each output summed by one work item)
    threads = torch.get_num_threads()
    try:
        for t in other_threads:
            torch.set_num_threads(t)
            assert torch.equal(rowconv_ext.row_conv1d(x, w, b, padding=pad, dilation=dilation, groups=groups), y)
            assert torch.equal(torch.ops.rowconv.row_conv1d_grad_input(go, w, W, 1, pad, pad, dilation, groups), gx)
            assert torch.equal(torch.ops.rowconv.row_conv1d_grad_weight(go, x, K, 1, pad, pad, dilation, groups), gw)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
@pytest.mark.parametrize("Cin,Cout,groups,K,d", [(5, 6, 1, 3, 2), (5, 5, 5, 4, 2), (5, 10, 5, 5, 1)],
                         ids=["channel-pairs", "depthwise-tap-pairs", "depthwise-odd-K"])
def test_bfloat16_pairs_carry_state_nan_and_inf_like_pytorch(Cin, Cout, groups, K, d):
    torch.manual_seed(7)
    B, H, W = 2, 3, 40
    x = torch.randn(B, Cin, H, W, dtype=torch.bfloat16)
    x[0, 1, 2, 10] = float("nan")
    x[1, 4, 0, 20] = float("inf")
    w = torch.randn(H, Cout, Cin // groups, K, dtype=torch.bfloat16)
    state = torch.randn(B, Cin, H, d * (K - 1), dtype=torch.bfloat16)
    state[1, 2, 1, 0] = float("-inf")  # read through the prefix
    y, final = rowconv_ext.row_conv1d(x, w, None, padding="causal", dilation=d, groups=groups,
                                      initial_state=state, return_final_state=True)
    ref = _per_row_reference(torch.cat([state, x], 3), w, None, 0, 0, d, groups)
    # NaN and inf exactly where float64 has them (an inf meets each output
    # once: +-inf there, not flushed or turned into NaN by the rounding)
    assert torch.equal(y.isnan(), ref.isnan())
    assert torch.equal(y.isinf(), ref.isinf())
    finite = ref.isfinite()
    torch.testing.assert_close(y.double()[finite], ref[finite], rtol=2 ** -8, atol=Cin * K * 2 ** -20 * 40)
    assert torch.equal(final, x[..., -d * (K - 1):])


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_gradients_through_the_carried_state():
    torch.manual_seed(11)
    B, Cin, H, W, Cout, K, d = 2, 6, 2, 301, 16, 4, 3
    x = torch.randn(B, Cin, H, W, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(H, Cout, Cin, K, dtype=torch.bfloat16, requires_grad=True)
    state = torch.randn(B, Cin, H, d * (K - 1), dtype=torch.bfloat16, requires_grad=True)
    y = rowconv_ext.row_conv1d(x, w, None, padding="causal", dilation=d, initial_state=state)
    go = torch.randn(y.shape, dtype=torch.bfloat16).transpose(0, 1).contiguous().transpose(0, 1)  # strided
    y.backward(go)
    x64 = x.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    s64 = state.detach().double().requires_grad_()
    _per_row_reference(torch.cat([s64, x64], 3), w64, None, 0, 0, d, 1).backward(go.double())
    # one rounding to bf16 (2^-8 relative) after float sums of R terms, within
    # R * 2^-24 of sum |a b| <= R * max|a| * max|b| (R = Cout * K for the
    # input and the state, B * W for the weight: the state's taps read x too)
    top = float(go.abs().max())
    atol = top * float(w.detach().abs().max()) * (Cout * K) ** 2 * 2 ** -23
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=2 ** -8, atol=atol)
    torch.testing.assert_close(state.grad.double(), s64.grad, rtol=2 ** -8, atol=atol)
    atol_w = top * float(torch.cat([state, x], 3).detach().abs().max()) * (B * W) ** 2 * 2 ** -23
    torch.testing.assert_close(w.grad.double(), w64.grad, rtol=2 ** -8, atol=atol_w)


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_grad_weight_odd_tile_pairs_its_last_position_with_zeros():
    # Wout = 1073: a tile of 1024, then one of 49, whose last pair holds one
    # position and must pair it with zeros on both sides. Just past it lies
    # what the first tile loaded there: x[0, 2, 0, 49], an inf. In float64
    # grad_w[:, :, 2, 0] is +-inf (one inf term); a zero times that inf would
    # make it NaN.
    torch.manual_seed(3)
    B, Cin, H, W, Cout, K = 2, 3, 2, 1075, 16, 3
    x = torch.randn(B, Cin, H, W, dtype=torch.bfloat16)
    x[0, 2, 0, 49] = float("inf")
    go = torch.randn(B, Cout, H, W - K + 1, dtype=torch.bfloat16)
    gw = torch.ops.rowconv.row_conv1d_grad_weight(go, x, K, 1, 0, 0, 1, 1)
    w64 = torch.zeros(H, Cout, Cin, K, dtype=torch.float64, requires_grad=True)
    _per_row_reference(x, w64, None, 0, 0, 1, 1).backward(go.double())
    assert w64.grad[0, :, 2].isinf().all()
    assert torch.equal(gw.isnan(), w64.grad.isnan()) and torch.equal(gw.isinf(), w64.grad.isinf())
    finite = w64.grad.isfinite()
    # float sums of R = B * Wout terms: within R * 2^-24 of sum |go x|
    scale = torch.zeros_like(w64, requires_grad=True)
    x_finite = torch.where(x.isinf(), 0, x)
    _per_row_reference(x_finite.abs(), scale, None, 0, 0, 1, 1).backward(go.double().abs())
    torch.testing.assert_close(gw.double()[finite], w64.grad[finite], rtol=2 ** -8,
                               atol=float(scale.grad.max()) * B * (W - K + 1) * 2 ** -24)


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_run_here_and_read_denormals_as_zero():
    # vdpbf16ps reads bf16 denormals as zero (as oneDNN's bf16 convolution on
    # these CPUs): a denormal input times a large weight gives 0 on the pair
    # path, 2^-30 on the float path. So this both pins the documented
    # semantics and shows that the pair kernels are the ones running.
    tiny, big = 2.0 ** -130, 2.0 ** 100  # a bf16 denormal; their product is a normal float
    x = torch.full((2, 3, 2, 40), tiny, dtype=torch.bfloat16)
    assert float(x[0, 0, 0, 0]) == tiny
    w = torch.full((2, 16, 3, 3), big, dtype=torch.bfloat16)
    go = torch.full((2, 16, 2, 38), tiny, dtype=torch.bfloat16)
    assert (rowconv_ext.row_conv1d(x, w) == 0).all()
    assert (torch.ops.rowconv.row_conv1d_grad_input(go, w, 40, 1, 0, 0, 1, 1) == 0).all()
    assert (torch.ops.rowconv.row_conv1d_grad_weight(go, x.mul(2.0 ** 120), 3, 1, 0, 0, 1, 1) == 0).all()
    # and the forward's pairs of taps (one input channel a group), K even and odd
    for K in (4, 5):
        assert (rowconv_ext.row_conv1d(x, w[:, :6, :1, :1].expand(2, 6, 1, K).contiguous(), groups=3) == 0).all()


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_grad_weight_reads_any_grad_out_layout():
    # grad-weight's pair form moves grad_out's pairs as 32-bit elements where
    # its rows are contiguous, its channel stride even and its start 4-byte
    # aligned, element by element otherwise: both against float64 autograd
    # and the same bits from each (one chain of sums per output either way)
    torch.manual_seed(9)
    B, Cin, H, W, Cout, K, pad = 2, 6, 2, 151, 20, 3, 1  # Wout 151: an odd tile
    x = torch.randn(B, Cin, H, W, dtype=torch.bfloat16)
    go = torch.randn(B, Cout, H, W, dtype=torch.bfloat16)
    go[0, 3, 1, 7] = float("inf")
    go[1, 5, 1, 150] = float("-inf")
    buf = torch.empty(go.numel() + 1, dtype=torch.bfloat16)
    shifted = buf[1:].view(go.shape)  # 2 bytes past a 4-byte boundary
    shifted.copy_(go)
    padded = torch.empty(B, Cout, H, W + 1, dtype=torch.bfloat16)[..., :W]  # another even channel stride
    padded.copy_(go)
    odd = torch.empty(B, Cout, H + 1, W, dtype=torch.bfloat16)[:, :, :H]  # an odd one
    odd.copy_(go)
    assert go.stride(1) % 2 == 0 and padded.stride(1) % 2 == 0 and odd.stride(1) % 2 == 1
    assert go.data_ptr() % 4 == 0 and shifted.data_ptr() % 4 == 2
    gw = torch.ops.rowconv.row_conv1d_grad_weight(go, x, K, 1, pad, pad, 1, 1)
    w64 = torch.zeros(H, Cout, Cin, K, dtype=torch.float64, requires_grad=True)
    _per_row_reference(x, w64, None, pad, pad, 1, 1).backward(go.double())
    finite = w64.grad.isfinite()
    # inf where float64 has one, NaN where an inf meets a padding zero in both
    assert torch.equal(gw.double().isfinite(), finite) and (~finite).any()
    torch.testing.assert_close(gw.double()[~finite], w64.grad[~finite], rtol=0, atol=0, equal_nan=True)
    bound = float(go[go.isfinite()].abs().max()) * float(x.abs().max()) * B * W
    torch.testing.assert_close(gw.double()[finite], w64.grad[finite], rtol=2 ** -8, atol=bound * 2 ** -23)
    for layout in (shifted, padded, odd):
        torch.testing.assert_close(torch.ops.rowconv.row_conv1d_grad_weight(layout, x, K, 1, pad, pad, 1, 1), gw,
                                   rtol=0, atol=0, equal_nan=True)


@pytest.mark.skipif(not BF16_PAIRS, reason="the CPU has no AVX-512 BF16 (the float kernels run bfloat16 here)")
def test_bfloat16_pairs_read_strided_and_expanded_rows():
    # x every other position along W, grad_out an expanded (stride 0) gradient
    # as y.sum().backward() gives: the pair kernels read elements, not rows
    torch.manual_seed(5)
    B, Cin, H, W, Cout, K, pad, d = 2, 5, 2, 70, 16, 4, 2, 2
    x = torch.randn(B, Cin, H, 2 * W, dtype=torch.bfloat16)[..., ::2]
    w = torch.randn(H, Cout, Cin, K, dtype=torch.bfloat16)
    assert x.stride(-1) == 2
    y = rowconv_ext.row_conv1d(x, w, None, padding=pad, dilation=d)
    ref = _per_row_reference(x, w, None, pad, pad, d, 1)
    scale = _per_row_reference(x.abs(), w.abs(), None, pad, pad, d, 1)
    torch.testing.assert_close(y.double(), ref, rtol=2 ** -8, atol=float(scale.max()) * Cin * K * 2 ** -23)
    go = torch.randn(B, Cout, H, 1, dtype=torch.bfloat16).expand(y.shape)
    gx = torch.ops.rowconv.row_conv1d_grad_input(go, w, W, 1, pad, pad, d, 1)
    gw = torch.ops.rowconv.row_conv1d_grad_weight(go, x, K, 1, pad, pad, d, 1)
    x64 = x.double().requires_grad_()
    w64 = w.double().requires_grad_()
    _per_row_reference(x64, w64, None, pad, pad, d, 1).backward(go.double())
    bound = float(go.abs().max()) * max(float(w.abs().max()), float(x.abs().max()))
    torch.testing.assert_close(gx.double(), x64.grad, rtol=2 ** -8, atol=bound * (Cout * K) ** 2 * 2 ** -23)
    torch.testing.assert_close(gw.double(), w64.grad, rtol=2 ** -8, atol=bound * (B * y.shape[-1]) ** 2 * 2 ** -23)


# float16 is read and written by F16C vectors (vcvtph2ps / vcvtps2ph) in the
# AVX-512 and AVX2 builds, by c10's scalar conversion on the baseline: each
# build in its own process, as the selection is made once.
ISAS_HERE = [i for i in ORDER if ORDER.index(i) <= ORDER.index(BEST)]

_FLOAT16_ROUNDING = r"""
import sys, torch, rowconv_ext
assert torch.ops.rowconv.cpu_isa() == sys.argv[1]
torch.manual_seed(11)
special = torch.tensor([0.0, -0.0, 6e-8, -3e-6, 65504.0, -65504.0, float('inf'), float('-inf'), float('nan')])
# lengths around the vectors (16 and 8) and the tiles, values from half
# denormals to past the largest half (inf)
for W in list(range(1, 41)) + [255, 1037]:
    x = (torch.randn(2, 1, 3, W) * torch.logspace(-9, 6, W)).half()
    x[0, 0, 0, :min(W, special.numel())] = special[:W]
    w = (torch.rand(3, 1, 1, 1) + 0.2).half()  # 11-bit factors: x * w is exact in float
    g = (torch.randn(2, 1, 3, W) * torch.logspace(6, -9, W)).half()
    xr = x.clone().requires_grad_()
    y = rowconv_ext.row_conv1d(xr, w)
    y.backward(g)
    # one rounding of an exact float product: PyTorch's float -> half
    want_y = (x.float() * w.float().view(1, 1, 3, 1)).half()
    want_gx = (g.float() * w.float().view(1, 1, 3, 1)).half()
    for got, want in ((y, want_y), (xr.grad, want_gx)):
        assert torch.equal(got.isnan(), want.isnan()), W
        # equal values (a sum from +0 turns -0 into +0, as F.conv1d's does)
        assert torch.equal(got.nan_to_num(0.0).float(), want.nan_to_num(0.0).float()), W
"""


@pytest.mark.parametrize("isa", ISAS_HERE)
def test_float16_reads_and_rounds_like_pytorch(isa):
    # K = 1 and one channel: each output is one product of two halves (exact
    # in float), so ours must equal PyTorch's float -> half rounding bit for
    # bit (nearest even, denormals, overflow to inf, NaN kept), at every
    # length of a vector tail
    done = subprocess.run([sys.executable, "-c", _FLOAT16_ROUNDING, isa], env=dict(os.environ, ROWCONV_CPU_ISA=isa),
                          capture_output=True, text=True, cwd=TESTS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


_FLOAT16_SHAPES = r"""
import sys, torch, rowconv_ext
sys.path.insert(0, '.')
from test_cpu_isa import _per_row_reference
assert torch.ops.rowconv.cpu_isa() == sys.argv[1]
for (B, Cin, H, W, Cout, K, pad, d, groups) in [
        (2, 15, 3, 1100, 15, 3, 1, 1, 1),   # two tiles a row (grad-weight's dot form under AVX-512)
        (2, 6, 2, 333, 40, 5, 2, 2, 2),     # groups, Cout_g 20: grad_out transposed in blocks of 200
        (1, 1, 2, 77, 600, 1, 0, 1, 1),     # Cout_g 600: the element-wise transpose
        (3, 1, 5, 47, 1, 4, 3, 1, 1)]:      # one channel, odd lengths
    torch.manual_seed(B + Cin + W)
    x = torch.randn(B, Cin, H, W + 2).half()[..., 1:-1]  # sliced: the kernels read x's strides
    w = (torch.randn(H, Cout, Cin // groups, K) / (Cin // groups * K) ** 0.5).half()
    b = torch.randn(H, Cout).half()
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    y = rowconv_ext.row_conv1d(xr, wr, br, padding=pad, dilation=d, groups=groups)
    go = torch.randn(y.shape).half()
    y.backward(go)
    x64, w64, b64 = (t.double().requires_grad_() for t in (x, w, b))
    ref = _per_row_reference(x64, w64, b64, pad, pad, d, groups)
    ref.backward(go.double())
    # float sums rounded once to half: 2^-11 relative, plus float's rounding
    # of sums of R terms (R * 2^-24 of sum |terms|, bounded through the |.| problem)
    abs_ref = _per_row_reference(x.abs().double(), w.abs().double(), b.abs().double(), pad, pad, d, groups)
    R = Cin // groups * K
    torch.testing.assert_close(y.double(), ref, rtol=2 ** -10, atol=float(abs_ref.max()) * R * 2 ** -22)
    for got, want, n in ((xr.grad, x64.grad, Cout // groups * K), (wr.grad, w64.grad, B * y.shape[-1]),
                         (br.grad, b64.grad, B * y.shape[-1])):
        scale = float(want.abs().max()) + float(go.abs().max()) * 4
        torch.testing.assert_close(got.double(), want, rtol=2 ** -10, atol=scale * n * 2 ** -22)
    # the same bits on any thread count (each output summed by one work item)
    for threads in (1, 3):
        torch.set_num_threads(threads)
        xt, wt, bt = (t.clone().requires_grad_() for t in (x, w, b))
        yt = rowconv_ext.row_conv1d(xt, wt, bt, padding=pad, dilation=d, groups=groups)
        yt.backward(go)
        for got, want in ((yt, y), (xt.grad, xr.grad), (wt.grad, wr.grad), (bt.grad, br.grad)):
            assert torch.equal(got, want), threads
    torch.set_num_threads(2)
"""


@pytest.mark.parametrize("isa", ISAS_HERE)
def test_float16_matches_pytorch_in_every_direction(isa):
    # forward, grad-input, grad-weight (both forms) and grad-bias against
    # float64 autograd, on the shapes whose float16 reads and writes run
    # through the vector conversions (tails, blocks, tiles)
    done = subprocess.run([sys.executable, "-c", _FLOAT16_SHAPES, isa], env=dict(os.environ, ROWCONV_CPU_ISA=isa),
                          capture_output=True, text=True, cwd=TESTS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
