"""gradcheck and gradgradcheck (float64, finite differences: the stock
PyTorch ground truth for derivatives) over stride, dilation, padding, groups
and bias variants, for the public function and for every op on its own."""
import pytest
import torch

import rowconv_ext
from conftest import Conv, make_inputs

ops = torch.ops.rowconv

CONFIGS = [
    Conv(2, 2, 2, 9, 3, 3),
    Conv(2, 4, 3, 11, 4, 3, stride=2, padding=(1, 2), dilation=2, groups=2),
    Conv(1, 3, 2, 10, 3, 4, padding="same", groups=3, bias=False),
    Conv(2, 2, 1, 8, 2, 3, padding="causal", dilation=3),
    Conv(1, 2, 2, 7, 4, 2, stride=3, padding=2),
    Conv(2, 1, 3, 5, 1, 5, padding="valid"),  # Wout = 1
]


def _leaves(cfg, seed=0):
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=seed)
    return tuple(t.requires_grad_() for t in (x, w) + ((b,) if b is not None else ()))


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_gradcheck_and_gradgradcheck(cfg):
    leaves = _leaves(cfg)

    def f(x, w, b=None):
        return rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs)

    assert torch.autograd.gradcheck(f, leaves)
    assert torch.autograd.gradgradcheck(f, leaves)


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=str)
def test_backward_ops_are_differentiable(cfg):
    """The backward ops themselves pass gradcheck and gradgradcheck, so
    derivatives of any order are right."""
    x, w = _leaves(cfg)[:2]
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    gy = torch.randn(cfg.B, cfg.Cout, cfg.H, cfg.out_width, dtype=torch.float64, requires_grad=True)
    for fn, args in [
        (lambda g, w: ops.row_conv1d_grad_input(g, w, cfg.W, *conv), (gy, w)),
        (lambda g, x: ops.row_conv1d_grad_weight(g, x, cfg.K, *conv), (gy, x)),
        (ops.row_conv1d_grad_bias, (gy,)),
    ]:
        assert torch.autograd.gradcheck(fn, args)
        assert torch.autograd.gradgradcheck(fn, args)


def test_third_order_matches_reference():
    cfg = Conv(1, 2, 2, 8, 2, 3, stride=2, padding=1, dilation=2)
    x, w, b = _leaves(cfg, seed=2)

    def third(fn):
        y = fn(x, w, b, **cfg.kwargs)
        (gx,) = torch.autograd.grad((y ** 3).sum(), x, create_graph=True)
        (gw,) = torch.autograd.grad((gx ** 2).sum(), w, create_graph=True)
        return torch.autograd.grad(gw.sum(), (x, w, b))

    for ours, ref in zip(third(rowconv_ext.row_conv1d), third(rowconv_ext.reference_row_conv1d)):
        torch.testing.assert_close(ours, ref)


def test_grads_only_where_required():
    cfg = Conv(2, 2, 2, 9, 3, 3)
    x, w, b, _ = make_inputs(cfg, torch.float32)
    w.requires_grad_()
    rowconv_ext.row_conv1d(x, w, b).sum().backward()
    assert w.grad is not None and x.grad is None and b.grad is None
