"""The CUDA kernels, executed on the CPU by the emulator (csrc/cuda/emulator.h:
one thread per CUDA thread, barriers, per-block shared memory poisoned with
NaN, warp shuffles), against stock PyTorch: every kernel, every dtype, the
tiled kernels with one and several shared-memory chunks, and the direct
kernels (a budget too small for one channel), over shapes at the tile borders
(32-position warps, partial tiles), with one and several channel lanes per
block, and at every compile-time specialisation (1, 4 or 8 channels and 1,
2 or 4 positions per thread; the depthwise sliding window; K = 3; unit stride; grad-weight thread tiles of 1 or 4 rows and 1 to
5 or 8 taps, with the partial sums of several splits)."""
import pytest
import torch

import rowconv_ext
import rowconv_ext._cuda_emulation  # noqa: F401  (registers torch.ops.rowconv_emulated)
from conftest import Conv, assert_matches_reference, make_inputs, reference_results, tolerance, wide

pytestmark = pytest.mark.cuda_emulation
emulated = torch.ops.rowconv_emulated

# Budgets: the default (48 KiB), 1 KiB (a few channels per chunk, so several
# chunks), 8 bytes (not one channel: the direct kernels).
BUDGETS = {"shared48k": 49152, "shared1k": 1024, "direct": 8}

CONFIGS = [
    Conv(2, 4, 3, 37, 6, 3, padding=1),  # kOut 8 (partial), K = 3
    Conv(1, 1, 2, 129, 1, 5, padding="same"),  # depthwise, 4 positions per thread (2 in float64)
    Conv(2, 2, 1, 33, 2, 4, stride=2, padding=(3, 1), dilation=2),  # kOut 4, strided grad-input
    Conv(1, 6, 2, 32, 9, 2, groups=3),  # groups, 3 output channels per group
    Conv(2, 3, 1, 64, 3, 1, groups=3, bias=False),  # depthwise K = 1, two full warps
    Conv(1, 5, 1, 20, 10, 7, stride=3, padding="causal", dilation=3, groups=5),
    Conv(1, 2, 2, 9, 2, 9, padding=4),  # Wout = W, taps past both ends
    Conv(3, 2, 1, 5, 3, 5, padding="valid"),  # Wout = 1
    Conv(0, 2, 2, 8, 3, 3),  # empty batch
    Conv(1, 12, 1, 130, 72, 3, padding=1),  # lanes: 9 blocks of 8 channels in 2 blocks, one lane idle
    Conv(2, 3, 2, 50, 6, 1, groups=3),  # depthwise multiplier 2, K = 1
    Conv(2, 16, 1, 40, 12, 6, stride=2, padding=(2, 3), dilation=2, groups=2),  # grad-weight 8-tap tiles
    Conv(1, 3, 1, 700, 3, 13, padding="causal", groups=3),  # depthwise sliding window, 2 tiles
    Conv(1, 2, 1, 600, 4, 3, padding=1),  # 4 positions per thread, a partial second tile
    Conv(1, 2, 1, 5, 2, 2, stride=2**32, padding=1),  # stride past int32: grad-input takes the direct kernel
]


def _emulated_results(cfg, x, w, b, gy, budget):
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    # The gradients of a complex convolution take the conjugate of the operand
    # held fixed (PyTorch's convention, as in _registrations.py); for real
    # tensors conj() is the tensor itself.
    return (
        emulated.row_conv1d(x, w, b, *conv, budget),
        emulated.row_conv1d_grad_input(gy, w.conj(), cfg.W, *conv, budget),
        emulated.row_conv1d_grad_weight(gy, x.conj(), cfg.K, *conv, budget),
    ) + ((emulated.row_conv1d_grad_bias(gy),) if b is not None else ())


# Direct grids of hundreds of blocks of 256 threads (one OS thread each in
# the emulator: minutes); their direct kernels run on the other configs.
DIRECT_GRIDS_TOO_LARGE = {CONFIGS[9], CONFIGS[11]}
FLOAT32_RUNS = [pytest.param(cfg, budget, id=f"{cfg}-{name}") for cfg in CONFIGS for name, budget in BUDGETS.items()
                if not (name == "direct" and cfg in DIRECT_GRIDS_TOO_LARGE)]


@pytest.mark.parametrize("cfg, budget", FLOAT32_RUNS)
def test_float32_against_pytorch(cfg, budget):
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=31)
    assert_matches_reference(cfg, _emulated_results(cfg, x, w, b, gy, budget),
                             reference_results(cfg, x, w, b, gy), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=str)
def test_other_dtypes_against_pytorch(cfg, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=32)
    # every kernel of each dtype: the direct ones on the two smaller grids
    small_grid = cfg in (CONFIGS[2], CONFIGS[3])
    for budget in (BUDGETS["shared1k"], BUDGETS["direct"]) if small_grid else (BUDGETS["shared48k"], BUDGETS["shared1k"]):
        assert_matches_reference(cfg, _emulated_results(cfg, x, w, b, gy, budget),
                                 reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["permuted", "sliced"])
def test_strided_inputs(layout, dtype):
    cfg = Conv(2, 4, 2, 40, 4, 3, stride=2, padding=(2, 1), groups=2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=33, layout=layout)
    assert_matches_reference(cfg, _emulated_results(cfg, x, w, b, gy, BUDGETS["shared48k"]),
                             reference_results(cfg, x, w, b, gy), dtype)


def test_errors_come_from_the_shared_checks():
    with pytest.raises(ValueError, match=r"weight.shape\[0\] must be the number of rows"):
        emulated.row_conv1d(torch.randn(2, 4, 3, 10), torch.randn(2, 6, 4, 3), None, 1, 0, 0, 1, 1, 49152)


def test_expanded_inputs():
    # zero strides, as autograd hands over for y.sum(): grad_out broadcast over batch and
    # rows, x over the batch (random values, not ones)
    cfg = Conv(3, 4, 2, 150, 8, 3, padding=1, groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=34)
    x = x[:1].expand_as(x)
    gy = gy[:1, :, :1].expand_as(gy)
    assert gy.stride(0) == gy.stride(2) == 0
    for budget in (BUDGETS["shared48k"], BUDGETS["direct"]):
        assert_matches_reference(cfg, _emulated_results(cfg, x, w, b, gy, budget),
                                 reference_results(cfg, x, w, b, gy), torch.float32)


# The decode step's kernel (kernels/update.cuh), run by the emulator through
# the same op body and checks: test_streaming_update's tests with the op swapped.
import test_streaming_update as streaming  # noqa: E402


def _emulated_update(x, conv_state, weight, bias=None, dilation=1, groups=1, *, cache_seqlens=None,
                     state_indices=None):
    return emulated.row_conv1d_update(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices)


@pytest.fixture
def emulated_streaming(monkeypatch):
    monkeypatch.setattr(streaming, "update", _emulated_update)
    return streaming


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.complex64], ids=str)
@pytest.mark.parametrize("cfg", streaming.STEP_CONFIGS[::2], ids=streaming._ids)
def test_update_single_steps(emulated_streaming, cfg, dtype):
    emulated_streaming.test_single_steps_equal_the_full_causal_forward(cfg, dtype, op=_emulated_update)


def test_update_chunks_circular_pool_and_strided_views(emulated_streaming):
    emulated_streaming.test_chunks_of_several_steps_including_more_than_the_state_holds(
        (2, 4, 3, 6, 3, 2, 2), torch.float32, 3)
    emulated_streaming.test_circular_buffer_equals_the_shifted_one(torch.float32, torch.int32)
    emulated_streaming.test_circular_buffer_writes_only_the_new_positions()
    emulated_streaming.test_state_pool_permuted_and_padded(torch.float64)
    emulated_streaming.test_state_pool_with_circular_buffer()
    for cfg, extra in emulated_streaming.STRIDED_VIEW_CASES:
        emulated_streaming.test_strided_views_of_x_and_state_are_read_and_updated_in_place(cfg, extra)
    emulated_streaming.test_no_bias_no_input_channels_and_no_output_channels()


@pytest.mark.parametrize("cfg", streaming.KERNEL_FORMS, ids=streaming._ids)
def test_update_pooled_and_circular_states(emulated_streaming, cfg):
    emulated_streaming.test_pooled_and_circular_states_in_every_kernel_form(cfg, circular=True)


def test_update_many_items_in_several_blocks():
    """More (b, h, group) items than one block of 128 threads holds, and items
    whose (channel, step) pairs exceed a block: the phases' strides."""
    gen = torch.Generator().manual_seed(40)
    for B, cin, H, cout, K, T in ((40, 1, 9, 1, 4, 1), (2, 3, 1, 50, 3, 4)):
        x = torch.randn(B, cin, H, T, generator=gen, dtype=torch.float64)
        state = torch.randn(B, cin, H, K - 1, generator=gen, dtype=torch.float64)
        w = torch.randn(H, cout, cin, K, generator=gen, dtype=torch.float64)
        b = torch.randn(H, cout, generator=gen, dtype=torch.float64)
        seq = torch.cat([state, x], dim=-1)
        want, bound = streaming.expected_and_tolerance(seq, w, b, 1, 1)
        got = _emulated_update(x, state, w, b)
        streaming.assert_close_bound(got, want[..., -T:], bound[..., -T:])
        assert torch.equal(state, seq[..., -(K - 1):])
# Carried state: the forward and grad-weight kernels read x's prefix (the
# initial_state of a causal convolution) at positions < 0, in the tiles' edges
# and in the direct kernels, for every budget.
PREFIX_CONFIGS = [
    Conv(2, 4, 3, 37, 6, 3, padding="causal", dilation=2, groups=2),
    Conv(1, 3, 1, 700, 3, 13, padding="causal", groups=3),  # depthwise sliding window, 2 tiles
    Conv(1, 4, 1, 130, 18, 3, padding="causal"),  # 3 lanes of 8 channels, the last partial
    Conv(2, 2, 2, 5, 2, 5, padding="causal", dilation=3),  # W < dilation * (K - 1)
]


def _prefix_reference(cfg, x, w, b, s, gy):
    """Output and grads of weight, bias and state from stock PyTorch: the
    reference with padding 0 on torch.cat([state, x], -1), in float64."""
    leaves = [wide(t.detach()).requires_grad_() for t in (x, w, s)]
    y = rowconv_ext.reference_row_conv1d(torch.cat([leaves[2], leaves[0]], -1), leaves[1],
                                         None if b is None else wide(b), 1, 0, cfg.dilation, cfg.groups)
    return (y.detach(),) + torch.autograd.grad(y, leaves[1], wide(gy))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.complex64], ids=str)
@pytest.mark.parametrize("budget", BUDGETS.values(), ids=BUDGETS.keys())
@pytest.mark.parametrize("cfg", PREFIX_CONFIGS, ids=str)
def test_prefix_reads_against_pytorch(cfg, budget, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=35)
    S = cfg.dilation * (cfg.K - 1)
    # a sliced state (every second element of a larger tensor): its own strides
    s = torch.randn(cfg.B, cfg.Cin, cfg.H, 2 * S, generator=torch.Generator().manual_seed(36),
                    dtype=torch.complex128 if dtype.is_complex else torch.float64).to(dtype)[..., ::2]
    conv = (1, S, 0, cfg.dilation, cfg.groups)
    y = emulated.row_conv1d(x, w, b, *conv, budget, s)
    gw = emulated.row_conv1d_grad_weight(gy, x.conj(), cfg.K, *conv, budget, s.conj())
    y_ref, gw_ref = _prefix_reference(cfg, x, w, b, s, gy)
    cin_g = cfg.Cin // cfg.groups
    # an output sums Cin_g * K products and the bias; a weight's gradient B * W
    for name, ours, ref, R in (("output", y, y_ref, cin_g * cfg.K + 1), ("grad_weight", gw, gw_ref, cfg.B * cfg.W)):
        atol, rtol = tolerance(dtype, R)
        torch.testing.assert_close(wide(ours), ref, atol=atol, rtol=rtol, msg=lambda m: f"{cfg} {name}: {m}")
