"""Complex64/complex128 against stock PyTorch: F.conv1d on complex tensors
(one call per row, independent of our layout), conjugate and negative views,
torch.func and vmap, opcheck and torch.compile. gradcheck in complex128 (every
mode, every op) is in test_func_transforms.py with the real one."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import func

import rowconv_ext
from conftest import SWEEP, Conv, assert_matches_reference, make_inputs, our_results, reference_results

ops = torch.ops.rowconv
COMPLEX = [torch.complex64, torch.complex128]

CONFIGS = [
    Conv(2, 4, 3, 11, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2),
    Conv(1, 3, 2, 10, 3, 4, padding="same", groups=3, bias=False),
    Conv(2, 2, 1, 8, 2, 3, padding="causal", dilation=3),
]


def _per_row_conv1d(x, w, b, cfg):
    """One complex F.conv1d per row, with the padding applied by F.pad."""
    left, right = cfg.pads()
    rows = [F.conv1d(F.pad(x[:, :, h], (left, right)), w[h], None if b is None else b[h], cfg.stride, 0,
                     cfg.dilation, cfg.groups) for h in range(x.shape[2])]
    return torch.stack(rows, dim=2)


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
@pytest.mark.parametrize("cfg", SWEEP[::3], ids=str)
def test_sweep_forward_and_gradients(cfg, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=71)
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_forward_equals_per_row_complex_conv1d(cfg, dtype):
    x, w, b, _ = make_inputs(cfg, dtype, seed=72)
    torch.testing.assert_close(rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs), _per_row_conv1d(x, w, b, cfg))


@pytest.mark.parametrize("layout", ["permuted", "sliced"])
def test_strided_complex_views(layout):
    cfg = CONFIGS[0]
    x, w, b, gy = make_inputs(cfg, torch.complex64, seed=73, layout=layout)
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy),
                             torch.complex64)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=str)
def test_decode_step_with_a_complex_weight_in_every_memory_order(order):
    """The decode step builds the complex weight's real 2x2 blocks as the
    forward does (which once failed to view them for some memory orders;
    the forward and gradients in every order and dtype:
    test_layouts_and_threads.py): T steps from a zero state equal the
    causal forward of per-row complex F.conv1d."""
    cfg = CONFIGS[0]
    x, w, b, _ = make_inputs(cfg, torch.complex64, seed=79)
    stored = w.permute(order).contiguous().permute([order.index(i) for i in range(4)])
    assert torch.equal(stored, w)
    T, d = 4, cfg.dilation
    state = torch.zeros(cfg.B, cfg.Cin, cfg.H, d * (cfg.K - 1), dtype=torch.complex64)
    got = rowconv_ext.row_conv1d_update(x[..., :T], state, stored, b, dilation=d, groups=cfg.groups)
    causal = Conv(cfg.B, cfg.Cin, cfg.H, T, cfg.Cout, cfg.K, padding="causal", dilation=d, groups=cfg.groups)
    torch.testing.assert_close(got, _per_row_conv1d(x[..., :T], w, b, causal))


def test_conjugate_and_negative_views_are_read_as_their_values():
    """x.conj() and w.conj() are lazy (a bit, not new values); z.conj().imag is
    a real tensor with a negative bit. Each must be read as what it means."""
    cfg = CONFIGS[0]
    x, w, b, gy = make_inputs(cfg, torch.complex128, seed=74)
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    xc, wc, bc, gc = x.conj(), w.conj(), b.conj(), gy.conj()
    assert xc.is_conj() and wc.is_conj()
    resolved = [t.resolve_conj() for t in (xc, wc, bc, gc)]
    torch.testing.assert_close(ops.row_conv1d(xc, wc, bc, *conv), ops.row_conv1d(*resolved[:3], *conv))
    torch.testing.assert_close(_per_row_conv1d(*resolved[:3], cfg), ops.row_conv1d(xc, wc, bc, *conv))
    torch.testing.assert_close(ops.row_conv1d_grad_input(gc, wc, cfg.W, *conv),
                               ops.row_conv1d_grad_input(resolved[3], resolved[1], cfg.W, *conv))
    torch.testing.assert_close(ops.row_conv1d_grad_weight(gc, xc, cfg.K, *conv),
                               ops.row_conv1d_grad_weight(resolved[3], resolved[0], cfg.K, *conv))
    torch.testing.assert_close(ops.row_conv1d_grad_weight(gy, xc, cfg.K, *conv),
                               ops.row_conv1d_grad_weight(gy, resolved[0], cfg.K, *conv))
    torch.testing.assert_close(ops.row_conv1d_grad_bias(gc), gy.sum((0, 3)).t().conj())
    # a real view with a negative bit
    xn = x.conj().imag
    assert xn.is_neg()
    wr = w.real.contiguous()
    torch.testing.assert_close(rowconv_ext.row_conv1d(xn, wr, None, **cfg.kwargs),
                               _per_row_conv1d(xn.resolve_neg(), wr, None, cfg))


def test_torch_func_and_vmap_complex():
    cfg = CONFIGS[0]
    x, w, b, gy = make_inputs(cfg, torch.complex128, seed=77)
    ref = rowconv_ext.reference_row_conv1d

    def loss(fn):  # a real loss of complex parameters, as in complex-valued networks
        return lambda w: (fn(x, w, b, **cfg.kwargs).abs() ** 2).sum()

    torch.testing.assert_close(func.grad(loss(rowconv_ext.row_conv1d))(w), func.grad(loss(ref))(w))
    tw = torch.randn_like(w)
    torch.testing.assert_close(func.jvp(lambda w: rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs), (w,), (tw,))[1],
                               func.jvp(lambda w: ref(x, w, b, **cfg.kwargs), (w,), (tw,))[1])
    xs = torch.randn(3, *x.shape, dtype=x.dtype)
    torch.testing.assert_close(func.vmap(lambda x: rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs))(xs),
                               torch.stack([ref(xi, w, b, **cfg.kwargs) for xi in xs]))


def test_opcheck_complex():
    cfg = CONFIGS[0]
    x, w, b, gy = make_inputs(cfg, torch.complex64, seed=78)
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    x, w, b, gy = (t.requires_grad_() for t in (x, w, b, gy))
    for op, args in [(ops.row_conv1d.default, (x, w, b) + conv),
                     (ops.row_conv1d_grad_input.default, (gy, w, cfg.W) + conv),
                     (ops.row_conv1d_grad_weight.default, (gy, x, cfg.K) + conv),
                     (ops.row_conv1d_grad_bias.default, (gy,))]:
        torch.library.opcheck(op, args)


@pytest.mark.slow
def test_compile_fullgraph_complex():
    torch._dynamo.reset()
    cfg = CONFIGS[0]
    x, w, b, _ = make_inputs(cfg, torch.complex64, seed=79)

    def step(fn):
        return lambda x, w, b: (fn(x, w, b, **cfg.kwargs).abs() ** 2).sum()

    leaves_c = [t.clone().requires_grad_() for t in (x, w, b)]
    leaves_r = [t.clone().requires_grad_() for t in (x, w, b)]
    loss_c = torch.compile(step(rowconv_ext.row_conv1d), fullgraph=True)(*leaves_c)
    loss_r = step(rowconv_ext.reference_row_conv1d)(*leaves_r)
    torch.testing.assert_close(loss_c, loss_r)
    for gc, gr in zip(torch.autograd.grad(loss_c, leaves_c), torch.autograd.grad(loss_r, leaves_r)):
        torch.testing.assert_close(gc, gr)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning")  # torch's, making the input
def test_complex_half_is_a_clear_error():
    x = torch.randn(1, 2, 1, 5, dtype=torch.complex64).to(torch.complex32)
    with pytest.raises(RuntimeError, match=r"x must have dtype float32, .*complex128, got ComplexHalf"):
        rowconv_ext.row_conv1d(x, x.new_zeros(1, 2, 2, 3))
