"""Carried state in the full-sequence op: row_conv1d(..., padding='causal',
initial_state=..., return_final_state=True) and RowConv1d.forward with the
same arguments, against stock PyTorch only: the grouped F.conv1d reference
(reference_row_conv1d) applied with padding 0 to torch.cat([state, x], -1),
which is what a state means. Chunked runs equal one pass, in values and
gradients (through initial_state too), in every mode of differentiation."""
import math
import random

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import func

import rowconv_ext
from conftest import DEVICE, Conv, assert_every_derivative, fft_tolerance, make_tensor, tolerance, wide

ops = torch.ops.rowconv
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128]


def ref_with_state(x, w, b, state, dilation, groups):
    """The causal convolution of x preceded by `state` (zeros for None),
    by stock PyTorch: F.conv1d, padding 0, on the concatenation."""
    S = dilation * (w.shape[-1] - 1)
    if state is None:
        state = x.new_zeros((*x.shape[:3], S))
    return rowconv_ext.reference_row_conv1d(torch.cat([state, x], -1), w, b, 1, 0, dilation, groups)


def ref_final_state(x, state, S):
    full = torch.cat([x.new_zeros((*x.shape[:3], S)) if state is None else state, x], -1)
    return full[..., full.shape[-1] - S:]


def _draw(shape, dtype, seed, layout="contiguous"):
    return make_tensor(shape, dtype, torch.Generator().manual_seed(seed), layout).to(DEVICE)


def _problem(cfg, dtype, seed, layout="contiguous"):
    """x, weight, bias, initial_state of a causal cfg."""
    S = cfg.dilation * (cfg.K - 1)
    x = _draw((cfg.B, cfg.Cin, cfg.H, cfg.W), dtype, seed, layout)
    w = _draw((cfg.H, cfg.Cout, cfg.Cin // cfg.groups, cfg.K), dtype, seed + 1)
    b = _draw((cfg.H, cfg.Cout), dtype, seed + 2) if cfg.bias else None
    s = _draw((cfg.B, cfg.Cin, cfg.H, S), dtype, seed + 3, layout)
    return x, w, b, s


def _chunk_lengths(total, rng, short):
    """Random lengths summing to total, with chunks shorter than `short`
    (the state width) among them where it allows."""
    out = []
    while total > 0:
        n = min(total, rng.choice([1, max(short - 1, 1), short, short + 1, rng.randint(1, 3 * short + 5)]))
        out.append(n)
        total -= n
    return out


# Causal problems: dilation 1 to 4, K 1 to 9, groups, Cin != Cout, depthwise.
CHUNK_CONFIGS = [
    Conv(2, 3, 2, 37, 5, 3, padding="causal"),
    Conv(1, 4, 2, 41, 6, 4, padding="causal", dilation=2, groups=2),
    Conv(2, 3, 1, 50, 3, 5, padding="causal", dilation=3, groups=3, bias=False),  # depthwise
    Conv(1, 2, 3, 45, 4, 9, padding="causal", dilation=4),
    Conv(2, 2, 1, 23, 1, 1, padding="causal"),  # K = 1: no state at all
    Conv(1, 6, 1, 30, 9, 2, padding="causal", groups=3),
    Conv(1, 2, 1, 70, 3, 7, padding="causal", dilation=1),
]


def _chunked_tolerance(dtype, reduction, chunks, ref):
    """(atol, rtol) for a result that chunked runs reach as a sum of up to
    `chunks` partial results, each rounded to dtype (the gradients of the
    weight, the bias, and of inputs whose outputs fall in two chunks): the
    reference's tolerance for `reduction` products (conftest.tolerance) plus
    one rounding to dtype per partial, at most the result's magnitude each.
    Values are computed once per output: chunks = 1 adds nothing."""
    atol, rtol = tolerance(dtype, reduction)
    if chunks > 1:
        out_eps = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}.get(dtype, torch.finfo(
            dtype.to_real() if dtype.is_complex else dtype).eps)
        atol += chunks * out_eps * wide(ref).abs().max().item()
    return atol, rtol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cfg", CHUNK_CONFIGS, ids=str)
def test_chunked_forward_and_backward_equal_one_pass(cfg, dtype):
    """A sequence fed in random chunks (some shorter than the state), each
    chunk's final_state passed on, gives the one-pass outputs and the same
    gradients of x, weight, bias and the first chunk's initial_state."""
    S = cfg.dilation * (cfg.K - 1)
    x, w, b, s0 = _problem(cfg, dtype, seed=len(str(cfg)) + cfg.W)
    gy = _draw((cfg.B, cfg.Cout, cfg.H, cfg.W), dtype, seed=99)
    lengths = _chunk_lengths(cfg.W, random.Random(cfg.W * 7 + cfg.K), max(S, 1))
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, s0) + ((b,) if b is not None else ())]
    xo, wo, so = leaves[:3]
    bo = leaves[3] if b is not None else None
    state, outs, start = so, [], 0
    for n in lengths:
        y, state = rowconv_ext.row_conv1d(xo[..., start:start + n], wo, bo, padding="causal",
                                          dilation=cfg.dilation, groups=cfg.groups, method="direct",
                                          initial_state=state, return_final_state=True)
        outs.append(y)
        start += n
    y_chunked = torch.cat(outs, -1)
    ours = (y_chunked.detach(), state.detach()) + torch.autograd.grad(y_chunked, leaves, gy)

    ref_leaves = [wide(t.detach().cpu()).requires_grad_() for t in (x, w, s0) + ((b,) if b is not None else ())]
    xr, wr, sr = ref_leaves[:3]
    br = ref_leaves[3] if b is not None else None
    y_ref = ref_with_state(xr, wr, br, sr, cfg.dilation, cfg.groups)
    refs = (y_ref.detach(), ref_final_state(xr, sr, S).detach()) + torch.autograd.grad(
        y_ref, ref_leaves, wide(gy.cpu()))

    cin_g, cout_g = cfg.Cin // cfg.groups, cfg.Cout // cfg.groups
    # products per element: output, final state (a copy), grad x, grad w, grad state, grad b
    reductions = (cin_g * cfg.K + 1, 0, cout_g * cfg.K, cfg.B * cfg.W, cout_g * cfg.K, cfg.B * cfg.W)
    # grad x / grad state: an input's outputs fall in at most ceil(S / shortest chunk) + 1 chunks
    spread = math.ceil(S / min(lengths)) + 1 if S else 1
    partials = (1, 1, spread, len(lengths), spread, len(lengths))
    names = ("output", "final_state", "grad_x", "grad_weight", "grad_initial_state", "grad_bias")
    for name, o, r, red, parts in zip(names, ours, refs, reductions, partials):
        assert o.dtype == dtype and o.shape == r.shape, (name, o.dtype, o.shape, r.shape)
        atol, rtol = _chunked_tolerance(dtype, red, parts, r)
        torch.testing.assert_close(wide(o).cpu(), r, atol=atol, rtol=rtol, msg=lambda m: f"{cfg} {name}: {m}")


STATE_CONFIGS = [
    Conv(2, 4, 2, 19, 6, 3, padding="causal", dilation=2, groups=2),
    Conv(1, 3, 3, 5, 3, 4, padding="causal", dilation=3, groups=3),  # W < dilation * (K - 1)
    Conv(2, 2, 1, 64, 3, 9, padding="causal", bias=False),
]


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize("cfg", STATE_CONFIGS, ids=str)
def test_one_call_with_state_matches_the_reference(cfg, layout, method):
    """x and initial_state in any layout (permuted, sliced views), every method."""
    dtype = torch.float64
    S = cfg.dilation * (cfg.K - 1)
    x, w, b, s = _problem(cfg, dtype, seed=5, layout=layout)
    y, final = rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=cfg.dilation, groups=cfg.groups,
                                      method=method, initial_state=s, return_final_state=True)
    y_ref = ref_with_state(x.cpu(), w.cpu(), None if b is None else b.cpu(), s.cpu(), cfg.dilation, cfg.groups)
    if method == "direct":
        torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-12, atol=1e-12)
    else:  # the FFT's error is relative to the norms (conftest); 2^16 points bounds its log factor
        err = (y.cpu() - y_ref).norm().item()
        assert err <= fft_tolerance(dtype, 2**16) * 10 * (x.norm() + s.norm()).item() * w.norm().item()
    assert final.is_contiguous() and final.data_ptr() != x.data_ptr()
    torch.testing.assert_close(final.cpu(), ref_final_state(x.cpu(), s.cpu(), S), rtol=0, atol=0)
    assert y.is_contiguous() and y.shape == (cfg.B, cfg.Cout, cfg.H, cfg.W)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_none_state_is_bitwise_the_plain_causal_result(dtype):
    cfg = Conv(2, 4, 2, 33, 6, 4, padding="causal", dilation=2, groups=2)
    x, w, b, _ = _problem(cfg, dtype, seed=3)
    kw = dict(padding="causal", dilation=cfg.dilation, groups=cfg.groups)
    for method in ("direct", "fft"):
        plain = rowconv_ext.row_conv1d(x, w, b, **kw, method=method)
        assert torch.equal(rowconv_ext.row_conv1d(x, w, b, **kw, method=method, initial_state=None), plain)
        y, final = rowconv_ext.row_conv1d(x, w, b, **kw, method=method, return_final_state=True)
        assert torch.equal(y, plain)
        assert torch.equal(final, x[..., -cfg.dilation * (cfg.K - 1):])
    # a short x with no state: the final state starts with zeros
    short = x[..., :3]
    _, final = rowconv_ext.row_conv1d(short, w, b, **kw, return_final_state=True)
    assert torch.equal(final[..., :3], torch.zeros_like(final[..., :3])) and torch.equal(final[..., 3:], short)


def test_zero_state_equals_no_state():
    cfg = STATE_CONFIGS[0]
    x, w, b, s = _problem(cfg, torch.float64, seed=4)
    kw = dict(padding="causal", dilation=cfg.dilation, groups=cfg.groups)
    torch.testing.assert_close(rowconv_ext.row_conv1d(x, w, b, **kw, initial_state=torch.zeros_like(s)),
                               rowconv_ext.row_conv1d(x, w, b, **kw), rtol=0, atol=0)


GRADCHECK_CONFIGS = [
    Conv(1, 4, 2, 5, 2, 3, padding="causal", dilation=2, groups=2),
    Conv(1, 2, 1, 3, 3, 4, padding="causal"),  # W < dilation * (K - 1)
]


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", GRADCHECK_CONFIGS, ids=str)
def test_gradcheck_through_initial_state(cfg, dtype, method):
    """Reverse and forward mode, batched (vmap over the backward), second
    order, with initial_state a differentiable input like the others; the
    final state too is an output."""
    x, w, b, s = _problem(cfg, dtype, seed=8)
    leaves = tuple(t.requires_grad_() for t in (x, w, b, s))

    def f(x, w, b, s):
        return rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=cfg.dilation, groups=cfg.groups,
                                      method=method, initial_state=s, return_final_state=True)

    # The FFT method's many small ATen calls make the full Jacobian slow:
    # fast_mode (a random projection of it) there, the full one for 'direct'.
    fast = method == "fft"
    assert_every_derivative(f, leaves, fast_mode=fast)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_grad_weight_op_with_prefix_to_second_order(dtype):
    """The grad-weight op with a prefix on its own: forward AD, batched, second
    order (fast_mode: a random projection of the Jacobian, as the sweep in
    test_func_transforms.py; the full one of every input is in
    test_gradcheck_through_initial_state, whose second order runs this op)."""
    cfg = Conv(1, 2, 1, 4, 2, 3, padding="causal", dilation=2)
    x, w, b, s = _problem(cfg, dtype, seed=9)
    gy = _draw((cfg.B, cfg.Cout, cfg.H, cfg.W), dtype, seed=10)
    S = s.shape[-1]
    args = tuple(t.requires_grad_() for t in (gy, x, s))

    def fn(g, x, s):
        return ops.row_conv1d_grad_weight(g, x, cfg.K, 1, S, 0, cfg.dilation, cfg.groups, 0, s)

    assert torch.autograd.gradcheck(fn, args, check_forward_ad=True, check_batched_grad=True,
                                    check_batched_forward_grad=True, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, args, check_fwd_over_rev=True, check_batched_grad=True,
                                        fast_mode=True)


def test_dual_tensors_of_the_state_alone():
    """A tangent on initial_state only (x without one) is carried, not dropped."""
    cfg = STATE_CONFIGS[0]
    x, w, b, s = _problem(cfg, torch.float64, seed=12)
    ts = torch.randn_like(s)
    kw = dict(padding="causal", dilation=cfg.dilation, groups=cfg.groups)
    with fwAD.dual_level():
        y = rowconv_ext.row_conv1d(x, w, b, **kw, initial_state=fwAD.make_dual(s, ts))
        tangent = fwAD.unpack_dual(y).tangent
    expected = ref_with_state(torch.zeros_like(x), w, None, ts, cfg.dilation, cfg.groups)
    assert tangent is not None and tangent.abs().sum() > 0
    torch.testing.assert_close(tangent, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_torch_func_transforms_match_the_reference(method, no_vmap_fallback):
    cfg = Conv(2, 2, 2, 6, 3, 3, padding="causal", dilation=2)
    x, w, b, s = _problem(cfg, torch.float64, seed=21)
    kw = dict(dilation=cfg.dilation, groups=cfg.groups)

    def ours(x, w, b, s):
        y, final = rowconv_ext.row_conv1d(x, w, b, padding="causal", method=method, initial_state=s,
                                          return_final_state=True, **kw)
        return y.sin().sum() + final.square().sum() * 0.5

    def reference(x, w, b, s):
        y = ref_with_state(x, w, b, s, **kw)
        return y.sin().sum() + ref_final_state(x, s, s.shape[-1]).square().sum() * 0.5

    args = (x, w, b, s)
    tangents = tuple(torch.randn_like(t) for t in args)
    tol = dict(rtol=1e-8, atol=1e-8) if method == "fft" else dict(rtol=1e-10, atol=1e-10)
    for transform in (
        lambda f: func.grad(f, argnums=(0, 1, 2, 3))(*args),
        lambda f: func.jvp(f, args, tangents)[1],
        lambda f: func.jacrev(func.grad(f, argnums=3), argnums=3)(*args),  # the Hessian of the state
        lambda f: func.jacfwd(f, argnums=(0, 3))(*args),
        lambda f: func.hessian(f, argnums=3)(*args),
    ):
        torch.testing.assert_close(transform(ours), transform(reference), **tol)
    # vmap over x and the state together, over the state alone, and over the weights
    xs, ss, ws = (torch.randn(3, *t.shape, dtype=t.dtype, device=t.device) for t in (x, s, w))

    def y_of(fn_is_ours):
        def f(x, w, s):
            if fn_is_ours:
                return rowconv_ext.row_conv1d(x, w, b, padding="causal", method=method, initial_state=s, **kw)
            return ref_with_state(x, w, b, s, **kw)
        return f

    for in_dims, vargs in (((0, None, 0), (xs, w, ss)), ((None, None, 0), (x, w, ss)),
                           ((0, None, None), (xs, w, s)), ((None, 0, 0), (x, ws, ss))):
        torch.testing.assert_close(func.vmap(y_of(True), in_dims)(*vargs), func.vmap(y_of(False), in_dims)(*vargs),
                                   **tol)

    # and with the final state: both outputs of the op behind return_final_state, vmapped
    def with_state(fn_is_ours):
        def f(x, w, s):
            if fn_is_ours:
                return rowconv_ext.row_conv1d(x, w, b, padding="causal", method=method, initial_state=s,
                                              return_final_state=True, **kw)
            return ref_with_state(x, w, b, s, **kw), ref_final_state(x, s, s.shape[-1])
        return f

    for in_dims, vargs in (((0, None, 0), (xs, w, ss)), ((None, 0, None), (x, ws, s))):
        torch.testing.assert_close(func.vmap(with_state(True), in_dims)(*vargs),
                                   func.vmap(with_state(False), in_dims)(*vargs), **tol)


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_chunked_forward_and_backward(dynamic):
    torch._dynamo.reset()
    cfg = Conv(2, 4, 2, 24, 6, 3, padding="causal", dilation=2, groups=2)

    def chunked(x, w, b, s):
        y1, s1 = rowconv_ext.row_conv1d(x[..., :10], w, b, padding="causal", dilation=2, groups=2,
                                        initial_state=s, return_final_state=True)
        y2, s2 = rowconv_ext.row_conv1d(x[..., 10:], w, b, padding="causal", dilation=2, groups=2,
                                        initial_state=s1, return_final_state=True)
        return torch.cat([y1, y2], -1).tanh().square().sum() + s2.sum()

    compiled = torch.compile(chunked, fullgraph=True, dynamic=dynamic)
    for seed in (0, 1):
        x, w, b, s = _problem(cfg, torch.float64, seed=seed)
        leaves_c = [t.clone().requires_grad_() for t in (x, w, b, s)]
        leaves_r = [t.clone().requires_grad_() for t in (x, w, b, s)]
        loss_c = compiled(*leaves_c)
        xr, wr, br, sr = leaves_r
        loss_r = (ref_with_state(xr, wr, br, sr, 2, 2).tanh().square().sum()
                  + ref_final_state(xr, sr, sr.shape[-1]).sum())
        torch.testing.assert_close(loss_c, loss_r)
        for gc, gr in zip(torch.autograd.grad(loss_c, leaves_c), torch.autograd.grad(loss_r, leaves_r)):
            torch.testing.assert_close(gc, gr)


def test_chunks_under_autocast_keep_the_state_in_the_input_dtype():
    """Under torch.autocast (bfloat16 on the CPU, as conv1d) the outputs are
    the bfloat16 convolution of the cast inputs, the final state keeps x's
    float32 (so it chains as the next initial_state), and gradients flow back
    to the float32 leaves through both."""
    cfg = Conv(2, 4, 3, 20, 6, 3, padding="causal", dilation=2, groups=2)
    x, w, b, s = _problem(cfg, torch.float32, seed=34)
    leaves = [t.clone().requires_grad_() for t in (x, w, b, s)]
    xl, wl, bl, sl = leaves
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        y1, s1 = rowconv_ext.row_conv1d(xl[..., :7], wl, bl, padding="causal", dilation=2, groups=2,
                                        initial_state=sl, return_final_state=True)
        y2, s2 = rowconv_ext.row_conv1d(xl[..., 7:], wl, bl, padding="causal", dilation=2, groups=2,
                                        initial_state=s1, return_final_state=True)
    assert y1.dtype == y2.dtype == torch.bfloat16 and s1.dtype == s2.dtype == torch.float32
    cast = [t.detach().to(torch.bfloat16) for t in (x, w, b, s)]
    y_ref = ref_with_state(*cast, dilation=2, groups=2)
    # bfloat16 results of bfloat16 operands: the stored rounding of the output
    # dominates (float32 accumulation over Cin/groups * K = 6 terms)
    torch.testing.assert_close(torch.cat([y1, y2], -1).float(), y_ref.float(), rtol=2**-7, atol=2**-7)
    torch.testing.assert_close(s2, ref_final_state(x, s, s.shape[-1]), rtol=0, atol=0)
    gy = _draw(y_ref.shape, torch.float32, seed=35)
    loss = (torch.cat([y1, y2], -1).float() * gy).sum() + s2.square().sum()
    grads = torch.autograd.grad(loss, leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (x, w, b, s)]
    xr, wr, br, sr = ref_leaves
    ref_loss = (ref_with_state(xr, wr, br, sr, 2, 2) * gy).sum() + ref_final_state(xr, sr, sr.shape[-1]).square().sum()
    for g, g_ref in zip(grads, torch.autograd.grad(ref_loss, ref_leaves)):
        assert g.dtype == torch.float32
        # bfloat16 operands of the backward: relative to the gradient's norm
        assert (g - g_ref).norm() <= 2**-6 * g_ref.norm()


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_opcheck_with_the_prefix_argument(dtype):
    cfg = Conv(2, 4, 2, 9, 6, 3, padding="causal", dilation=2, groups=2)
    x, w, b, s = _problem(cfg, dtype, seed=30)
    gy = _draw((cfg.B, cfg.Cout, cfg.H, cfg.W), dtype, seed=31)
    for t in (x, w, b, s, gy):
        t.requires_grad_()
    conv = (1, s.shape[-1], 0, cfg.dilation, cfg.groups, 0)
    torch.library.opcheck(ops.row_conv1d.default, (x, w, b) + conv + (s,))
    torch.library.opcheck(ops.row_conv1d_grad_weight.default, (gy, x, cfg.K) + conv + (s,))
    # the op behind return_final_state, with a state and without one
    torch.library.opcheck(ops.row_conv1d_with_final_state.default, (x, w, b) + conv + (s,))
    torch.library.opcheck(ops.row_conv1d_with_final_state.default, (x, w, b) + conv)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize("W", [2500, 3, 1], ids=lambda w: f"W{w}")
@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
def test_final_state_is_the_exact_tail_at_any_thread_count(W, layout, dtype, with_state, restore_threads):
    """The final state is a copy: bitwise the last S inputs of state ++ x,
    written by the CPU kernel's item of each row's last tile (W 2500: three
    tiles a row, rows split between threads), for x narrower than the state
    (W 3 and 1 < S 6), in every layout; and y is the same as without it."""
    cfg = Conv(3, 6, 5, W, 4, 4, padding="causal", dilation=2, groups=2)
    S = cfg.dilation * (cfg.K - 1)
    x, w, b, s = _problem(cfg, dtype, seed=W + 5, layout=layout)
    s = s if with_state else None
    expected = ref_final_state(x, s, S)
    y_plain = rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=2, groups=2, method="direct",
                                     initial_state=s)
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        y, state = rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=2, groups=2, method="direct",
                                          initial_state=s, return_final_state=True)
        assert state.shape == (3, 6, 5, S) and state.dtype == dtype and state.is_contiguous()
        assert torch.equal(state, expected), threads
        assert torch.equal(y, y_plain), threads


def test_with_final_state_op_refuses_a_convolution_that_is_not_causal():
    cfg = Conv(1, 2, 1, 6, 2, 3)
    x, w, b, _ = _problem(cfg, torch.float32, seed=33)
    with pytest.raises(ValueError, match=r"row_conv1d_with_final_state: a causal convolution .* got stride=1, "
                                         r"pad_left=1, pad_right=1, dilation=1, K=3"):
        ops.row_conv1d_with_final_state(x, w, b, 1, 1, 1, 1, 1)
    # a malformed weight is named as such, by row_conv1d's checks
    with pytest.raises(ValueError, match=r"weight must be a 4-D \(H, Cout, Cin / groups, K\) tensor, got a 3-D"):
        rowconv_ext.row_conv1d(x, w[..., 0], b, padding="causal", return_final_state=True)


# Errors: each names the argument, before any kernel runs.
def _error_inputs():
    cfg = Conv(2, 4, 2, 9, 6, 3, padding="causal", dilation=2, groups=2)
    return cfg, _problem(cfg, torch.float32, seed=40)


@pytest.mark.parametrize("case, error, match", [
    ("wide state", ValueError, r"initial_state must have shape \(B, Cin, H, dilation \* \(K - 1\)\) = "
                               r"\[2, 4, 2, 4\], got \[2, 4, 2, 5\]"),
    ("state of another batch", ValueError, r"initial_state must have shape .* got \[1, 4, 2, 4\]"),
    ("3-D state", ValueError, r"initial_state must have shape .* got \[4, 2, 4\]"),
    ("same padding", ValueError, r"need padding='causal' \(left = dilation \* \(K - 1\) = 4, right = 0\), "
                                 r"got padding \(left=2, right=2\)"),
    ("int padding", ValueError, r"need padding='causal'.*got padding \(left=1, right=1\)"),
    ("stride 2", ValueError, r"initial_state and return_final_state need stride=1, got stride=2"),
    ("final state, valid padding", ValueError, r"need padding='causal'"),
    ("float64 state", RuntimeError, r"initial_state must have the same dtype as x \(torch.float32\), "
                                    r"got torch.float64"),
    ("meta state", RuntimeError, r"initial_state must be on the same device as x \(cpu\), got meta"),
    ("list state", ValueError, r"initial_state must be a torch.Tensor, got list"),
])
def test_errors_name_the_argument(case, error, match):
    cfg, (x, w, b, s) = _error_inputs()
    kw = dict(dilation=2, groups=2, padding="causal", initial_state=s)
    if case == "wide state":
        kw["initial_state"] = torch.zeros(2, 4, 2, 5)
    elif case == "state of another batch":
        kw["initial_state"] = s[:1]
    elif case == "3-D state":
        kw["initial_state"] = s[0]
    elif case == "same padding":
        kw["padding"] = "same"
    elif case == "int padding":
        kw["padding"] = 1
    elif case == "stride 2":
        kw["stride"] = 2
    elif case == "final state, valid padding":
        kw.update(padding="valid", initial_state=None, return_final_state=True)
    elif case == "float64 state":
        kw["initial_state"] = s.double()
    elif case == "meta state":
        kw["initial_state"] = s.to("meta")
    elif case == "list state":
        kw["initial_state"] = s.tolist()
    with pytest.raises(error, match=match):
        rowconv_ext.row_conv1d(x.cpu(), w.cpu(), b.cpu(), **kw)


def test_op_level_prefix_errors_come_from_the_checks():
    """The operator itself (torch.ops.rowconv) checks its prefix as well."""
    cfg, (x, w, b, s) = _error_inputs()
    x, w, b, s = (t.cpu() for t in (x, w, b, s))
    with pytest.raises(ValueError, match=r"prefix \(initial_state\) must have shape \(B, Cin, H, dilation \* "
                                         r"\(K - 1\)\) = \[2, 4, 2, 4\], got \[2, 4, 2, 3\]"):
        ops.row_conv1d(x, w, b, 1, 4, 0, 2, 2, 0, s[..., :3])
    with pytest.raises(ValueError, match=r"a prefix \(initial_state\) needs the causal padding .* got padding "
                                         r"\(left=2, right=2\) and stride 1"):
        ops.row_conv1d(x, w, b, 1, 2, 2, 2, 2, 0, s)
    with pytest.raises(RuntimeError, match=r"prefix \(initial_state\) must have the same dtype as x"):
        ops.row_conv1d_grad_weight(torch.zeros(2, 6, 2, 9), x, 3, 1, 4, 0, 2, 2, 0, s.double())


# The module.
@pytest.mark.parametrize("unbatched", [False, True])
def test_module_carries_state_across_chunks(unbatched):
    torch.manual_seed(0)
    m = rowconv_ext.RowConv1d(3, 4, 6, 3, padding="causal", dilation=2, groups=2, dtype=torch.float64).to(DEVICE)
    x = torch.randn(2, 4, 3, 30, dtype=torch.float64, device=DEVICE)
    if unbatched:
        x = x[0]
    full = m(x)
    state, outs = None, []
    for start, stop in ((0, 3), (3, 4), (4, 17), (17, 30)):
        y, state = m(x[..., start:stop], initial_state=state, return_final_state=True)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, -1), full, rtol=1e-12, atol=1e-12)
    assert state.shape == x.shape[:-1] + (4,)
    torch.testing.assert_close(state, x[..., -4:], rtol=0, atol=0)
    # a state given without return_final_state returns the output alone
    y = m(x[..., 17:], initial_state=x[..., 13:17])
    torch.testing.assert_close(y, full[..., 17:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("settings", [dict(padding=1), dict(padding="causal", padding_mode="replicate"),
                                      dict(padding="causal", stride=2)], ids=str)
def test_module_refuses_state_where_it_means_nothing(settings):
    m = rowconv_ext.RowConv1d(2, 2, 2, 3, **settings)
    x = torch.randn(1, 2, 2, 8)
    with pytest.raises(ValueError, match=r"RowConv1d: initial_state and return_final_state need"):
        m(x, return_final_state=True)
    with pytest.raises(ValueError, match=r"RowConv1d: initial_state and return_final_state need"):
        m(x, initial_state=torch.zeros(1, 2, 2, 2))
