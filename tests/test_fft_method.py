"""The FFT method (method='fft', and the ops' fft_block argument) against stock
PyTorch: the float64 (complex128) reference from grouped F.conv1d on the same
values, norm-wise (conftest.fft_error_bound: an FFT's error is relative to the
norms of its operands, not to each element). Every argument of the contract,
every dtype, short forced transforms (many overlap-save blocks), autograd to
second order, torch.func, torch.compile, opcheck, 'auto' and choose_method,
RowConv1d(method='fft'), and 'direct' as today's kernels bit for bit.

Tests built on make_inputs run on the GPU with `pytest --device cuda`; the
reference is computed on the CPU from the same values."""
import dataclasses
import importlib.util
import pathlib
import random
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import func, nn

import rowconv_ext
from conftest import (Conv, assert_every_derivative, assert_fft_matches_reference, fft_error_bound, fft_scales,
                      make_inputs, normwise_error, our_results, reference_results, wide)
from rowconv_ext.method import cost_plan

ops = torch.ops.rowconv
ref = rowconv_ext.reference_row_conv1d
ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128]


def _span(cfg):
    return cfg.dilation * (cfg.K - 1) + 1


def _conv_args(cfg):
    left, right = cfg.pads()
    return (cfg.stride, left, right, cfg.dilation, cfg.groups)


def _planned_block(cfg, x, w):
    """The transform length method='fft' runs (the cost model's, per call)."""
    return cost_plan(x, w, *_conv_args(cfg), fft_block=-2)["block"]


def _edge_configs():
    """Hand-picked: each argument form of the contract, and the lengths that
    stress overlap-save framing."""
    return [
        Conv(2, 2, 2, 33, 3, 17, dilation=2),  # W exactly the dilated span: Wout = 1
        Conv(2, 4, 3, 997, 6, 31, stride=2, padding=(5, 9), dilation=3, groups=2),  # W prime
        Conv(1, 2, 2, 8191, 2, 2, padding="same"),  # long prime W, short even K
        Conv(2, 3, 2, 101, 6, 1, stride=3, groups=3),  # K = 1, depthwise multiplier 2
        Conv(1, 2, 2, 1201, 4, 300, padding="causal", groups=2),  # K = 300, Cin_g 1 != Cout_g 2
        Conv(2, 3, 3, 509, 3, 64, padding="same", dilation=2, groups=3),  # depthwise, even K
        Conv(2, 6, 2, 300, 4, 9, groups=2, bias=False),  # Cin_g 3 != Cout_g 2
        Conv(2, 3, 2, 211, 3, 7, stride=3, padding="valid", dilation=3),
        Conv(2, 2, 1, 50, 2, 5, padding=(20, 3)),  # padding wider than the kernel
        Conv(3, 2, 2, 1, 3, 4, padding=(3, 0)),  # W = 1: all but one tap in the padding
        Conv(2, 6, 2, 77, 12, 4, stride=2, padding=(3, 1), dilation=2, groups=3, bias=False),
        Conv(0, 3, 2, 40, 4, 5, padding=2),  # empty batch
    ]


def _random_configs(n, seed):
    """Seeded random draws over every argument: groups 1-3, Cin_g and Cout_g
    1-3 / 1-4, K up to 300, stride and dilation 1-3, every padding form,
    widths from the span up to a few thousand (primes among them). Problems
    of more than 2e7 multiply-adds are redrawn (the float64 reference's time)."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        groups = rng.choice([1, 2, 3])
        cin_g, cout_g = rng.choice([1, 2, 3]), rng.choice([1, 2, 4])
        K = rng.choice([1, 2, 3, 8, 31, 64, 127, 255, 300, rng.randint(1, 300)])
        dilation, stride = rng.choice([1, 2, 3]), rng.choice([1, 2, 3])
        padding = rng.choice([0, rng.randint(0, K), (rng.randint(0, K), rng.randint(0, 2 * K)), "valid", "same",
                              "causal"])
        if padding == "same":
            stride = 1
        cfg = Conv(B=rng.choice([1, 2, 3]), Cin=groups * cin_g, H=rng.choice([1, 2, 3]), W=1, Cout=groups * cout_g,
                   K=K, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=rng.random() < 0.7)
        left, right = cfg.pads()
        min_w = max(1, _span(cfg) - left - right)
        cfg = dataclasses.replace(cfg, W=min_w + rng.choice([0, 1, 2, rng.randint(3, 100), 1009, 2003]))
        if cfg.B * cfg.H * cfg.Cout * cin_g * K * cfg.out_width <= 2e7:
            out.append(cfg)
    return out


FFT_SWEEP = _edge_configs() + _random_configs(40, seed=2024)
LAYOUTS = ["contiguous", "permuted", "sliced"]


def _seed(cfg):
    return zlib.crc32(str(cfg).encode())


# Forward and the three gradients over the sweep; forced transform lengths.

@pytest.mark.parametrize("cfg", FFT_SWEEP, ids=str)
def test_fft_sweep_forward_and_gradients(cfg):
    layout = LAYOUTS[_seed(cfg) % 3]  # every layout over the sweep (views of any strides)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=_seed(cfg), layout=layout)
    assert_fft_matches_reference(cfg, our_results(cfg, x, w, b, gy, method="fft"), reference_results(cfg, x, w, b, gy),
                                 torch.float32, _planned_block(cfg, x, w), fft_scales(cfg, x, w, gy))


def _forced_blocks(cfg):
    """Transform lengths that make many blocks, a partial last block and
    blocks at both edges: the span itself (one output per block), span + 1,
    a 5-smooth length a little above the span, and one block holding
    everything (every op's whole signal)."""
    span = _span(cfg)
    left, right = cfg.pads()
    smooth = next(n for n in range(span + 2, 4 * span + 8) if _is_5_smooth(n))
    return sorted({span, span + 1, smooth, cfg.W + left + right + span})


def _is_5_smooth(n):
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _ops_results(cfg, x, w, b, gy, block):
    """The three ops with fft_block=block, and grad_bias: what autograd would
    return (complex: conjugated operands, PyTorch's convention)."""
    conv = _conv_args(cfg)
    y = ops.row_conv1d(x, w, b, *conv, block)
    gx = ops.row_conv1d_grad_input(gy, w.conj(), cfg.W, *conv, block)
    gw = ops.row_conv1d_grad_weight(gy, x.conj(), cfg.K, *conv, block)
    return (y, gx, gw) + ((ops.row_conv1d_grad_bias(gy),) if b is not None else ())


# Small spans and widths: n = span with W ~ 2000 is 2000 transforms per signal.
FORCED = [c for c in FFT_SWEEP if c.B > 0 and _span(c) <= 400]


@pytest.mark.parametrize("cfg", FORCED, ids=str)
def test_forced_transform_lengths_every_op(cfg):
    dtype = ALL_DTYPES[_seed(cfg) % len(ALL_DTYPES)]
    x, w, b, gy = make_inputs(cfg, dtype, seed=_seed(cfg) + 1)
    expect = reference_results(cfg, x, w, b, gy)
    scales = fft_scales(cfg, x, w, gy)
    for block in _forced_blocks(cfg):
        assert_fft_matches_reference(cfg, _ops_results(cfg, x, w, b, gy, block), expect, dtype, block, scales)


def test_forced_lengths_cover_many_and_single_blocks():
    """The forced lengths mean what their names say for a config with a
    kernel of K = 300: one output per block, then one block for the whole."""
    cfg = next(c for c in FORCED if c.K == 300 and c.dilation == 1)
    blocks = _forced_blocks(cfg)
    assert blocks[0] == _span(cfg) == 300 and blocks[1] == 301 and _is_5_smooth(blocks[2])
    assert blocks[-1] >= cfg.W + sum(cfg.pads()) + _span(cfg) - 1  # >= any op's outputs + span - 1


# The CPU's channel mix (csrc/cpu/spectrum_mix_kernel.h): register blocks of
# 4 x 2 sums (AVX-512; 2 x 2 below) with remainders in both, frequencies in
# chunks of 64 with a last part past the whole vectors, columns by batch
# entry (one circular block) or by block (many). The sweep's channels (Cin_g
# <= 3, Cout_g <= 4) fill one block at most.
MIX_CONFIGS = [
    Conv(3, 10, 2, 300, 18, 33, padding="same", groups=2),                  # Cin_g 5, Cout_g 9
    Conv(2, 7, 1, 500, 13, 65, stride=2, padding=(10, 3), dilation=2),      # 7 x 13, uneven padding
    Conv(1, 17, 2, 260, 6, 40, padding="causal", bias=False),               # Cin_g 17, Cout_g 6
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", MIX_CONFIGS, ids=str)
def test_channel_mix_of_many_channels_every_op(cfg, dtype, restore_threads):
    x, w, b, gy = make_inputs(cfg, dtype, seed=_seed(cfg))
    expect = reference_results(cfg, x, w, b, gy)
    scales = fft_scales(cfg, x, w, gy)
    left, right = cfg.pads()
    for block in (_span(cfg) + 7, cfg.W + left + right + _span(cfg)):  # many blocks; one circular block
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            ours = _ops_results(cfg, x, w, b, gy, block)
            assert_fft_matches_reference(cfg, ours, expect, dtype, block, scales)
            results.append(ours)
        for other in results[1:]:  # the same bits at every thread count
            for a, c in zip(results[0], other):
                assert torch.equal(a, c)


def test_expanded_inputs():
    """Zero strides (x and grad_out expanded over the batch, as autograd hands
    over y.sum()'s gradient) read as their values."""
    cfg = Conv(3, 4, 2, 150, 8, 40, padding=(7, 2), groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float64, seed=5)
    x, gy = x[:1].expand_as(x), gy[:1, :, :1].expand_as(gy)
    assert x.stride(0) == 0 and gy.stride(0) == gy.stride(2) == 0
    expect = reference_results(cfg, x, w, b, gy)
    scales = fft_scales(cfg, x, w, gy)
    assert_fft_matches_reference(cfg, our_results(cfg, x, w, b, gy, method="fft"), expect, torch.float64,
                                 _planned_block(cfg, x, w), scales)
    assert_fft_matches_reference(cfg, _ops_results(cfg, x, w, b, gy, 41), expect, torch.float64, 41, scales)


def test_inputs_are_never_written():
    cfg = Conv(2, 4, 3, 90, 4, 20, padding="same", groups=2)
    x, w, b, gy = make_inputs(cfg, torch.complex64, seed=6, layout="sliced")
    before = [t.clone() for t in (x, w, b, gy)]
    leaves = [t.requires_grad_() for t in (x, w, b)]
    y = rowconv_ext.row_conv1d(*leaves, **cfg.kwargs, method="fft")
    torch.autograd.grad(y, leaves, gy, create_graph=True)
    for t, t0 in zip((x, w, b, gy), before):
        assert torch.equal(t, t0)


def test_the_norm_wise_check_rejects_a_less_accurate_result():
    """The tolerance has teeth: the same problem computed in float32 (then
    widened) is far outside the float64 bound, bfloat16 outside float32's,
    and a result shifted by one output is outside every bound."""
    cfg = Conv(2, 4, 2, 500, 4, 50, padding="same", groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float64, seed=7)
    y_ref = reference_results(cfg, x, w, b, gy)[0]
    n = _planned_block(cfg, x, w)
    scale = fft_scales(cfg, x, w, gy)[0]

    def err_over_bound(y, dtype):
        err, ref_norm = normwise_error(y, y_ref)
        return err / fft_error_bound(dtype, n, scale, ref_norm)

    y64 = rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, method="fft")
    y32 = rowconv_ext.row_conv1d(*(t.float() for t in (x, w, b)), **cfg.kwargs, method="fft")
    y16 = rowconv_ext.row_conv1d(*(t.bfloat16() for t in (x, w, b)), **cfg.kwargs, method="fft")
    assert err_over_bound(y64, torch.float64) < 1
    assert err_over_bound(y32, torch.float64) > 100
    assert err_over_bound(y32, torch.float32) < 1
    assert err_over_bound(y16.float(), torch.float32) > 100
    assert err_over_bound(torch.roll(y64, 1, dims=-1), torch.float64) > 1e10


# Every dtype.

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", FFT_SWEEP[1::4], ids=str)
def test_every_dtype_forward_and_gradients(cfg, dtype):
    """float16 and bfloat16 are computed in float32 and rounded once at the
    end: fft_error_bound's rounding term is their tolerance."""
    x, w, b, gy = make_inputs(cfg, dtype, seed=_seed(cfg) + 2)
    assert_fft_matches_reference(cfg, our_results(cfg, x, w, b, gy, method="fft"), reference_results(cfg, x, w, b, gy),
                                 dtype, _planned_block(cfg, x, w), fft_scales(cfg, x, w, gy))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_complex_forward_equals_per_row_complex_conv1d(dtype):
    """Independent of the reference's layout: one complex F.conv1d per row."""
    cfg = Conv(2, 4, 3, 211, 6, 33, stride=2, padding=(4, 9), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=8)
    left, right = cfg.pads()
    xw, ww, bw = (wide(t.cpu()) for t in (x, w, b))
    rows = [F.conv1d(F.pad(xw[:, :, h], (left, right)), ww[h], bw[h], cfg.stride, 0, cfg.dilation, cfg.groups)
            for h in range(cfg.H)]
    err, ref_norm = normwise_error(rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, method="fft"), torch.stack(rows, 2))
    assert err <= fft_error_bound(dtype, _planned_block(cfg, x, w), fft_scales(cfg, x, w, gy)[0], ref_norm)


@pytest.mark.parametrize("block", [-2, 25])
def test_conjugate_and_negative_views_are_read_as_their_values(block):
    """Lazy conjugates (x.conj(): a bit, not new values) and real views with a
    negative bit (z.conj().imag) in every operand of every op."""
    cfg = Conv(2, 4, 3, 111, 6, 13, stride=2, padding=(3, 1), dilation=2, groups=2)  # span 25
    x, w, b, gy = make_inputs(cfg, torch.complex128, seed=19)
    xc, wc, bc, gc = (t.conj() for t in (x, w, b, gy))
    assert xc.is_conj() and x.conj().imag.is_neg()
    xr, wr, br, gr = (t.resolve_conj() for t in (xc, wc, bc, gc))
    scales = fft_scales(cfg, x, w, gy)
    # as reference_results' grads are autograd's (conjugated operands): conj(conj(.)) = the values themselves
    n = block if block > 0 else _planned_block(cfg, x, w)
    expect = reference_results(cfg, xr, wr, br, gr)
    assert_fft_matches_reference(cfg, _ops_results(cfg, xc, wc, bc, gc, block), expect, torch.complex128, n, scales)
    xn, wn, gn = x.conj().imag, w.real, gy.conj().imag
    expect = reference_results(cfg, xn.resolve_neg(), wn, None, gn.resolve_neg())
    assert_fft_matches_reference(cfg, _ops_results(cfg, xn, wn, None, gn, block), expect, torch.float64, n,
                                 fft_scales(cfg, xn, wn, gn))


def test_cpu_autocast_runs_the_fft_in_bfloat16():
    """Autocast casts the inputs (as conv1d does) and keeps the method."""
    cfg = Conv(2, 4, 3, 300, 6, 40, padding="same", groups=2)
    x, w, b, _ = make_inputs(cfg, torch.float32, seed=20, device="cpu")
    leaves = [t.requires_grad_() for t in (x, w, b)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = rowconv_ext.row_conv1d(*leaves, **cfg.kwargs, method="fft")
    assert y.dtype == torch.bfloat16
    low = [t.detach().bfloat16() for t in (x, w, b)]
    assert torch.equal(y, ops.row_conv1d(*low, *_conv_args(cfg), _planned_block(cfg, x, w)))
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(21)).bfloat16()
    expect = reference_results(cfg, *low, gy)
    err, ref_norm = normwise_error(y, expect[0])
    assert err <= fft_error_bound(torch.bfloat16, _planned_block(cfg, x, w), fft_scales(cfg, low[0], low[1], gy)[0], ref_norm)
    grads = torch.autograd.grad(y, leaves, gy)
    assert all(g.dtype == torch.float32 for g in grads)  # back to the float32 leaves


def test_backward_of_fft_runs_the_fft_ops():
    """method='fft' reaches the backward ops (fft_block travels through
    autograd): the gradients are bit for bit those of the grad ops called
    with fft_block=-2, and not those of the direct kernels."""
    cfg = Conv(2, 4, 2, 120, 6, 15, stride=2, padding=(3, 4), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=9)
    _, gx, gw, _ = our_results(cfg, x, w, b, gy, method="fft")
    conv = _conv_args(cfg)
    for got, op, args in ((gx, ops.row_conv1d_grad_input, (gy, w, cfg.W)),
                          (gw, ops.row_conv1d_grad_weight, (gy, x, cfg.K))):
        assert torch.equal(got, op(*args, *conv, -2))
        assert not torch.equal(got, op(*args, *conv, 0))


# Autograd, torch.func, torch.compile, opcheck.

GRAD_CONFIGS = [
    Conv(2, 4, 2, 13, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2),
    Conv(1, 3, 2, 12, 3, 4, padding="same", groups=3, bias=False),
    Conv(2, 2, 1, 9, 2, 3, padding="causal", dilation=3),
    Conv(1, 2, 2, 7, 4, 7, stride=3, padding=3),
]


def _fft_fn(cfg, block=None):
    """row_conv1d with method='fft', or the op with a forced fft_block."""
    if block is None:
        return lambda *a: rowconv_ext.row_conv1d(*a, **cfg.kwargs, method="fft")
    return lambda x, w, b=None: ops.row_conv1d(x, w, b, *_conv_args(cfg), block)


def _leaves(cfg, dtype, seed=0):
    x, w, b, _ = make_inputs(cfg, dtype, seed=seed)
    return tuple(t.requires_grad_() for t in (x, w) + ((b,) if b is not None else ()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=str)
def test_gradcheck_and_gradgradcheck_fast(cfg, dtype):
    """Every mode: forward AD, reverse AD, batched grads, forward-over-reverse.
    fast_mode projects the Jacobian on random vectors; the float64 FFT's
    1e-15 errors are far inside gradcheck's finite-difference tolerance, so
    a wrong derivative (not rounding) is what fails. With a forced short
    transform too, so that the derivative ops run many blocks."""
    leaves = _leaves(cfg, dtype)
    for block in (None, _span(cfg) + 1):
        f = _fft_fn(cfg, block)
        assert_every_derivative(f, leaves, fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_gradcheck_full_jacobian(dtype):
    cfg = Conv(1, 2, 2, 8, 2, 3, stride=2, padding=(1, 2), dilation=2, groups=2)
    leaves = _leaves(cfg, dtype, seed=1)
    f = _fft_fn(cfg)
    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, leaves, check_fwd_over_rev=True)


@pytest.mark.parametrize("block", [-2, 5, 6])
def test_backward_ops_gradcheck(block):
    """The grad-input and grad-weight ops with the FFT on their own (their
    derivatives are the other ops with the same fft_block)."""
    cfg = GRAD_CONFIGS[0]  # span 5
    x, w, _, gy = make_inputs(cfg, torch.float64, seed=2)
    x, w, gy = (t.requires_grad_() for t in (x, w, gy))
    conv = _conv_args(cfg)
    for fn, args in [(lambda g, w: ops.row_conv1d_grad_input(g, w, cfg.W, *conv, block), (gy, w)),
                     (lambda g, x: ops.row_conv1d_grad_weight(g, x, cfg.K, *conv, block), (gy, x))]:
        assert torch.autograd.gradcheck(fn, args, check_forward_ad=True, check_batched_grad=True, fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, args, check_fwd_over_rev=True, fast_mode=True)


def _assert_normwise_close(ours, theirs, tol):
    for o, t in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
        assert o.shape == t.shape
        err, norm = normwise_error(o, wide(t.detach().cpu()))
        assert err <= tol * norm, (err, norm)


# float64 throughout, results compared relative to their own norm. One op's
# FFT error is at most fft_tolerance(float64, n) ~ 5e-15 (n <= 64 here) times
# its operands' norm scale, about 3x the result's norm for random inputs; the
# derivatives compose up to three ops: about 5e-14. Measured: at most 2e-15
# (transforms, compile, module). A float32-accurate or wrong term is >= 1e-8.
FUNC_TOL = 1e-13


def test_torch_func_transforms_match_the_reference():
    cfg = Conv(2, 4, 3, 21, 6, 5, stride=2, padding=(1, 2), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float64, seed=10)
    gen = torch.Generator().manual_seed(11)
    tangents = tuple(torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for t in (x, w, b))
    xs = torch.randn((3,) + x.shape, generator=gen, dtype=x.dtype).to(x.device)
    ws = torch.randn((3,) + w.shape, generator=gen, dtype=w.dtype).to(w.device)
    ours, theirs = _fft_fn(cfg), lambda x, w, b: ref(x, w, b, **cfg.kwargs)

    def loss(out):  # not quadratic: second derivatives involve every op
        return lambda *a: (out(*a) ** 3).sum()

    args = (x, w, b)
    for name, transform in (
        ("grad", lambda f: func.grad(loss(f), argnums=(0, 1, 2))(*args)),
        ("vjp", lambda f: func.vjp(f, *args)[1](gy)),
        ("jvp", lambda f: func.jvp(f, args, tangents)[1]),
        ("jacrev", lambda f: func.jacrev(f, argnums=1)(*args)),
        ("jacfwd", lambda f: func.jacfwd(f, argnums=0)(*args)),
        ("hessian", lambda f: func.hessian(loss(f), argnums=1)(*args)),
        ("jacfwd(jacrev)", lambda f: func.jacfwd(func.jacrev(loss(f), argnums=0), argnums=1)(*args)),
        ("vmap over the batch", lambda f: func.vmap(lambda x: f(x, w, b))(xs)),
        ("vmap over the weights", lambda f: func.vmap(lambda w: f(x, w, b))(ws)),
        ("vmap of grad", lambda f: func.vmap(func.grad(lambda w, x: loss(f)(x[None], w, b)), in_dims=(None, 0))(
            w, x)),
    ):
        try:
            _assert_normwise_close(transform(ours), transform(theirs), FUNC_TOL)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def test_vmap_uses_the_batching_rules(no_vmap_fallback):
    """vmap with method='fft' folds into one op call (no per-sample loop)."""
    cfg = GRAD_CONFIGS[0]
    x, w, b, _ = make_inputs(cfg, torch.complex128, seed=12)
    ws = torch.stack([w, 2 * w.conj(), w.flip(-1)])
    y = func.vmap(lambda w: _fft_fn(cfg)(x, w, b))(ws)
    _assert_normwise_close(y, torch.stack([ref(x, wi, b, **cfg.kwargs) for wi in ws]), FUNC_TOL)


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_forward_and_backward(dynamic):
    """fullgraph compile of method='fft', forward and backward. dynamic=True:
    the second call has another width, so the transform length is planned
    again from the symbolic shapes at run time."""
    torch._dynamo.reset()
    kwargs = dict(stride=2, padding="causal", dilation=2, groups=2)

    def loss(fn, **method):
        return lambda x, w, b: torch.tanh(fn(x, w, b, **kwargs, **method)).square().sum()

    compiled = torch.compile(loss(rowconv_ext.row_conv1d, method="fft"), fullgraph=True, dynamic=dynamic)
    for seed, W in ((0, 60), (1, 143 if dynamic else 60)):
        x, w, b, _ = make_inputs(Conv(2, 4, 3, W, 6, 9, **kwargs), torch.float64, seed=20 + seed)
        leaves_c = [t.clone().requires_grad_() for t in (x, w, b)]
        leaves_r = [wide(t.cpu()).requires_grad_() for t in (x, w, b)]
        loss_c, loss_r = compiled(*leaves_c), loss(ref)(*leaves_r)
        _assert_normwise_close([loss_c] + list(torch.autograd.grad(loss_c, leaves_c)),
                               [loss_r] + list(torch.autograd.grad(loss_r, leaves_r)), FUNC_TOL)


@pytest.mark.parametrize("block", [7, -1, -2])
def test_opcheck_every_op(block):
    """Schema, fake kernels, autograd registration and AOT dispatch (dynamic
    shapes included) with the FFT: a forced length (7 > span 5) and the
    per-call resolutions of 'auto' and 'fft'."""
    cfg = GRAD_CONFIGS[0]
    x, w, b, gy = make_inputs(cfg, torch.float64, seed=13)
    x, w, b, gy = (t.requires_grad_() for t in (x, w, b, gy))
    conv = _conv_args(cfg)
    for op, args in [(ops.row_conv1d.default, (x, w, b) + conv + (block,)),
                     (ops.row_conv1d_grad_input.default, (gy, w, cfg.W) + conv + (block,)),
                     (ops.row_conv1d_grad_weight.default, (gy, x, cfg.K) + conv + (block,))]:
        torch.library.opcheck(op, args)


# 'auto' and choose_method.

def _load_bench_cpu():
    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cpu.py"
    spec = importlib.util.spec_from_file_location("bench_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _empty_problem(B, Cin, H, W, Cout, K, groups=1, device="cpu"):
    """Shapes for the cost model only (its choice does not read the values)."""
    return torch.empty(B, Cin, H, W, device=device), torch.empty(H, Cout, Cin // groups, K, device=device)


def test_choose_method_is_direct_on_the_cpu_benchmark_shapes():
    """The CPU constants (csrc/fft_plan.cpp): the short kernels of the CPU
    benchmark are the direct kernels' ground."""
    shapes = _load_bench_cpu().SHAPES
    assert len(shapes) >= 10
    for s in shapes:
        x, w = _empty_problem(s.B, s.Cin, s.H, s.W, s.Cout, s.K, s.groups)
        kw = dict(stride=s.stride, padding=s.padding, dilation=s.dilation, groups=s.groups)
        assert rowconv_ext.choose_method(x, w, **kw) == "direct", s


@pytest.mark.parametrize("shape", [(4, 8, 8, 16384, 8, 255), (1, 1, 256, 8192, 1, 1024)], ids=str)
def test_choose_method_is_fft_on_long_kernels(shape):
    x, w = _empty_problem(*shape)
    assert rowconv_ext.choose_method(x, w) == "fft"
    assert rowconv_ext.choose_method(x, w, padding="same") == "fft"


# A problem on which the CPU constants pick each method: the FFT one is about
# the smallest (4e8 direct multiply-adds against the FFT's 2 ms call cost).
AUTO_PROBLEMS = [
    (Conv(2, 4, 3, 300, 6, 9, stride=2, padding=(4, 4), dilation=2, groups=2), "direct"),
    (Conv(2, 4, 4, 4096, 4, 1023, padding="causal"), "fft"),
]


@pytest.mark.parametrize("cfg,choice", AUTO_PROBLEMS, ids=str)
def test_auto_runs_what_choose_method_says_and_matches_the_reference(cfg, choice):
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=14, device="cpu")
    assert rowconv_ext.choose_method(x, w, **cfg.kwargs) == choice
    plan = cost_plan(x, w, *_conv_args(cfg))
    assert choice == ("fft" if plan["fft_seconds"] < plan["direct_seconds"] else "direct")
    ours = our_results(cfg, x, w, b, gy, method="auto")
    # bit for bit what the chosen method runs (the same transform length)
    assert torch.equal(ours[0], rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, method=choice))
    assert torch.equal(ours[0], ops.row_conv1d(x, w, b, *_conv_args(cfg), plan["block"] if choice == "fft" else 0))
    # the gradients decide for themselves (each backward op's own cost):
    # within the FFT bound either way (the direct kernels are well inside it)
    assert_fft_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), torch.float32, plan["block"],
                                 fft_scales(cfg, x, w, gy))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
@pytest.mark.parametrize("cfg", FFT_SWEEP[::4] + [AUTO_PROBLEMS[1][0]], ids=str)
def test_choose_method_equals_the_cost_plan_and_what_auto_runs(cfg, dtype):
    """For the dtype too: complex direct kernels do four real products."""
    x, w, b, _ = make_inputs(cfg, dtype, seed=15)
    plan = cost_plan(x, w, *_conv_args(cfg))
    choice = rowconv_ext.choose_method(x, w, **cfg.kwargs)
    assert choice == ("fft" if plan["fft_seconds"] < plan["direct_seconds"] else "direct")
    assert torch.equal(rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs),
                       rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, method=choice))


def test_choose_method_follows_the_cost_constants(restore_cost_constants):
    """The choice is the cost model's: with the FFT made free, 'auto' on a
    small problem runs the FFT (and still gives the reference's numbers)."""
    cfg = Conv(2, 4, 3, 300, 6, 9, padding=(4, 4), groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=16, device="cpu")
    assert rowconv_ext.choose_method(x, w, **cfg.kwargs) == "direct"
    constants = rowconv_ext.method.cost_constants("cpu")
    rowconv_ext.method.set_cost_constants(constants | dict(fft_point=0, fft_mix=0, fft_pass=0, fft_call=0))
    assert rowconv_ext.choose_method(x, w, **cfg.kwargs) == "fft"
    ours = our_results(cfg, x, w, b, gy, method="auto")
    assert torch.equal(ours[0], rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, method="fft"))
    assert_fft_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), torch.float32,
                                 _planned_block(cfg, x, w), fft_scales(cfg, x, w, gy))


@pytest.fixture
def restore_cost_constants():
    saved = {d: rowconv_ext.method.cost_constants(d) for d in ("cpu", "cuda")}
    yield
    for device, constants in saved.items():
        rowconv_ext.method.set_cost_constants(constants, device)


# RowConv1d(method=...).

@pytest.mark.parametrize("padding_mode,padding", [("zeros", (6, 2)), ("reflect", 5), ("circular", "causal")])
def test_module_fft_equals_per_row_conv1d(padding_mode, padding):
    torch.manual_seed(17)
    rows, cin, cout, K = 3, 4, 6, 11
    module = rowconv_ext.RowConv1d(rows, cin, cout, K, stride=2 if padding != "causal" else 1, padding=padding,
                                   dilation=2, groups=2, padding_mode=padding_mode, dtype=torch.float64,
                                   method="fft")
    assert module.method == "fft"
    convs = [nn.Conv1d(cin, cout, K, module.stride, 0, module.dilation, module.groups, dtype=torch.float64)
             for _ in range(rows)]
    with torch.no_grad():
        for h, conv in enumerate(convs):
            conv.weight.copy_(module.weight[h])
            conv.bias.copy_(module.bias[h])
    left, right = module._pads
    mode = "constant" if padding_mode == "zeros" else padding_mode
    x = torch.randn(2, cin, rows, 61, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y = module(x)
    y_ref = torch.stack([conv(F.pad(x_ref[:, :, h], (left, right), mode=mode)) for h, conv in enumerate(convs)], 2)
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, module.weight, module.bias], gy)
    g = torch.autograd.grad(y_ref, [x_ref] + [c.weight for c in convs] + [c.bias for c in convs], gy)
    grads_ref = [g[0], torch.stack(g[1:1 + rows]), torch.stack(g[1 + rows:])]
    _assert_normwise_close([y] + list(grads), [y_ref] + grads_ref, FUNC_TOL)
    # and it is the FFT that ran: the direct kernels round differently
    module.method = "direct"
    assert not torch.equal(y, module(x))


def test_module_repr_names_the_method():
    assert "method='fft'" in repr(rowconv_ext.RowConv1d(2, 3, 3, 5, method="fft"))
    assert "method='direct'" in repr(rowconv_ext.RowConv1d(2, 3, 3, 5, method="direct"))
    assert "method" not in repr(rowconv_ext.RowConv1d(2, 3, 3, 5))


# 'direct' is today's kernels, bit for bit.

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", FFT_SWEEP[:6:2] + [FFT_SWEEP[10]], ids=str)
def test_direct_is_the_default_op_bit_for_bit(cfg, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=18)
    conv = _conv_args(cfg)
    y, gx, gw = our_results(cfg, x, w, b, gy, method="direct")[:3]
    assert torch.equal(y, ops.row_conv1d(x, w, b, *conv))
    assert torch.equal(y, ops.row_conv1d(x, w, b, *conv, 0))
    assert torch.equal(gx, ops.row_conv1d_grad_input(gy, w.conj(), cfg.W, *conv))
    assert torch.equal(gw, ops.row_conv1d_grad_weight(gy, x.conj(), cfg.K, *conv))
