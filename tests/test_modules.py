"""RowConv1d against a list of stock nn.Conv1d, one per row, and against the
grouped nn.Conv1d on the transposed layout."""
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rowconv_ext import RowConv1d, reference_row_conv1d, row_conv1d

SETTINGS = [
    dict(kernel_size=3),
    dict(kernel_size=4, padding="same", dilation=2),
    dict(kernel_size=5, stride=2, padding=3, groups=3, bias=False),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
    dict(kernel_size=4, padding="same", padding_mode="replicate", groups=3),
    dict(kernel_size=3, padding=1, padding_mode="circular", dilation=2),
    dict(kernel_size=1, padding="valid"),
]


def _per_row(convs, x):
    return torch.stack([conv(xh) for conv, xh in zip(convs, x.unbind(2))], dim=2)


def _assert_same_backward(module, convs, x, x_ref, y, y_ref):
    """One random cotangent through both: the grads of x, the stacked weights
    and biases equal those of the per-row layers."""
    gy = torch.randn_like(y)
    y.backward(gy)
    y_ref.backward(gy)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(module.weight.grad, torch.stack([c.weight.grad for c in convs]))
    if module.bias is not None:
        torch.testing.assert_close(module.bias.grad, torch.stack([c.bias.grad for c in convs]))


def _convs(rows, cin, cout, **kw):
    return nn.ModuleList(nn.Conv1d(cin, cout, dtype=torch.float64, **kw) for _ in range(rows))


@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_from_conv1d_equals_the_per_row_loop_forward_and_backward(kw):
    torch.manual_seed(0)
    convs = _convs(4, 6, 9, **kw)
    module = RowConv1d.from_conv1d(convs)
    x = torch.randn(3, 6, 4, 23, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = module(x), _per_row(convs, x_ref)
    torch.testing.assert_close(y, y_ref)
    _assert_same_backward(module, convs, x, x_ref, y, y_ref)


@pytest.mark.parametrize("K,dilation,mode", [(3, 1, "zeros"), (4, 2, "zeros"), (3, 2, "replicate"), (2, 1, "reflect")])
def test_causal_padding_equals_left_padded_conv1d(K, dilation, mode):
    torch.manual_seed(1)
    module = RowConv1d(3, 4, 5, K, padding="causal", dilation=dilation, padding_mode=mode, dtype=torch.float64)
    x = torch.randn(2, 4, 3, 17, dtype=torch.float64)
    pad = dilation * (K - 1)
    mode_f = "constant" if mode == "zeros" else mode
    ref = torch.stack([F.conv1d(F.pad(x[:, :, h], (pad, 0), mode=mode_f), module.weight[h], module.bias[h],
                                dilation=dilation) for h in range(3)], dim=2)
    torch.testing.assert_close(module(x), ref)


def test_initialisation_is_that_of_conv1d_per_row():
    torch.manual_seed(123)
    module = RowConv1d(5, 6, 4, 3, groups=2)
    torch.manual_seed(123)
    convs = [nn.Conv1d(6, 4, 3, groups=2) for _ in range(5)]
    torch.testing.assert_close(module.weight, torch.stack([c.weight for c in convs]), rtol=0, atol=0)
    torch.testing.assert_close(module.bias, torch.stack([c.bias for c in convs]), rtol=0, atol=0)


@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_grouped_conv1d_round_trip(kw):
    torch.manual_seed(2)
    module = RowConv1d(4, 6, 9, dtype=torch.float64, **kw)
    x = torch.randn(2, 6, 4, 21, dtype=torch.float64)
    grouped = module.to_grouped_conv1d()
    x2 = x.transpose(1, 2).reshape(2, 4 * 6, 21)
    y2 = grouped(x2)
    torch.testing.assert_close(module(x), y2.reshape(2, 4, 9, -1).transpose(1, 2))
    back = RowConv1d.from_grouped_conv1d(grouped, rows=4)
    torch.testing.assert_close(back(x), module(x), rtol=0, atol=0)


@pytest.mark.parametrize("padding,mode", [("causal", "zeros"), ((3, 1), "zeros"), ((0, 2), "reflect"),
                                          ("causal", "circular")])
def test_to_grouped_conv1d_with_asymmetric_padding(padding, mode):
    torch.manual_seed(3)
    module = RowConv1d(3, 2, 4, 3, padding=padding, padding_mode=mode, dilation=2, dtype=torch.float64)
    exported = module.to_grouped_conv1d()
    assert isinstance(exported, nn.Sequential)
    x = torch.randn(2, 2, 3, 15, dtype=torch.float64)
    y2 = exported(x.transpose(1, 2).reshape(2, 6, 15))
    torch.testing.assert_close(module(x), y2.reshape(2, 3, 4, -1).transpose(1, 2))
    back = RowConv1d.from_grouped_conv1d(exported, rows=3)
    torch.testing.assert_close(back(x), module(x), rtol=0, atol=0)


def test_from_grouped_conv1d_takes_a_zero_pad_layer():
    torch.manual_seed(6)
    conv = nn.Conv1d(6, 6, 3, groups=3, dtype=torch.float64)
    seq = nn.Sequential(nn.ZeroPad1d((2, 0)), conv)
    module = RowConv1d.from_grouped_conv1d(seq, rows=3)
    x = torch.randn(2, 2, 3, 10, dtype=torch.float64)
    y2 = seq(x.transpose(1, 2).reshape(2, 6, 10))
    torch.testing.assert_close(module(x), y2.reshape(2, 3, 2, -1).transpose(1, 2))


def test_state_dict_round_trip():
    torch.manual_seed(4)
    a = RowConv1d(3, 4, 4, 5, padding="same", groups=2)
    b = RowConv1d(3, 4, 4, 5, padding="same", groups=2)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(2, 4, 3, 11)
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
    assert set(a.state_dict()) == {"weight", "bias"}


def test_module_equals_functional_and_repr():
    module = RowConv1d(10, 15, 30, 3, stride=2, padding=(2, 1), dilation=2, groups=5, bias=False,
                       padding_mode="zeros")
    x = torch.randn(2, 15, 10, 40)
    torch.testing.assert_close(module(x), row_conv1d(x, module.weight, None, 2, (2, 1), 2, 5), rtol=0, atol=0)
    assert repr(module) == ("RowConv1d(10, 15, 30, kernel_size=(3,), stride=(2,), padding=(2, 1), dilation=(2,), "
                            "groups=5, bias=False)")
    assert module.weight.shape == (10, 30, 3, 3)


def test_device_and_dtype_arguments():
    module = RowConv1d(2, 3, 3, 3, dtype=torch.float64, device="cpu")
    assert module.weight.dtype == module.bias.dtype == torch.float64


CONSTRUCTION_ERRORS = [
    (dict(rows=0), ["rows", "positive", "got 0"]),
    (dict(in_channels=5, groups=2), ["in_channels (5)", "divisible by groups (2)"]),
    (dict(out_channels=3, groups=2, in_channels=4), ["out_channels (3)", "divisible by groups (2)"]),
    (dict(padding_mode="mirror"), ["padding_mode", "'mirror'"]),
    (dict(padding="same", stride=2), ["same", "stride=1", "stride=2"]),
    (dict(padding=-1), ["padding", "non-negative", "-1"]),
    (dict(padding="full"), ["padding", "'full'"]),
    (dict(kernel_size=0), ["kernel_size", "positive", "got 0"]),
    (dict(stride=1.5), ["stride", "int", "1.5"]),
    (dict(method="FFT"), ["RowConv1d", "method", "('auto', 'direct', 'fft')", "got 'FFT'"]),
    (dict(method=None), ["RowConv1d", "method", "('auto', 'direct', 'fft')", "got None"]),
    (dict(method=3), ["RowConv1d", "method", "('auto', 'direct', 'fft')", "got 3"]),
]


@pytest.mark.parametrize("kw,pieces", CONSTRUCTION_ERRORS, ids=[str(c[0]) for c in CONSTRUCTION_ERRORS])
def test_construction_errors_are_clear(kw, pieces):
    args = dict(rows=2, in_channels=4, out_channels=4, kernel_size=3) | kw
    with pytest.raises(ValueError) as info:
        RowConv1d(**args)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


def test_from_conv1d_rejects_layers_that_differ():
    base = dict(in_channels=4, out_channels=4, kernel_size=3)
    for attr, other in [("kernel_size", dict(kernel_size=5)), ("stride", dict(stride=2)),
                        ("padding", dict(padding=1)), ("dilation", dict(dilation=2)),
                        ("groups", dict(groups=2)), ("padding_mode", dict(padding_mode="reflect")),
                        ("out_channels", dict(out_channels=8))]:
        convs = [nn.Conv1d(**base), nn.Conv1d(**(base | other))]
        with pytest.raises(ValueError, match=rf"convs\[1\]\.{attr} = .* differs from convs\[0\]\.{attr}"):
            RowConv1d.from_conv1d(convs)
    with pytest.raises(ValueError, match="bias"):
        RowConv1d.from_conv1d([nn.Conv1d(**base), nn.Conv1d(**base, bias=False)])
    with pytest.raises(ValueError, match="dtype"):
        RowConv1d.from_conv1d([nn.Conv1d(**base), nn.Conv1d(**base, dtype=torch.float64)])
    with pytest.raises(ValueError, match="at least one"):
        RowConv1d.from_conv1d([])
    with pytest.raises(ValueError, match=r"convs\[0\] must be an nn.Conv1d, got Linear"):
        RowConv1d.from_conv1d([nn.Linear(2, 2)])


def test_from_grouped_conv1d_rejects_groups_not_a_multiple_of_rows():
    with pytest.raises(ValueError, match=r"conv.groups \(4\) must be a multiple of rows \(3\)"):
        RowConv1d.from_grouped_conv1d(nn.Conv1d(12, 12, 3, groups=4), rows=3)




# Unbatched input and zero channels.

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def _row_loop(x, weight, bias, stride=1, padding=(0, 0), dilation=1, groups=1, mode="zeros"):
    """Stock PyTorch one row at a time: F.pad (mode) then F.conv1d(x_h,
    weight[h], bias[h]), for batched (B, C, H, W) or unbatched (C, H, W) x.
    F.conv1d (torch 2.13) returns (B, 0, Wout) without the bias for zero input
    channels and raises for zero output channels, so there each group gets one
    more input channel of zeros (before the padding) and one more output channel
    of zero weights, dropped after the convolution: the same numbers, as an
    empty sum is zero."""
    cout, cin_g, K = weight.shape[1:]
    outs = []
    for h in range(x.shape[-2]):
        xh, wh = x.select(-2, h), weight[h]
        bh = None if bias is None else bias[h]
        if cin_g == 0:
            xh = torch.cat([xh, xh.new_zeros(xh.shape[:-2] + (groups, xh.shape[-1]))], dim=-2)
            wh = torch.cat([wh, wh.new_zeros(cout, 1, K)], dim=1)
        if cout == 0:
            wh = torch.cat([wh, wh.new_zeros(groups, wh.shape[1], K)])
            bh = None if bh is None else torch.cat([bh, bh.new_zeros(groups)])
        xh = F.pad(xh, padding, mode="constant" if mode == "zeros" else mode)
        yh = F.conv1d(xh, wh, bh, stride, 0, dilation, groups)
        outs.append(yh[..., :cout, :])
    return torch.stack(outs, dim=-2)


def _pads(padding, K, dilation):
    if padding == "causal":
        return dilation * (K - 1), 0
    if isinstance(padding, (tuple, list)) and len(padding) == 1:
        (padding,) = padding
    return (padding, padding) if isinstance(padding, int) else tuple(padding)


def _forward_and_grads(fn, x, weight, bias, gy=None):
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    y = fn(*leaves[:2], leaves[2] if bias is not None else None)
    if gy is None:
        gy = torch.randn(y.shape, dtype=y.dtype)
    return y.detach(), torch.autograd.grad(y, leaves, gy), gy


def _assert_module_equals_row_loop(module, x):
    """module(x) against _row_loop with the module's own parameter values:
    output and the grads of x, weight and bias, as fresh leaves on both sides."""
    K, d = module.kernel_size[0], module.dilation[0]

    def ours(x, w, b):  # the module with its parameters replaced by the leaves
        params = {"weight": w} | ({"bias": b} if b is not None else {})
        return torch.func.functional_call(module, params, (x,))

    def loop(x, w, b):
        return _row_loop(x, w, b, module.stride[0], _pads(module.padding, K, d), d, module.groups,
                         module.padding_mode)

    y, grads, gy = _forward_and_grads(ours, x, module.weight, module.bias)
    y_ref, grads_ref, _ = _forward_and_grads(loop, x, module.weight, module.bias, gy)
    assert y.shape == y_ref.shape, (tuple(y.shape), tuple(y_ref.shape))
    torch.testing.assert_close(y, y_ref)
    for name, g, g_ref in zip(["grad_x", "grad_weight", "grad_bias"], grads, grads_ref):
        assert g.shape == g_ref.shape, (name, tuple(g.shape), tuple(g_ref.shape))
        torch.testing.assert_close(g, g_ref, msg=lambda m: f"{name}: {m}")
    return y, grads, gy


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("padding", [2, "causal"])
def test_unbatched_input_is_one_batch_element_as_in_conv1d(mode, padding):
    torch.manual_seed(7)
    module = RowConv1d(3, 4, 6, 3, stride=2 if padding == 2 else 1, padding=padding, dilation=2, groups=2,
                       padding_mode=mode, dtype=torch.float64)
    x = torch.randn(4, 3, 13, dtype=torch.float64)
    y, _, _ = _assert_module_equals_row_loop(module, x)
    assert y.shape == (6, 3, module(x[None]).shape[-1])
    torch.testing.assert_close(y, module(x[None])[0], rtol=0, atol=0)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_unbatched_input_equals_the_per_row_loop_of_unbatched_conv1d(mode):
    torch.manual_seed(8)
    convs = _convs(3, 4, 2, kernel_size=3, padding=1, padding_mode=mode, groups=2)
    module = RowConv1d.from_conv1d(convs)
    x = torch.randn(4, 3, 11, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y = module(x)
    y_ref = torch.stack([conv(xh) for conv, xh in zip(convs, x_ref.unbind(1))], dim=1)  # conv on (C, L)
    assert y.shape == y_ref.shape == (2, 3, 11)
    torch.testing.assert_close(y, y_ref)
    _assert_same_backward(module, convs, x, x_ref, y, y_ref)


@pytest.mark.parametrize("padding,mode", [(1, "zeros"), ("causal", "reflect")])
def test_unbatched_input_through_to_grouped_conv1d(padding, mode):
    torch.manual_seed(9)
    module = RowConv1d(3, 2, 4, 3, padding=padding, padding_mode=mode, dtype=torch.float64)
    x = torch.randn(2, 3, 10, dtype=torch.float64)
    y2 = module.to_grouped_conv1d()(x.transpose(0, 1).reshape(3 * 2, 10))  # nn.Conv1d on (C, L)
    torch.testing.assert_close(module(x), y2.reshape(3, 4, -1).transpose(0, 1))


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("shape", [(3, 8), (2, 3, 2, 8, 1), (8,)], ids=str)
def test_forward_rejects_other_ranks_with_a_clear_error(shape, mode):
    module = RowConv1d(2, 3, 3, 3, padding=1, padding_mode=mode)
    with pytest.raises(ValueError) as info:
        module(torch.randn(shape))
    message = str(info.value)
    for piece in ["RowConv1d", "input x", "3-D (in_channels, rows, W) unbatched",
                  "4-D (B, in_channels, rows, W) batched", f"{len(shape)}-D", str(shape)]:
        assert piece in message, (piece, message)


ZERO_CHANNELS = [(0, 4, 1), (0, 4, 2), (4, 0, 1), (4, 0, 2), (0, 0, 1), (0, 0, 2)]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op:UserWarning")
@pytest.mark.parametrize("cin,cout,groups", ZERO_CHANNELS, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_zero_channels_construct_and_initialise_as_conv1d(cin, cout, groups, bias):
    torch.manual_seed(10)
    module = RowConv1d(3, cin, cout, 3, groups=groups, bias=bias)
    after_ours = torch.rand(4)
    torch.manual_seed(10)
    convs = [nn.Conv1d(cin, cout, 3, groups=groups, bias=bias) for _ in range(3)]
    after_convs = torch.rand(4)
    # The same random numbers drawn (nn.Conv1d draws a fan_in-0 bias from U(-0, 0)), the same values.
    torch.testing.assert_close(after_ours, after_convs, rtol=0, atol=0)
    assert module.weight.shape == torch.stack([c.weight for c in convs]).shape == (3, cout, cin // groups, 3)
    if bias and cin > 0:
        torch.testing.assert_close(module.bias, torch.stack([c.bias for c in convs]), rtol=0, atol=0)
    if bias:
        # fan_in 0: U(-0, 0) (torch 2.13's Conv1d), i.e. zeros (torch 2.11's leaves its empty bias as is)
        assert module.bias.shape == (3, cout)
        if cin == 0:
            assert torch.equal(module.bias, torch.zeros(3, cout))
    else:
        assert module.bias is None
    back = RowConv1d.from_conv1d(convs)
    assert back.weight.shape == module.weight.shape and (back.bias is None) == (not bias)
    grouped = module.to_grouped_conv1d()
    assert (grouped.in_channels, grouped.out_channels, grouped.groups) == (3 * cin, 3 * cout, 3 * groups)
    assert RowConv1d.from_grouped_conv1d(grouped, rows=3).weight.shape == module.weight.shape
    assert repr(module).startswith(f"RowConv1d(3, {cin}, {cout}, kernel_size=(3,)")


def test_negative_channels_are_refused():
    for kw in [dict(in_channels=-1), dict(out_channels=-2)]:
        (name, value), = kw.items()
        args = dict(rows=2, in_channels=4, out_channels=4, kernel_size=3) | kw
        with pytest.raises(ValueError, match=rf"{name} must be a non-negative integer, got {value}"):
            RowConv1d(**args)


ZERO_CHANNEL_SETTINGS = [
    dict(padding=1),
    dict(padding="causal", dilation=2),
    dict(padding=(2, 0), stride=2),
    dict(padding=2, padding_mode="reflect"),
    dict(padding="causal", padding_mode="replicate"),
    dict(padding=1, padding_mode="circular", bias=False),
]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op:UserWarning")
@pytest.mark.parametrize("kw", ZERO_CHANNEL_SETTINGS, ids=str)
@pytest.mark.parametrize("cin,cout,groups", ZERO_CHANNELS, ids=str)
@pytest.mark.parametrize("batch", [2, 0, None], ids=["B2", "B0", "unbatched"])
def test_zero_channels_forward_and_backward(cin, cout, groups, kw, batch):
    torch.manual_seed(11)
    rows, W = 3, 9
    module = RowConv1d(rows, cin, cout, 3, groups=groups, dtype=torch.float64, **kw)
    if module.bias is not None:  # fresh random values, not the zeros of a fan_in-0 initialisation
        with torch.no_grad():
            module.bias.normal_()
    shape = (cin, rows, W) if batch is None else (batch, cin, rows, W)
    x = torch.randn(shape, dtype=torch.float64)
    y, grads, gy = _assert_module_equals_row_loop(module, x)
    # Closed forms, independent of F.conv1d.
    left, right = _pads(kw["padding"], 3, kw.get("dilation", 1))
    span = kw.get("dilation", 1) * 2 + 1
    w_out = (W + left + right - span) // kw.get("stride", 1) + 1
    assert y.shape == ((cout, rows, w_out) if batch is None else (batch, cout, rows, w_out))
    assert grads[0].shape == x.shape and grads[1].shape == module.weight.shape
    if cin == 0:
        expected = (torch.zeros((rows, cout), dtype=torch.float64) if module.bias is None
                    else module.bias.detach()).T[..., None].expand(y.shape)
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        if module.bias is not None:
            dims = (-1,) if batch is None else (0, -1)
            torch.testing.assert_close(grads[2], gy.sum(dims).T)
    if cout == 0:
        assert not grads[0].any()


REFERENCE_ZERO_CASES = [
    # B, Cin, H, W, Cout, K, kwargs
    (2, 0, 3, 10, 4, 3, dict()),
    (2, 0, 3, 10, 6, 4, dict(groups=2, padding="same", dilation=2)),
    (1, 0, 2, 7, 2, 3, dict(padding="causal", stride=2)),
    (2, 0, 2, 7, 2, 3, dict(padding=(3, 1))),
    (2, 4, 3, 10, 0, 3, dict()),
    (2, 4, 3, 10, 0, 3, dict(groups=2, padding=2, stride=3)),
    (2, 0, 3, 10, 0, 3, dict(padding="causal")),
    (2, 0, 3, 10, 0, 3, dict(groups=2)),
    (0, 4, 3, 10, 6, 3, dict(groups=2, padding=1)),
    (0, 0, 3, 10, 4, 3, dict(padding="same")),
    (0, 4, 3, 10, 0, 3, dict()),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", REFERENCE_ZERO_CASES, ids=str)
def test_reference_with_zero_channels_or_batch_equals_the_row_loop(case, bias):
    B, cin, H, W, cout, K, kw = case
    torch.manual_seed(12)
    groups = kw.get("groups", 1)
    x = torch.randn(B, cin, H, W, dtype=torch.float64)
    w = torch.randn(H, cout, cin // groups, K, dtype=torch.float64)
    b = torch.randn(H, cout, dtype=torch.float64) if bias else None
    d = kw.get("dilation", 1)
    padding = kw.get("padding", 0)
    if padding == "same":
        total = d * (K - 1)
        padding = (total // 2, total - total // 2)

    def loop(x, w, b):
        return _row_loop(x, w, b, kw.get("stride", 1), _pads(padding, K, d), d, groups)

    y, grads, gy = _forward_and_grads(lambda x, w, b: reference_row_conv1d(x, w, b, **kw), x, w, b)
    y_ref, grads_ref, _ = _forward_and_grads(loop, x, w, b, gy)
    assert y.shape == y_ref.shape, (tuple(y.shape), tuple(y_ref.shape))
    torch.testing.assert_close(y, y_ref)
    for g, g_ref in zip(grads, grads_ref):
        assert g.shape == g_ref.shape
        torch.testing.assert_close(g, g_ref)
    if cin == 0:
        torch.testing.assert_close(y, (b if bias else torch.zeros(H, cout, dtype=torch.float64)).T[..., None]
                                   .expand(y.shape), rtol=0, atol=0)
