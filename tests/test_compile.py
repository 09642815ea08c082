"""The ops under torch.library.opcheck (schema, fake kernels, autograd
registration, AOT dispatch with dynamic shapes) and torch.compile(fullgraph=True)."""
import pytest
import torch

import rowconv_ext
from conftest import Conv, make_inputs

ops = torch.ops.rowconv

OPCHECK_CONFIGS = [
    Conv(2, 4, 3, 17, 6, 3, stride=2, padding=(2, 1), dilation=2, groups=2),
    Conv(1, 3, 2, 12, 3, 4, padding="same", groups=3, bias=False),
    Conv(3, 2, 1, 9, 2, 5, padding="causal"),
]


def _op_calls(cfg, dtype=torch.float32):
    x, w, b, gy = make_inputs(cfg, dtype, seed=11)
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    x, w, gy = (t.requires_grad_() for t in (x, w, gy))
    if b is not None:
        b.requires_grad_()
    return [
        (ops.row_conv1d.default, (x, w, b) + conv),
        (ops.row_conv1d_grad_input.default, (gy, w, cfg.W) + conv),
        (ops.row_conv1d_grad_weight.default, (gy, x, cfg.K) + conv),
        (ops.row_conv1d_grad_bias.default, (gy,)),
    ]


@pytest.mark.parametrize("cfg", OPCHECK_CONFIGS, ids=str)
def test_opcheck_every_op(cfg):
    for op, args in _op_calls(cfg):
        torch.library.opcheck(op, args)


def test_opcheck_bfloat16():
    for op, args in _op_calls(OPCHECK_CONFIGS[0], torch.bfloat16):
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_forward_and_backward(dynamic):
    torch._dynamo.reset()
    cfg = Conv(2, 4, 3, 40, 6, 5, stride=2, padding="causal", dilation=2, groups=2)

    def step(x, w, b):
        y = rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs)
        return torch.tanh(y).square().sum()

    compiled = torch.compile(step, fullgraph=True, dynamic=dynamic)
    for seed in (0, 1):  # a second call runs the cached graph
        x, w, b, _ = make_inputs(cfg, torch.float64, seed=seed)
        leaves_c = [t.clone().requires_grad_() for t in (x, w, b)]
        leaves_r = [t.clone().requires_grad_() for t in (x, w, b)]
        loss_c = compiled(*leaves_c)
        loss_r = rowconv_ext.reference_row_conv1d(*leaves_r, **cfg.kwargs).tanh().square().sum()
        torch.testing.assert_close(loss_c, loss_r)
        for gc, gr in zip(torch.autograd.grad(loss_c, leaves_c), torch.autograd.grad(loss_r, leaves_r)):
            torch.testing.assert_close(gc, gr)


def test_compile_reports_bad_input_with_the_contract_message():
    torch._dynamo.reset()
    compiled = torch.compile(rowconv_ext.row_conv1d, fullgraph=True)
    with pytest.raises(Exception, match=r"x must be a 4-D \(B, Cin, H, W\) tensor, got a 3-D tensor"):
        compiled(torch.randn(2, 4, 10), torch.randn(3, 4, 4, 3))
