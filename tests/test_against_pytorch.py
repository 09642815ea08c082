"""Forward and the three gradients against stock PyTorch's grouped F.conv1d
(and its autograd) over a seeded random sweep plus hand-picked edge cases."""
import zlib

import pytest
import torch
import torch.nn.functional as F

import rowconv_ext
from conftest import (
    SWEEP,
    Conv,
    assert_matches_reference,
    make_inputs,
    make_tensor,
    our_results,
    reference_results,
    tolerance,
)


@pytest.mark.parametrize("cfg", SWEEP, ids=str)
def test_float32_sweep(cfg):
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=zlib.crc32(str(cfg).encode()))
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy),
                             torch.float32)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", SWEEP[::6], ids=str)
def test_other_dtypes(cfg, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=7)
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


def _per_row_conv1d(x, w, b, **kw):
    """The problem as users write it today: one F.conv1d per row."""
    rows = [F.conv1d(xh, w[h], None if b is None else b[h], **kw) for h, xh in enumerate(x.unbind(2))]
    return torch.stack(rows, dim=2)


@pytest.mark.parametrize("padding", [0, 3, "valid", "same"])
@pytest.mark.parametrize("K,dilation", [(1, 1), (4, 1), (5, 2), (6, 3)])
def test_padding_forms_equal_per_row_conv1d(padding, K, dilation):
    # Independent of our padding arithmetic: F.conv1d resolves its own padding.
    cfg = Conv(2, 4, 3, 23, 6, K, padding=padding, dilation=dilation, groups=2)
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=3)
    ours = rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs)
    torch.testing.assert_close(ours, _per_row_conv1d(x, w, b, **cfg.kwargs))


@pytest.mark.parametrize("K,dilation", [(1, 1), (3, 1), (4, 3)])
def test_causal_sees_only_the_past(K, dilation):
    cfg = Conv(1, 3, 2, 20, 2, K, padding="causal", dilation=dilation)
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=4)
    y = rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs)
    assert y.shape[-1] == cfg.W
    t = 9
    x2 = x.clone()
    x2[..., t + 1:] = torch.randn_like(x2[..., t + 1:])
    y2 = rowconv_ext.row_conv1d(x2, w, b, **cfg.kwargs)
    torch.testing.assert_close(y2[..., : t + 1], y[..., : t + 1], rtol=0, atol=0)
    ref = _per_row_conv1d(F.pad(x, (dilation * (K - 1), 0)), w, b, dilation=dilation)
    torch.testing.assert_close(y, ref)


def test_asymmetric_padding_equals_f_pad_then_conv1d():
    cfg = Conv(2, 3, 4, 30, 3, 5, stride=2, padding=(4, 1), dilation=2, groups=3)
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=5)
    ref = _per_row_conv1d(F.pad(x, (4, 1)), w, b, stride=2, dilation=2, groups=3)
    torch.testing.assert_close(rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs), ref)


@pytest.mark.parametrize("cfg", SWEEP[::10], ids=str)
def test_reference_equals_per_row_conv1d(cfg):
    """The exported ground truth is itself checked against the per-row loop."""
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=6)
    left, right = cfg.pads()
    ref = _per_row_conv1d(F.pad(x, (left, right)), w, b, stride=cfg.stride, dilation=cfg.dilation,
                          groups=cfg.groups)
    torch.testing.assert_close(rowconv_ext.reference_row_conv1d(x, w, b, **cfg.kwargs), ref)


def test_output_is_contiguous_and_has_the_contract_shape():
    cfg = Conv(2, 4, 3, 50, 6, 5, stride=3, padding=(2, 1), dilation=2, groups=2)
    x, w, b, _ = make_inputs(cfg, torch.float32, layout="permuted")
    y = rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs)
    assert y.is_contiguous()
    assert y.shape == (2, 6, 3, (50 + 3 - 2 * 4 - 1) // 3 + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("where", ["own", "offset", "at_the_end"])
@pytest.mark.parametrize("padding,dilation", [(0, 1), ("same", 1), ("causal", 2), ((5, 2), 1), ((0, 9), 3)], ids=str)
@pytest.mark.parametrize("Cin,Cout,groups,K", [(1, 1, 1, 4), (6, 6, 6, 3), (8, 3, 1, 1), (3, 6, 1, 7), (2, 9, 1, 3),
                                               (4, 16, 2, 5), (2, 40, 1, 3), (5, 5, 1, 3)], ids=str)
def test_rows_read_in_place(Cin, Cout, groups, K, padding, dilation, where, dtype):
    """The forward reads x's rows in place (no window copy) where a group has
    few output channels (up to 4 strips of the micro-kernel's rows: 24 on
    AVX2, 32 on AVX-512; 40 here is past it; 2-6 rows, a strip shorter than
    the micro-kernel's, in blocks of 4-8 vectors) and a tile's columns read only
    the row: whole tiles (padding 0), or a tile's middle on whole 64-byte lines
    of y with its padded ends copied (rows of 2100: tiles of up to 1024, a
    middle of 128 or more columns). Grad-input reads grad_out the same way
    where a group has at most one strip of input channels (every shape here
    but Cin_g 8 on AVX2), its padding the transposed one (a valid forward's grad-input pads
    both ends); grad-weight's dot form (a group with fewer output channels
    than a vector) reads x's windows and grad_out's rows in place. Rows
    whose whole-vector reads would pass the tensor's last
    element are copied ('at_the_end': x a view ending where its storage ends;
    grad_out's last rows always); 'offset' starts every row of x 3 elements
    off the line."""
    cfg = Conv(2, Cin, 3, 2100, Cout, K, padding=padding, dilation=dilation, groups=groups)
    x, w, b, gy = make_inputs(cfg, dtype, seed=Cin * 100 + Cout * 10 + K)
    if where != "own":
        skip = 3 if where == "offset" else 0
        room = 0 if where == "at_the_end" else 5
        big = torch.randn(cfg.B, Cin, cfg.H, skip + cfg.W + room, dtype=dtype, generator=torch.Generator().manual_seed(9))
        big[..., skip:skip + cfg.W] = x
        x = big[..., skip:skip + cfg.W]
        assert x.stride(-1) == 1 and (where != "at_the_end" or x.storage_offset() + x.numel() == big.numel())
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
@pytest.mark.parametrize("cout_g,W,stride", [(8, 12, 1), (13, 5, 1), (21, 71, 1), (32, 300, 1), (13, 300, 1),
                                             (8, 600, 3)])
def test_grad_weight_with_vectors_of_output_channels(cout_g, W, stride, layout, dtype):
    """Grad-weight with a vector of output channels a group or more: the gemm
    form (two vectors or more, or one on short rows or at a stride)
    transposes tiles of grad_out: whole register tiles, ragged rows (zero
    padded) and positions; one vector on long rows at stride 1 (13 x 300)
    takes the dot form. grad_out with and without contiguous rows (sliced:
    every other position), against PyTorch."""
    cfg = Conv(2, 6, 3, W, 2 * cout_g, 3, stride=stride, padding=1, groups=2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=cout_g * W, layout=layout)
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("layout", ["contiguous", "strided", "channels_last"])
def test_grad_bias_is_as_accurate_as_torch_sum(layout):
    """grad_bias sums B * W terms per (row, channel): on long rows of
    grad_out with a nonzero mean (where a running float sum's error grows
    with the number of terms) its error against the float64 sum is at most
    that of PyTorch's own float32 grad_out.sum() (a cascade sum), with
    headroom: compared as the RMS over the 64 sums of one call, at most 1.5x
    PyTorch's (measured 0.42x; float partials summed over all B * W terms,
    as before, 6.4x)."""
    B, C, H, W = 8, 4, 16, 8000
    g = torch.Generator().manual_seed(12)
    gy = torch.randn(B, C, H, W, generator=g) * 3 + 1
    x = torch.randn(B, 2, H, W, generator=g)
    w = torch.randn(H, C, 2, 1, generator=g)
    b = torch.randn(H, C, generator=g, requires_grad=True)
    if layout == "strided":
        gy = torch.repeat_interleave(gy, 2, dim=-1)[..., ::2]
    elif layout == "channels_last":
        gy = gy.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    rowconv_ext.row_conv1d(x, w, b).backward(gy)
    want = gy.double().sum(dim=(0, 3)).t()
    ours = (b.grad.double() - want).square().mean().sqrt()
    stock = (gy.sum(dim=(0, 3)).t().double() - want).square().mean().sqrt()
    assert ours <= 1.5 * stock, f"grad_bias RMS error {ours:.3g}, PyTorch's float32 sum {stock:.3g}"


@pytest.mark.parametrize("B,Cin,Cout,H,W,K", [(16, 4, 4, 4, 8192, 3), (8, 8, 16, 2, 8192, 5), (16, 1, 1, 8, 8192, 4),
                                              (16, 8, 8, 4, 4096, 9)])
def test_grad_weight_is_as_accurate_as_the_grouped_conv_recipe(B, Cin, Cout, H, W, K):
    """grad_weight sums B * W products per element (here 65k-131k): its
    norm-wise error against float64 is at most 2x that of PyTorch's float32
    grouped F.conv1d (the transpose recipe) on the same values, in the dot
    form (few output channels, depthwise) and the gemm form. Measured 0.09x
    to 1.1x; summed over all B * W positions in one running float sum (as
    before) it was 3-6x."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, Cin, H, W, generator=g)
    w = torch.randn(H, Cout, Cin, K, generator=g, requires_grad=True)
    y = rowconv_ext.row_conv1d(x, w)
    gy = torch.randn(y.shape, generator=g)
    (ours,) = torch.autograd.grad(y, w, gy)

    def recipe_grad(dtype):
        wd = w.detach().to(dtype).requires_grad_()
        out = F.conv1d(x.to(dtype).transpose(1, 2).reshape(B, H * Cin, W), wd.reshape(H * Cout, Cin, K), groups=H)
        return torch.autograd.grad(out.reshape(B, H, Cout, -1).transpose(1, 2), wd, gy.to(dtype))[0]

    want = recipe_grad(torch.float64)
    error = lambda got: ((got.double() - want).norm() / want.norm()).item()  # noqa: E731
    assert error(ours) <= 2 * error(recipe_grad(torch.float32)), (error(ours), error(recipe_grad(torch.float32)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("W", [9, 10, 17, 34, 1001])
@pytest.mark.parametrize("padding", [0, (1, 2), 3])
def test_stride_two_phases_of_awkward_lengths(W, padding, dtype):
    """At stride 2 the forward and grad-weight copy every other element of
    x's rows into phases, in vectors where the rows are contiguous: windows
    of every length around the vector width (tails of 0-3 elements), starting
    at even and odd positions (paddings), zeros past the row; against PyTorch."""
    cfg = Conv(2, 3, 2, W, 4, 3, stride=2, padding=padding)
    x, w, b, gy = make_inputs(cfg, dtype, seed=W)
    assert x.stride(-1) == 1
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


def assert_matches_reference_at_1_2_3_threads(cfg, layout, dtype):
    """Direct method against PyTorch at 1, 2 and 3 threads, the same bits at each."""
    x, w, b, gy = make_inputs(cfg, dtype, seed=zlib.crc32(str(cfg).encode()), layout=layout)
    ref = reference_results(cfg, x, w, b, gy)
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        ours = our_results(cfg, x, w, b, gy, method="direct")
        assert_matches_reference(cfg, ours, ref, dtype)
        results.append(ours)
    for other in results[1:]:  # the same bits at every thread count
        for a, c in zip(results[0], other):
            assert torch.equal(a, c)


# Short rows with many channels a group: several batch entries' columns in
# one product (csrc/cpu/short_rows_kernel.h; forward where Cout_g >= 32 and
# Wout <= 7 or Cout_g >= 64 and Wout <= 10, grad-input at stride 1 where
# W < 32 with Cin_g >= 32, or W <= 10 with Cin_g >= 16; grad-weight where
# Wout < 32, Cout_g < 16 and H * groups >= 8). Batch sizes that
# leave a last block short, strides, paddings longer than the row,
# dilation, groups; complex64 doubles the real channels (Cout_g 16 -> 32).
SHORT_ROW_CONFIGS = [
    Conv(5, 16, 3, 7, 32, 3, padding=1),                          # forward and grad-input
    Conv(7, 24, 2, 9, 64, 5, padding=(4, 1), dilation=2),         # Wout 7, W 9
    Conv(3, 64, 2, 10, 64, 11, padding="same"),                   # K longer than the row
    Conv(9, 48, 2, 13, 96, 3, stride=2, padding=1, groups=3),     # stride 2: forward only (Wout 7)
    Conv(4, 32, 3, 31, 16, 5, padding=2),                         # grad-input only (Cin_g 32, W 31)
    Conv(6, 16, 2, 4, 16, 2, padding="causal"),                   # grad-input only (Cin_g 16, W 4)
    Conv(2, 64, 1, 1, 64, 1),                                     # one column
    Conv(5, 6, 8, 9, 4, 3, padding=1),                            # grad-weight only (Cout_g 4, 8 rows)
    Conv(3, 8, 4, 33, 8, 5, stride=2, padding=2, groups=2),       # grad-weight only, stride 2 (Wout 17)
    Conv(300, 2, 8, 20, 2, 3, padding=1),                         # grad-weight's running sums flushed
    Conv(4, 12, 8, 15, 12, 3, padding=1),                         # grad-weight, float64: its gemm form (8 lanes)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
@pytest.mark.parametrize("cfg", SHORT_ROW_CONFIGS, ids=str)
def test_short_rows_of_many_channels(cfg, layout, dtype, restore_threads):
    assert_matches_reference_at_1_2_3_threads(cfg, layout, dtype)


# Grad-weight with vectors over the taps (csrc/cpu/grad_weight_taps_kernel.h:
# K >= 8 on rows of fewer than 32 outputs, K >= 13 below 128, K >= 32 up to
# 256; with 32 output channels a group or more only where K fills 3/4 of
# its vectors). Each row of its product points into x's window split into
# the dilation's phases: strides, dilations, paddings longer than the row,
# one input channel, rows cut into stretches (Cout_g 64: 64 columns a
# piece), running sums flushed every 4096 columns (600 entries of 9).
TAPS_CONFIGS = [
    Conv(3, 8, 4, 33, 8, 11, stride=2, padding=5, groups=2),      # Wout 17, stride 2
    Conv(4, 6, 3, 20, 5, 9, padding=4, dilation=2),               # dilation 2: two phases
    Conv(3, 4, 2, 40, 6, 13, stride=3, padding=6, dilation=3),    # Wout 6, three phases
    Conv(600, 2, 1, 9, 3, 9, padding="same"),                     # 5400 columns: a flush
    Conv(2, 2, 2, 100, 64, 16, padding=8),                        # Wout 101 in stretches of 64
    Conv(4, 1, 8, 33, 1, 65, stride=2, padding=32),               # depthwise, K twice the row
    Conv(3, 32, 2, 20, 64, 24, padding=12, groups=2),             # Cout_g 32, K 24
    Conv(2, 3, 3, 50, 2, 40, padding=(30, 9)),                    # Wout 50, K 40, uneven padding
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
@pytest.mark.parametrize("cfg", TAPS_CONFIGS, ids=str)
def test_grad_weight_with_vectors_over_the_taps(cfg, layout, dtype, restore_threads):
    assert_matches_reference_at_1_2_3_threads(cfg, layout, dtype)


# Grad-input where the rows have few outputs for their kernel (2 * Wout *
# stride <= K: csrc/cpu/grad_input_weight_rows_kernel.h): every output hands
# its gradient back through a whole weight row. One batch entry and eleven
# (gemm_rows' blocks of 8 rows and a rest), strides, dilation, groups,
# depthwise, padding on one side or past the row, W = 1.
WEIGHT_ROWS_CONFIGS = [
    Conv(3, 4, 2, 40, 6, 37, padding="valid"),                     # Wout 4
    Conv(1, 8, 2, 1030, 8, 1024),                                  # one entry, Wout 7
    Conv(11, 3, 2, 7, 5, 65, padding="same"),                      # K far past the row
    Conv(2, 6, 3, 40, 4, 40, stride=3, padding=(3, 2), groups=2),  # stride 3, Wout 2
    Conv(4, 2, 2, 84, 2, 41, dilation=2),                          # dilation 2, Wout 4
    Conv(3, 4, 5, 20, 4, 64, padding=(50, 3), groups=4),           # depthwise, Wout 10
    Conv(5, 2, 2, 1, 3, 9, padding=(8, 0)),                        # W 1, Wout 1
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
@pytest.mark.parametrize("cfg", WEIGHT_ROWS_CONFIGS, ids=str)
def test_grad_input_through_whole_weight_rows(cfg, layout, dtype, restore_threads):
    assert_matches_reference_at_1_2_3_threads(cfg, layout, dtype)


# The forward with vectors over the taps (csrc/cpu/forward_taps_kernel.h:
# rows of at most half a vector of outputs, K of 4 vectors and 16 taps an
# output or more): strides, dilation, groups, depthwise, padding past the
# row, W 1, and pieces of the batch (40 output channels: 6 entries a piece).
FORWARD_TAPS_CONFIGS = [
    Conv(3, 4, 2, 70, 6, 67, padding="valid"),                      # Wout 4
    Conv(1, 1, 5, 200, 1, 200),                                     # depthwise, one output
    Conv(5, 6, 2, 110, 4, 100, stride=3, padding=(2, 0), groups=2), # stride 3, Wout 5
    Conv(3, 2, 2, 142, 2, 70, dilation=2),                          # dilation 2, Wout 4
    Conv(2, 3, 3, 7, 4, 129, padding="same"),                       # K far past the row
    Conv(30, 1, 1, 258, 40, 257),                                   # five pieces of 6 entries
    Conv(3, 2, 2, 1, 2, 64, padding=(40, 23)),                      # W 1
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
@pytest.mark.parametrize("cfg", FORWARD_TAPS_CONFIGS, ids=str)
def test_forward_with_vectors_over_the_taps(cfg, layout, dtype, restore_threads):
    assert_matches_reference_at_1_2_3_threads(cfg, layout, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("B,Cin,H,W,Cout,K,d", [(3, 4, 2, 12, 6, 9, 2), (2, 3, 2, 4, 5, 33, 1),
                                               (2, 2, 2, 3, 3, 65, 1)], ids=str)
def test_taps_and_weight_rows_forms_read_the_carried_state(B, Cin, H, W, Cout, K, d, dtype):
    """A causal chunk with a carried state (x's prefix), against F.conv1d on
    the concatenation: the taps form of grad-weight reads the state's
    positions instead of the left padding (K 9, Wout 12, dilation 2: its
    last 16 inputs); K 33 on rows of 4 takes the weight rows' grad-input,
    K 65 on rows of 3 the forward with vectors over the taps too."""
    g = torch.Generator().manual_seed(11)
    x = make_tensor((B, Cin, H, W), dtype, g, "sliced").requires_grad_()
    w = make_tensor((H, Cout, Cin, K), dtype, g, "contiguous").requires_grad_()
    s = make_tensor((B, Cin, H, d * (K - 1)), dtype, g, "contiguous").requires_grad_()
    gy = make_tensor((B, Cout, H, W), dtype, g, "contiguous")
    y = rowconv_ext.row_conv1d(x, w, None, padding="causal", dilation=d, initial_state=s, method="direct")
    ours = (y,) + torch.autograd.grad(y, (x, w, s), gy)
    leaves = [t.detach().double().requires_grad_() for t in (x, w, s)]
    full = torch.cat([leaves[2], leaves[0]], -1)
    y_ref = torch.stack([F.conv1d(full[:, :, h], leaves[1][h], dilation=d) for h in range(H)], 2)
    ref = (y_ref,) + torch.autograd.grad(y_ref, leaves, gy.double())
    # each result's reduction: Cin * K terms, Cout * K, B * W, Cout * K
    for name, o, r, R in zip(["output", "grad_x", "grad_weight", "grad_state"], ours, ref,
                             [Cin * K, Cout * K, B * W, Cout * K]):
        atol, rtol = tolerance(dtype, R)
        torch.testing.assert_close(o.double(), r, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")
