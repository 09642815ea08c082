"""Every error case of the contract raises a ValueError or RuntimeError whose
message names the argument and the expected and actual values, before any
kernel runs (the inputs come back untouched)."""
import pytest
import torch

import rowconv_ext

ops = torch.ops.rowconv


def _args(B=2, Cin=4, H=3, W=10, Cout=6, K=3, groups=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, Cin, H, W, generator=g).to(dtype)
    w = torch.randn(H, Cout, Cin // groups, K, generator=g).to(dtype)
    b = torch.randn(H, Cout, generator=g).to(dtype)
    return x, w, b


X, Wt, Bs = _args()

# (description, call, pieces that the message must contain)
CASES = [
    ("x rank", lambda: rowconv_ext.row_conv1d(X[0], Wt), ["x", "4-D", "(B, Cin, H, W)", "3-D", "[4, 3, 10]"]),
    ("weight rank", lambda: rowconv_ext.row_conv1d(X, Wt[0]), ["weight", "4-D", "3-D", "[6, 4, 3]"]),
    ("bias rank", lambda: rowconv_ext.row_conv1d(X, Wt, Bs[0]), ["bias", "2-D", "(H, Cout)", "1-D"]),
    ("weight dtype", lambda: rowconv_ext.row_conv1d(X, Wt.double()), ["weight", "dtype", "Float", "Double"]),
    ("bias dtype", lambda: rowconv_ext.row_conv1d(X, Wt, Bs.half()), ["bias", "dtype", "Float", "Half"]),
    ("integer x", lambda: rowconv_ext.row_conv1d(X.long(), Wt.long()), ["x", "dtype", "float32", "Long"]),
    # A second device on a CPU-only machine: meta (a CUDA pair is tested on GPUs).
    ("device", lambda: rowconv_ext.row_conv1d(X, Wt.to("meta")), ["weight", "device", "cpu", "meta"]),
    ("bias device", lambda: rowconv_ext.row_conv1d(X.to("meta"), Wt.to("meta"), Bs), ["bias", "device", "meta", "cpu"]),
    ("rows", lambda: rowconv_ext.row_conv1d(X, Wt[:2]), ["weight.shape[0]", "rows", "3", "got 2"]),
    ("Cin", lambda: rowconv_ext.row_conv1d(X, _args(Cin=5)[1]), ["weight.shape[2]", "in_channels / groups", "4", "got 5"]),
    ("Cin groups", lambda: rowconv_ext.row_conv1d(X, _args(Cin=4)[1][:, :, :1], groups=3),
     ["in_channels (4)", "divisible by groups (3)"]),
    ("Cout groups", lambda: rowconv_ext.row_conv1d(X, _args(Cout=5)[1][:, :, :2], groups=2),
     ["out_channels (5)", "divisible by groups (2)"]),
    ("bias shape", lambda: rowconv_ext.row_conv1d(X, Wt, Bs[:, :4]), ["bias.shape[1]", "out_channels", "6", "got 4"]),
    ("bias rows", lambda: rowconv_ext.row_conv1d(X, Wt, Bs[:2]), ["bias.shape[0]", "3", "got 2"]),
    ("stride 0", lambda: rowconv_ext.row_conv1d(X, Wt, stride=0), ["stride", "positive", "got 0"]),
    ("stride -1", lambda: rowconv_ext.row_conv1d(X, Wt, stride=-1), ["stride", "positive", "got -1"]),
    ("dilation 0", lambda: rowconv_ext.row_conv1d(X, Wt, dilation=0), ["dilation", "positive", "got 0"]),
    ("groups 0", lambda: rowconv_ext.row_conv1d(X, Wt, groups=0), ["groups", "positive", "got 0"]),
    ("negative padding", lambda: rowconv_ext.row_conv1d(X, Wt, padding=-1), ["padding", "non-negative", "left=-1"]),
    ("negative pair", lambda: rowconv_ext.row_conv1d(X, Wt, padding=(0, -2)), ["padding", "non-negative", "right=-2"]),
    ("too short", lambda: rowconv_ext.row_conv1d(X[..., :4], Wt, dilation=2),
     ["shorter than the dilated kernel", "4 + 0 + 0 = 4", "at least", "= 5"]),
    ("same with stride", lambda: rowconv_ext.row_conv1d(X, Wt, stride=2, padding="same"), ["same", "stride=1", "stride=2"]),
    ("unknown string", lambda: rowconv_ext.row_conv1d(X, Wt, padding="full"), ["padding", "causal", "'full'"]),
    ("padding triple", lambda: rowconv_ext.row_conv1d(X, Wt, padding=(1, 2, 3)), ["padding", "(left, right)", "3 values"]),
    ("float padding", lambda: rowconv_ext.row_conv1d(X, Wt, padding=1.5), ["padding", "int", "1.5"]),
    ("float stride", lambda: rowconv_ext.row_conv1d(X, Wt, stride=2.0), ["stride", "int", "2.0"]),
    ("non-tensor x", lambda: rowconv_ext.row_conv1d(X.tolist(), Wt), ["x", "torch.Tensor", "list"]),
    ("kernel size 0", lambda: rowconv_ext.row_conv1d(X, Wt[..., :0]), ["kernel size", "positive", "got 0"]),
    ("kernel size 0, causal", lambda: rowconv_ext.row_conv1d(X, Wt[..., :0], padding="causal"),
     ["kernel size", "positive", "got 0"]),
    ("same with stride 0", lambda: rowconv_ext.row_conv1d(X, Wt, stride=0, padding="same"), ["stride", "positive", "got 0"]),
    # sizes whose index arithmetic would overflow int64 are refused, not wrapped
    ("huge padding", lambda: rowconv_ext.row_conv1d(X, Wt, padding=(2**63 - 1, 2**63 - 1)),
     ["padding", "at most 2^40", "left=9223372036854775807"]),
    ("huge dilation", lambda: rowconv_ext.row_conv1d(X, Wt, dilation=2**62), ["dilation", "at most 2^40", str(2**62)]),
    ("huge stride", lambda: rowconv_ext.row_conv1d(X, Wt, stride=2**62), ["stride", "at most 2^40", str(2**62)]),
    # The backward ops check their own arguments too (they are public ops).
    ("grad_input Wout", lambda: ops.row_conv1d_grad_input(torch.randn(2, 6, 3, 7), Wt, 10, 1, 0, 0, 1, 1),
     ["grad_out.shape[3]", "Wout", "8", "got 7"]),
    ("grad_input Cout", lambda: ops.row_conv1d_grad_input(torch.randn(2, 5, 3, 8), Wt, 10, 1, 0, 0, 1, 1),
     ["grad_out.shape[1]", "out_channels", "6", "got 5"]),
    ("grad_weight batch", lambda: ops.row_conv1d_grad_weight(torch.randn(1, 6, 3, 8), X, 3, 1, 0, 0, 1, 1),
     ["grad_out.shape[0]", "batch", "2", "got 1"]),
    ("grad_weight K", lambda: ops.row_conv1d_grad_weight(torch.randn(2, 6, 3, 8), X, 0, 1, 0, 0, 1, 1),
     ["kernel size", "got 0"]),
    ("grad_bias rank", lambda: ops.row_conv1d_grad_bias(torch.randn(2, 6, 3)), ["grad_out", "4-D", "3-D"]),
    ("grad_bias dtype", lambda: ops.row_conv1d_grad_bias(torch.ones(2, 6, 3, 4, dtype=torch.int32)),
     ["grad_out", "dtype", "Int"]),
    # method: one of the three names, exactly (no case folding, no None)
    ("method 'FFT'", lambda: rowconv_ext.row_conv1d(X, Wt, method="FFT"),
     ["row_conv1d", "method", "('auto', 'direct', 'fft')", "got 'FFT'"]),
    ("method None", lambda: rowconv_ext.row_conv1d(X, Wt, method=None), ["method", "('auto', 'direct', 'fft')", "None"]),
    ("method 3", lambda: rowconv_ext.row_conv1d(X, Wt, method=3), ["method", "('auto', 'direct', 'fft')", "got 3"]),
    # fft_block: 0, -1, -2 or a transform length of at least the span (5 here), for each op
    *[(f"{name} fft_block {n}", call, [name, "fft_block", "span", "= 5", f"got {n}"])
      for n in (-3, 4, 2**41)
      for name, call in [
          ("row_conv1d", lambda n=n: ops.row_conv1d(X, Wt, None, 1, 0, 0, 2, 1, n)),
          ("row_conv1d_grad_input", lambda n=n: ops.row_conv1d_grad_input(torch.randn(2, 6, 3, 6), Wt, 10, 1, 0, 0, 2,
                                                                           1, n)),
          ("row_conv1d_grad_weight", lambda n=n: ops.row_conv1d_grad_weight(torch.randn(2, 6, 3, 6), X, 3, 1, 0, 0, 2,
                                                                            1, n))]],
]


@pytest.mark.parametrize("what,call,pieces", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(what, call, pieces):
    snapshot = [t.clone() for t in (X, Wt, Bs)]
    with pytest.raises((ValueError, RuntimeError)) as info:
        call()
    message = str(info.value)
    for piece in pieces:
        assert piece in message, f"{what}: {piece!r} not in {message!r}"
    for t, t0 in zip((X, Wt, Bs), snapshot):
        assert torch.equal(t, t0)


def test_value_errors_are_value_errors():
    with pytest.raises(ValueError):
        rowconv_ext.row_conv1d(X, Wt, stride=0)
    with pytest.raises(ValueError):
        rowconv_ext.row_conv1d(X, Wt[:2])
    with pytest.raises(ValueError):
        rowconv_ext.row_conv1d(X, Wt, method="FFT")
    with pytest.raises(ValueError):
        ops.row_conv1d(X, Wt, None, 1, 0, 0, 1, 1, 2)


# choose_method checks its arguments as row_conv1d does: the same error for
# each (with its own name where the Python side reports it).
CHOOSE_CASES = [
    ("x rank", (X[0], Wt), {}),
    ("non-tensor x", (X.tolist(), Wt), {}),
    ("non-tensor weight", (X, None), {}),
    ("weight dtype", (X, Wt.double()), {}),
    ("rows", (X, Wt[:2]), {}),
    ("Cin groups", (X, _args(Cin=4)[1][:, :, :1]), dict(groups=3)),
    ("stride 0", (X, Wt), dict(stride=0)),
    ("float stride", (X, Wt), dict(stride=2.0)),
    ("dilation 0", (X, Wt), dict(dilation=0)),
    ("negative padding", (X, Wt), dict(padding=-1)),
    ("padding triple", (X, Wt), dict(padding=(1, 2, 3))),
    ("unknown string", (X, Wt), dict(padding="full")),
    ("same with stride", (X, Wt), dict(stride=2, padding="same")),
    ("too short", (X[..., :4], Wt), dict(dilation=2)),
    ("kernel size 0", (X, Wt[..., :0]), {}),
]


@pytest.mark.parametrize("what,args,kwargs", CHOOSE_CASES, ids=[c[0] for c in CHOOSE_CASES])
def test_choose_method_raises_the_errors_of_row_conv1d(what, args, kwargs):
    with pytest.raises((ValueError, RuntimeError)) as expected:
        rowconv_ext.row_conv1d(*args, **kwargs)
    with pytest.raises(type(expected.value)) as got:
        rowconv_ext.choose_method(*args, **kwargs)
    assert str(got.value).replace("choose_method:", "row_conv1d:") == str(expected.value)
