"""RowConv1d against a list of stock nn.Conv1d, one per row, and against the
grouped nn.Conv1d on the transposed layout."""
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rowconv_ext import RowConv1d, row_conv1d

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
    gy = torch.randn_like(y)
    y.backward(gy)
    y_ref.backward(gy)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(module.weight.grad, torch.stack([c.weight.grad for c in convs]))
    if module.bias is not None:
        torch.testing.assert_close(module.bias.grad, torch.stack([c.bias.grad for c in convs]))


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


def test_forward_rejects_a_3d_input_with_a_clear_error():
    module = RowConv1d(2, 3, 3, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"x must be a 4-D \(B, C, H, W\) tensor, got \(3, 2, 8\)"):
        module(torch.randn(3, 2, 8))
