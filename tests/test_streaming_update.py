"""row_conv1d_update, the decode step, against stock PyTorch: the valid
F.conv1d (grouped, H * groups groups) over the whole sequence, the inputs held
in the initial state followed by every new input, computed in float64 from
the very same values. Steps of one and of several inputs (more than the state
holds, too), the circular buffer against the shifted one, state pools with
permuted and skipped entries, strided views, every error, opcheck,
torch.compile, the refusal of derivatives, and RowConv1d.init_state/step.
The same tests run the emulated CUDA kernel (csrc/cuda/kernels/update.cuh)
under -m cuda_emulation, and the real one on a GPU (--device cuda)."""
import pytest
import torch
import torch.nn.functional as F

import rowconv_ext
from conftest import DEVICE

update = rowconv_ext.row_conv1d_update
ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128]
# unit roundoff of the stored dtype and of the accumulation (float32 for the half types)
UNIT = {torch.float32: (2.0**-24, 2.0**-24), torch.float64: (2.0**-53, 2.0**-53),
        torch.float16: (2.0**-11, 2.0**-24), torch.bfloat16: (2.0**-8, 2.0**-24),
        torch.complex64: (2.0**-24, 2.0**-24), torch.complex128: (2.0**-53, 2.0**-53)}


def _wide(t):
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def stock_valid_conv(seq, weight, bias, dilation, groups):
    """Valid F.conv1d of every row of seq (B, Cin, H, L): stock PyTorch only."""
    B, cin, H, L = seq.shape
    _, cout, cin_g, K = weight.shape
    x2 = seq.transpose(1, 2).reshape(B, H * cin, L)
    y2 = F.conv1d(x2, weight.reshape(H * cout, cin_g, K), None if bias is None else bias.reshape(-1),
                  dilation=dilation, groups=H * groups)
    return y2.reshape(B, H, cout, -1).transpose(1, 2)


def expected_and_tolerance(seq, weight, bias, dilation, groups):
    """The float64 result and a per-element bound on our error: n products
    accumulated in the accumulation type (unit u_acc) err by at most about
    n * u_acc * sum|terms|, and the final rounding to the stored dtype by
    u_out * |y| <= u_out * sum|terms|, where sum|terms| is the same
    convolution of |x| with |w| (plus |bias|). Complex products are four
    real ones each. Doubled for the second-order terms."""
    dtype = seq.dtype
    u_out, u_acc = UNIT[dtype]
    n = weight.shape[2] * weight.shape[3] + 1
    if dtype.is_complex:
        n *= 4
    y = stock_valid_conv(_wide(seq).cpu(), _wide(weight).cpu(), None if bias is None else _wide(bias).cpu(),
                         dilation, groups)
    mag = stock_valid_conv(_wide(seq).cpu().abs(), _wide(weight).cpu().abs(),
                           None if bias is None else _wide(bias).cpu().abs(), dilation, groups)
    return y, 2 * (n * u_acc + u_out) * mag + 1e-300


def assert_close_bound(got, want, bound):
    err = (_wide(got).cpu() - want).abs()
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"error {worst:.3g} x the bound (max abs error {err.max().item():.3g})"


def randn(shape, dtype, gen, device=None):
    wide = torch.complex128 if dtype.is_complex else torch.float64
    return torch.randn(shape, generator=gen, dtype=wide).to(dtype).to(device or DEVICE)


def problem(B, cin, H, cout, K, dilation, groups, dtype, seed, bias=True, extra_state=0, length=None):
    """Random weight, bias and a sequence: S held inputs then `length` new ones."""
    gen = torch.Generator().manual_seed(seed)
    S = dilation * (K - 1) + extra_state
    length = length if length is not None else S + 6
    w = randn((H, cout, cin // groups, K), dtype, gen)
    b = randn((H, cout), dtype, gen) if bias else None
    seq = randn((B, cin, H, S + length), dtype, gen)
    return w, b, seq, S


# (B, Cin, H, Cout, K, dilation, groups)
STEP_CONFIGS = [
    (2, 3, 2, 5, 3, 1, 1),  # Cin != Cout
    (1, 1, 3, 1, 1, 1, 1),  # K = 1: nothing held
    (2, 2, 1, 2, 2, 2, 1),
    (3, 4, 2, 6, 4, 3, 2),  # groups
    (2, 3, 2, 3, 5, 4, 3),  # depthwise, dilation 4
    (1, 6, 2, 3, 9, 1, 3),  # K = 9, two input channels per group
    (2, 2, 1, 8, 7, 2, 1),  # Cout > 4: the CPU kernel's channel blocks, with a short one
    (1, 5, 2, 5, 6, 3, 5),
    (3, 4, 3, 4, 4, 1, 4),  # depthwise K = 4 (the CPU kernel's unrolled step)
    (2, 1, 5, 1, 3, 2, 1),  # one channel, K = 3, dilation 2
    (2, 2, 2, 2, 2, 1, 2),  # depthwise K = 2
    (40, 4, 3, 6, 3, 1, 1),  # many entries a step: the CPU kernel's blocks of entries
    (3, 4, 5, 6, 5, 1, 2),  # K = 5 at dilation 1, two channels a group: AVX-512's packing of 4 held floats
    (36, 6, 2, 4, 3, 2, 2),  # the same with dilation 2 and groups: its general windows
]


def _ids(c):
    return "B{}-C{}-H{}-O{}-K{}-d{}-g{}".format(*c)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", STEP_CONFIGS, ids=_ids)
def test_single_steps_equal_the_full_causal_forward(cfg, dtype, op=update):
    B, cin, H, cout, K, d, g = cfg
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, dtype, seed=sum(cfg))
    want, bound = expected_and_tolerance(seq, w, b, d, g)
    state = seq[..., :S].clone()
    for t in range(seq.shape[3] - S):
        y = op(seq[..., S + t:S + t + 1], state, w, b, d, g)
        assert y.shape == (B, cout, H, 1) and y.dtype == dtype
        # output at sequence position S + t: valid-conv index S + t - d * (K - 1)
        pos = S + t - d * (K - 1)
        assert_close_bound(y, want[..., pos:pos + 1], bound[..., pos:pos + 1])
        assert torch.equal(state, seq[..., t + 1:S + t + 1])  # the last S inputs, copied exactly


# The depthwise step's unit-step runs (one channel walked over 1500 rows, or
# one row over 1500 channels; x contiguous, a state of exactly K - 1): the CPU
# kernel vectorises across the run, with a tail, and the threads split the
# runs at other points than the batch entries.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("walk", ["rows", "channels"])
def test_depthwise_unit_runs_equal_the_full_causal_forward(walk, K, bias, dtype, restore_threads):
    C, H = (1, 1500) if walk == "rows" else (1500, 1)
    w, b, seq, S = problem(3, C, H, C, K, 1, C, dtype, seed=K + 7 * bias, bias=bias, length=4)
    want, bound = expected_and_tolerance(seq, w, b, 1, C)
    outputs = {}
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        state, ys = seq[..., :S].clone(), []
        for t in range(seq.shape[3] - S):
            ys.append(update(seq[..., S + t:S + t + 1].contiguous(), state, w, b, 1, C))
            assert torch.equal(state, seq[..., t + 1:S + t + 1])
        outputs[threads] = torch.cat(ys, -1)
    assert_close_bound(outputs[1], want, bound)  # valid-conv positions 0.. are the steps' outputs
    assert torch.equal(outputs[2], outputs[1]) and torch.equal(outputs[3], outputs[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.complex64], ids=str)
@pytest.mark.parametrize("extra", [0, 3])
# per item; dot rows; dot rows with the output channels split between threads (weights over 256 KiB, one row)
@pytest.mark.parametrize("cfg", [(2, 4, 3, 6, 3, 2, 2), (3, 6, 2, 4, 3, 1, 1), (2, 128, 1, 130, 4, 1, 1)], ids=_ids)
def test_chunks_of_several_steps_including_more_than_the_state_holds(cfg, dtype, extra):
    B, cin, H, cout, K, d, g = cfg
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, dtype, seed=5 + extra, extra_state=extra, length=400)
    want, bound = expected_and_tolerance(seq, w, b, d, g)
    state, at = seq[..., :S].clone(), S
    # 300 steps: the CPU kernel's blocks of batch entries hold one entry each
    for T in [1, 2, S, S + 1, 2 * S + 3, 5, 1, 300]:
        T = min(T, seq.shape[3] - at)
        y = update(seq[..., at:at + T], state, w, b, d, g)
        lo = at - d * (K - 1)
        assert_close_bound(y, want[..., lo:lo + T], bound[..., lo:lo + T])
        at += T
        assert torch.equal(state, seq[..., at - S:at])


def _circular_from_shifted(shifted, seqlens):
    """The circular buffer holding what `shifted` holds (oldest first), for
    entry b's next input going to position seqlens[b] % S."""
    return torch.stack([torch.roll(s, int(c), dims=-1) for s, c in zip(shifted, seqlens)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.complex128], ids=str)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64], ids=str)
def test_circular_buffer_equals_the_shifted_one(dtype, index_dtype):
    B, cin, H, cout, K, d, g = 4, 3, 2, 4, 4, 2, 1
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, dtype, seed=7, extra_state=2, length=40)
    want, bound = expected_and_tolerance(seq, w, b, d, g)
    # different positions per entry, one about to wrap, one far past S
    seqlens = torch.tensor([0, S - 1, 3, 5 * S + 2], dtype=index_dtype, device=DEVICE)
    shifted = seq[..., :S].clone()
    circular = _circular_from_shifted(shifted, seqlens.tolist())
    at = S
    for T in [1, 1, 3, S - 1, S, S + 2, 1, 4]:
        T = min(T, seq.shape[3] - at)
        x = seq[..., at:at + T]
        y_circ = update(x, circular, w, b, d, g, cache_seqlens=seqlens)
        y_shift = update(x, shifted, w, b, d, g)
        assert torch.equal(y_circ, y_shift)  # the same products in the same order
        lo = at - d * (K - 1)
        assert_close_bound(y_circ, want[..., lo:lo + T], bound[..., lo:lo + T])
        at += T
        seqlens += T  # the caller advances the lengths
        assert torch.equal(circular, _circular_from_shifted(shifted, seqlens.tolist()))


def test_circular_buffer_writes_only_the_new_positions():
    gen = torch.Generator().manual_seed(8)
    w, b = randn((2, 3, 3, 3), torch.float32, gen), randn((2, 3), torch.float32, gen)
    state = randn((1, 3, 2, 10), torch.float32, gen)
    before = state.clone()
    x = randn((1, 3, 2, 3), torch.float32, gen)
    update(x, state, w, b, cache_seqlens=torch.tensor([8], device=DEVICE))  # positions 8, 9, 0
    changed = (state != before).any(dim=(0, 1, 2)).nonzero().flatten().tolist()
    assert changed == [0, 8, 9]
    assert torch.equal(state[..., [8, 9, 0]], x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_state_pool_permuted_and_padded(dtype):
    B, cin, H, cout, K, d, g = 3, 2, 2, 3, 3, 1, 1
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, dtype, seed=9, length=6)
    gen = torch.Generator().manual_seed(10)
    pool = randn((7, cin, H, S), dtype, gen)
    for indices in ([4, 0, 6], [-1, 2, -1], [5, -1, 1]):
        idx = torch.tensor(indices, device=DEVICE)
        used = [i for i in indices if i >= 0]
        pool_before = pool.clone()
        # each used row holds entry b's history; expected from the stock conv over [row, x]
        x = seq[..., S:S + 2]
        for bi, r in enumerate(indices):
            if r >= 0:
                pool[r] = seq[bi, ..., :S]
        pool_before = pool.clone()
        y = update(x, pool, w, b, d, g, state_indices=idx)
        full = torch.cat([pool_before[[max(r, 0) for r in indices]], x], dim=-1)
        want, bound = expected_and_tolerance(full, w, b, d, g)
        for bi, r in enumerate(indices):
            if r < 0:
                assert torch.equal(y[bi], torch.zeros_like(y[bi]))  # skipped: zero outputs
            else:
                assert_close_bound(y[bi:bi + 1], want[bi:bi + 1, ..., S - d * (K - 1):],
                                   bound[bi:bi + 1, ..., S - d * (K - 1):])
                assert torch.equal(pool[r], full[bi, ..., -S:])
        for r in range(pool.shape[0]):
            if r not in used:
                assert torch.equal(pool[r], pool_before[r])  # untouched rows: bitwise the same


# (B, Cin, H, Cout, K, dilation, groups): each form of the CPU kernel
KERNEL_FORMS = [
    (5, 3, 4, 3, 4, 1, 3),  # depthwise one step, K = 4 unrolled
    (4, 2, 3, 2, 6, 2, 2),  # depthwise one step, K = 6 at run time
    (4, 4, 2, 5, 3, 1, 1),  # channel mixing: packed windows, dot rows
    (300, 2, 1, 3, 4, 1, 1),  # many entries: several blocks of entries a thread
    (40, 6, 2, 4, 3, 2, 2),  # many entries, general windows (dilation 2, groups)
    # (the two above are small steps: one thread; these two split between threads)
    (600, 32, 1, 8, 4, 1, 1),  # many entries of long windows: several blocks of entries a thread
    (200, 12, 4, 8, 3, 2, 2),  # many entries, general windows
    (3, 64, 7, 64, 3, 1, 1),  # weights over 256 KiB: threads split the rows (dot form), a short last tile
    (32, 64, 40, 64, 3, 1, 1),  # the same with many entries: threads own blocks of entries, tiles of rows
    (2, 128, 1, 130, 4, 1, 1),  # weights over 256 KiB in one row: threads split the output channels (dot form)
    (2, 160, 1, 160, 3, 2, 1),  # the same with dilation 2: general windows
    (4, 2, 2, 3, 2, 1, 1),  # Cin_g * K < 8: per (b, h, group)
]


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("cfg", KERNEL_FORMS, ids=_ids)
def test_pooled_and_circular_states_in_every_kernel_form(cfg, circular):
    B, cin, H, cout, K, d, g = cfg
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, torch.float32, seed=sum(cfg), extra_state=1, length=1)
    gen = torch.Generator().manual_seed(15)
    pool = randn((2 * B + 1, cin, H, S), torch.float32, gen)
    rows = torch.randperm(2 * B + 1, generator=gen)[:B]
    rows[1] = -1  # skipped
    seqlens = torch.randint(0, 3 * S, (B,), generator=gen) if circular else torch.zeros(B, dtype=torch.int64)

    def held(entry, lengths):  # entry's history as its state row holds it
        return torch.roll(entry, int(lengths), dims=-1) if circular else entry

    for e, r in enumerate(rows.tolist()):
        if r >= 0:
            pool[r] = held(seq[e, ..., :S], seqlens[e])
    before = pool.clone()
    y = update(seq[..., S:], pool, w, b, d, g, cache_seqlens=seqlens.to(DEVICE) if circular else None,
               state_indices=rows.to(DEVICE))
    want, bound = expected_and_tolerance(seq, w, b, d, g)  # its last position: the new step's output
    for e, r in enumerate(rows.tolist()):
        if r < 0:
            assert torch.equal(y[e], torch.zeros_like(y[e]))
            continue
        assert_close_bound(y[e:e + 1], want[e:e + 1, ..., -1:], bound[e:e + 1, ..., -1:])
        assert torch.equal(pool[r], held(seq[e, ..., 1:], seqlens[e] + 1))
    untouched = sorted(set(range(2 * B + 1)) - set(rows.tolist()))
    assert torch.equal(pool[untouched], before[untouched])


def test_state_pool_with_circular_buffer():
    B, cin, H, cout, K = 2, 2, 3, 2, 3
    w, b, seq, S = problem(B, cin, H, cout, K, 1, 1, torch.float64, seed=11, extra_state=1, length=4)
    gen = torch.Generator().manual_seed(12)
    pool = randn((5, cin, H, S), torch.float64, gen)
    idx = torch.tensor([3, 1], device=DEVICE)
    seqlens = torch.tensor([2, 7], device=DEVICE)
    ref_states = pool[idx].clone()
    ref_y = update(seq[..., S:S + 2], ref_states, w, b, cache_seqlens=seqlens)
    untouched = pool[[0, 2, 4]].clone()
    y = update(seq[..., S:S + 2], pool, w, b, cache_seqlens=seqlens, state_indices=idx)
    assert torch.equal(y, ref_y) and torch.equal(pool[idx], ref_states)
    assert torch.equal(pool[[0, 2, 4]], untouched)


# the CPU kernel's general windows (dilation 2, a longer state), and its
# packed channel mixing of one step of a state that holds exactly the history
STRIDED_VIEW_CASES = [((2, 4, 3, 4, 3, 2, 2), 1), ((2, 4, 3, 4, 3, 1, 1), 0)]


@pytest.mark.parametrize("cfg, extra", STRIDED_VIEW_CASES, ids=["d2-g2-S+1", "d1-g1-S"])
def test_strided_views_of_x_and_state_are_read_and_updated_in_place(cfg, extra):
    B, cin, H, cout, K, d, g = cfg
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, torch.float32, seed=13, extra_state=extra, length=10)
    want, bound = expected_and_tolerance(seq, w, b, d, g)
    # the state: a permuted storage (B, H, S, Cin), sliced out of a wider buffer
    gen = torch.Generator().manual_seed(14)
    storage = randn((B, H, S + 5, cin), torch.float32, gen)
    state = storage.permute(0, 3, 1, 2)[..., 2:2 + S]
    state.copy_(seq[..., :S])
    outside = torch.cat([storage[:, :, :2], storage[:, :, 2 + S:]], dim=2).clone()
    # x: every other step of a permuted copy
    xs = seq.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    assert not xs.is_contiguous()
    at = S
    for T in (1, 3, 1, 5):
        y = update(xs[..., at:at + T], state, w, b, d, g)
        lo = at - d * (K - 1)
        assert_close_bound(y, want[..., lo:lo + T], bound[..., lo:lo + T])
        at += T
        assert torch.equal(state, seq[..., at - S:at])
    assert torch.equal(torch.cat([storage[:, :, :2], storage[:, :, 2 + S:]], dim=2), outside)


def test_no_bias_no_input_channels_and_no_output_channels():
    gen = torch.Generator().manual_seed(15)
    x, state = randn((2, 3, 2, 1), torch.float32, gen), randn((2, 3, 2, 2), torch.float32, gen)
    w0 = randn((2, 0, 3, 3), torch.float32, gen)
    y = update(x, state, w0, None)  # no output channels: the state still advances
    assert y.shape == (2, 0, 2, 1) and torch.equal(state[..., -1:], x)
    b = randn((2, 4), torch.float32, gen)
    y = update(x[:, :0], state[:, :0], randn((2, 4, 0, 3), torch.float32, gen), b)
    assert torch.equal(y, b.t()[None, :, :, None].expand(2, 4, 2, 1))  # no input channels: the bias


# Errors: named argument, expected and actual value; nothing is written.
def _good(dtype=torch.float32):
    gen = torch.Generator().manual_seed(16)
    return dict(x=randn((2, 4, 3, 1), dtype, gen), conv_state=randn((2, 4, 3, 4), dtype, gen),
                weight=randn((3, 6, 2, 3), dtype, gen), bias=randn((3, 6), dtype, gen), dilation=2, groups=2)


def _bad_cases():
    i64 = torch.int64
    return [
        ("x", lambda a: a["x"][0], "x must be a 4-D"),
        ("conv_state", lambda a: a["conv_state"][0], "conv_state must be a 4-D"),
        ("weight", lambda a: a["weight"][0], "weight must be a 4-D"),
        ("bias", lambda a: a["bias"][0], "bias must be a 2-D"),
        ("x", lambda a: a["x"][..., :0], "at least one new step, got T = x.shape[3] = 0"),
        ("x", lambda a: a["x"].to(torch.int32), "x must have dtype float32"),
        ("conv_state", lambda a: a["conv_state"].double(), "conv_state must have the same dtype as x"),
        ("weight", lambda a: a["weight"].double(), "weight must have the same dtype as x"),
        ("bias", lambda a: a["bias"].double(), "bias must have the same dtype as x"),
        ("conv_state", lambda a: a["conv_state"][..., :3], "conv_state.shape[3] (S) must be at least dilation"),
        ("conv_state", lambda a: a["conv_state"][:, :2], "conv_state.shape[1] must be in_channels"),
        ("conv_state", lambda a: a["conv_state"][:, :, :2], "conv_state.shape[2] must be the number of rows"),
        ("conv_state", lambda a: a["conv_state"][:1], "conv_state.shape[0] must be the batch size"),
        ("weight", lambda a: a["weight"][:2], "weight.shape[0] must be the number of rows"),
        ("weight", lambda a: a["weight"][:, :, :1], "weight.shape[2] must be in_channels / groups"),
        ("bias", lambda a: a["bias"][:, :5], "bias.shape[1] must be out_channels"),
        ("groups", lambda a: 3, "in_channels (4) must be divisible by groups (3)"),
        ("dilation", lambda a: 0, "dilation must be a positive integer"),
        ("cache_seqlens", lambda a: torch.zeros(2), "cache_seqlens must have dtype int32 or int64"),
        ("cache_seqlens", lambda a: torch.zeros(3, dtype=i64), "cache_seqlens.shape[0] must be the batch size"),
        ("cache_seqlens", lambda a: torch.zeros(2, 1, dtype=i64), "cache_seqlens must be a 1-D"),
        ("state_indices", lambda a: torch.tensor([0, 2]), "state_indices[1] = 2 is outside the pool"),
        ("state_indices", lambda a: torch.tensor([1, 1]), "state_indices[0] and state_indices[1] are both 1"),
        ("state_indices", lambda a: torch.tensor([0.0, 1.0]), "state_indices must have dtype int32 or int64"),
        ("conv_state", lambda a: a["conv_state"][:, :, :1].expand(2, 4, 3, 4), "must not be an expanded view"),
    ]


def _regex(text):
    import re
    return re.escape(text)


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_errors_name_the_argument_and_write_nothing(case):
    name, make, message = _bad_cases()[case]
    args = _good()
    args[name] = make(args)
    if isinstance(args[name], torch.Tensor):
        args[name] = args[name].to(DEVICE)
    before = {k: v.clone() for k, v in args.items() if isinstance(v, torch.Tensor)}
    kwargs = {k: args.pop(k) for k in ("cache_seqlens", "state_indices") if k in args}
    with pytest.raises((ValueError, RuntimeError), match=_regex(message)):
        update(**args, **kwargs)
    for k, v in (args | kwargs).items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, before[k]), k  # nothing written, conv_state included


def test_state_sharing_memory_with_x_is_refused():
    a = _good()
    buf = torch.randn(2, 4, 3, 5, device=DEVICE)
    with pytest.raises(RuntimeError, match="conv_state is written in place, so it must not share memory with x"):
        update(buf[..., 4:], buf[..., :4], a["weight"], a["bias"], 2, 2)


@pytest.mark.parametrize("entry", ["function", "torch.ops"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("bit", ["conj", "neg"])
def test_state_with_a_conjugate_or_negative_bit_is_refused(bit, mode, entry):
    # (PyTorch's fallback for those bits ran the op on a resolved copy of the
    # state and failed an internal assert before the op's check could run)
    a = _good(torch.complex64)
    call = update if entry == "function" else lambda *args: torch.ops.rowconv.row_conv1d_update(*args, None, None)
    with getattr(torch, mode)():
        state = a["conv_state"].clone()
        lazy = state.conj() if bit == "conj" else state.conj().imag  # .imag of a conjugate: the negative bit
        x, w, b = (a["x"], a["weight"], a["bias"]) if bit == "conj" else (a["x"].real, a["weight"].real, a["bias"].real)
        assert lazy.is_conj() if bit == "conj" else lazy.is_neg()
        before = lazy.clone()
        with pytest.raises(RuntimeError, match="conv_state is written in place, so it must not be a lazy "
                                               "conjugate or negative view"):
            call(x, lazy, w, b, a["dilation"], a["groups"])
        assert torch.equal(lazy, before)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("bit", ["conj", "neg"])
def test_operands_with_a_conjugate_or_negative_bit_are_read_as_their_values(bit, mode):
    a = _good(torch.complex128)
    if bit == "conj":
        x, w, b, state = a["x"], a["weight"], a["bias"], a["conv_state"]
        with_bit = lambda v: v.conj_physical().conj()  # noqa: E731  (v's values, the conjugate bit)
    else:
        x, w, b, state = a["x"].imag, a["weight"].imag, a["bias"].imag, a["conv_state"].imag
        with_bit = lambda v: torch.complex(torch.zeros_like(v), -v).conj().imag  # noqa: E731  (the negative bit)
    lazy = dict(x=with_bit(x), weight=with_bit(w), bias=with_bit(b))
    assert all((t.is_conj() if bit == "conj" else t.is_neg()) and torch.equal(t, v)
               for t, v in zip(lazy.values(), (x, w, b)))
    S = state.shape[-1]
    want, bound = expected_and_tolerance(torch.cat([state, x], -1), w, b, a["dilation"], a["groups"])
    with getattr(torch, mode)():
        got_state = state.clone()
        got = update(lazy["x"], got_state, lazy["weight"], lazy["bias"], a["dilation"], a["groups"])
    assert_close_bound(got, want, bound)
    assert torch.equal(got_state, torch.cat([state, x], -1)[..., -S:])


def test_mismatched_devices_are_refused():
    a = _good()
    if DEVICE == "cpu":
        pytest.skip("needs a second device (covered on a GPU)")
    with pytest.raises(RuntimeError, match="conv_state must have the same device as x|conv_state must be on the same device"):
        update(a["x"], a["conv_state"].cpu(), a["weight"], a["bias"], 2, 2)


# Derivatives are refused (an inference step), never silently dropped.
@pytest.mark.parametrize("which", ["x", "weight", "bias", "conv_state"])
def test_requires_grad_under_grad_mode_is_refused(which):
    a = _good()
    a[which].requires_grad_()
    with pytest.raises(RuntimeError, match=f"row_conv1d_update: {which} requires grad"):
        update(**a)
    with torch.no_grad():
        update(**a)  # fine without grad mode
    if which != "conv_state":
        with torch.inference_mode():
            update(**{k: (v.detach() if k == "conv_state" else v) for k, v in a.items()})


def test_forward_ad_jvp_and_vmap_are_refused():
    import torch.autograd.forward_ad as fwAD
    a = _good()
    with fwAD.dual_level():
        dual = fwAD.make_dual(a["x"], torch.randn_like(a["x"]))
        with pytest.raises(RuntimeError, match="row_conv1d_update: x carries a forward-mode tangent"):
            update(dual, a["conv_state"], a["weight"], a["bias"], 2, 2)
    with pytest.raises(RuntimeError, match="row_conv1d_update"):
        torch.func.jvp(lambda x: update(x, a["conv_state"].clone(), a["weight"], a["bias"], 2, 2),
                       (a["x"],), (torch.randn_like(a["x"]),))
    with pytest.raises(RuntimeError, match="row_conv1d_update"):
        torch.func.grad(lambda w: update(a["x"], a["conv_state"].clone(), w, a["bias"], 2, 2).sum())(a["weight"])
    with pytest.raises(RuntimeError, match="row_conv1d_update: vmap is not supported"):
        torch.vmap(lambda x: update(x, a["conv_state"][0], a["weight"], a["bias"], 2, 2))(a["x"])


def test_version_counter_of_the_state_advances():
    a = _good()
    v = a["conv_state"]._version
    update(**a)
    assert a["conv_state"]._version > v


# The eager entry (python_fast_calls.cpp, the decode step's hot path) and
# torch.ops' path are one op: __torch_function__ modes and subclasses see the
# op, dispatch modes and fake tensors see it through the dispatcher, and
# arguments of other types meet torch.ops' own rules.
def _stock_step(a):
    """y of one step of _good()'s arguments: the valid stock convolution of
    the held inputs followed by the new one (fp32, 7 terms an output)."""
    seq = torch.cat([a["conv_state"], a["x"]], dim=-1).cpu()
    bias = None if a["bias"] is None else a["bias"].cpu()
    return stock_valid_conv(seq, a["weight"].cpu(), bias, a["dilation"], a["groups"])[..., -1:]


def test_eager_entry_takes_plain_arguments():
    from rowconv_ext._C import _update_fast
    a = _good()
    want = _stock_step(a)
    state = a["conv_state"].clone()
    y = _update_fast(a["x"], state, a["weight"], a["bias"], 2, 2, None, None)
    assert y is not None
    torch.testing.assert_close(y.cpu(), want, rtol=1e-5, atol=1e-5)
    assert torch.equal(state[..., :3], a["conv_state"][..., 1:]) and torch.equal(state[..., 3:], a["x"])
    # what it does not take as given it leaves to torch.ops (None)
    assert _update_fast(a["x"], state, a["weight"], a["bias"], 2.0, 2, None, None) is None
    assert _update_fast(a["x"], state, a["weight"], 1, 2, 2, None, None) is None
    assert _update_fast(a["x"], state) is None


@pytest.mark.parametrize("kind", ["torch_function", "torch_dispatch"])
def test_modes_see_the_op(kind):
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode
    a = _good()
    seen = []

    def record(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return func(*args, **(kwargs or {}))

    base = TorchFunctionMode if kind == "torch_function" else TorchDispatchMode
    with type("Record", (base,), {f"__{kind}__": record})():
        y = update(a["x"], a["conv_state"].clone(), a["weight"], a["bias"], 2, 2)
    assert torch.ops.rowconv.row_conv1d_update.default in seen
    torch.testing.assert_close(y.cpu(), _stock_step(a), rtol=1e-5, atol=1e-5)


def test_subclasses_and_fake_tensors_see_the_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    a = _good()

    class Logged(torch.Tensor):
        calls = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.calls.append(func)
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))

    y = update(a["x"].as_subclass(Logged), a["conv_state"].clone(), a["weight"], a["bias"], 2, 2)
    assert torch.ops.rowconv.row_conv1d_update.default in Logged.calls
    torch.testing.assert_close(y.as_subclass(torch.Tensor).cpu(), _stock_step(a), rtol=1e-5, atol=1e-5)
    with FakeTensorMode() as mode:
        fake = {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in a.items()}
        y = update(**fake)
        assert y.shape == (2, 6, 3, 1) and y.dtype == torch.float32


@pytest.mark.parametrize("dilation", [2, 2.0, True, torch.tensor(2)], ids=["int", "float", "bool", "tensor"])
def test_arguments_of_other_types_meet_torch_ops_rules(dilation):
    op = torch.ops.rowconv.row_conv1d_update.default
    a = _good()

    def outcome(f):
        try:
            return f()
        except Exception as e:  # the exception's type and first line
            return type(e), str(e).splitlines()[0]

    ours = outcome(lambda: update(a["x"], a["conv_state"].clone(), a["weight"], a["bias"], dilation, 2))
    theirs = outcome(lambda: op(a["x"], a["conv_state"].clone(), a["weight"], a["bias"], dilation, 2, None, None))
    if isinstance(theirs, torch.Tensor):  # taken as the integer it stands for (True: 1)
        want = _stock_step(a | {"dilation": int(dilation)})
        torch.testing.assert_close(ours.cpu(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(theirs.cpu(), want, rtol=1e-5, atol=1e-5)
    else:
        assert ours == theirs


def test_opcheck():
    a = _good()
    idx = torch.tensor([1, -1], device=DEVICE)
    seqlens = torch.tensor([3, 9], device=DEVICE, dtype=torch.int32)
    for kw in ({}, {"cache_seqlens": seqlens}, {"state_indices": idx}):
        torch.library.opcheck(torch.ops.rowconv.row_conv1d_update.default,
                              (a["x"], a["conv_state"].clone(), a["weight"], a["bias"], 2, 2,
                               kw.get("cache_seqlens"), kw.get("state_indices")))


def test_compile_fullgraph_decode_loop():
    a = _good()

    def decode(xs, state, w, b, seqlens):
        ys = []
        for t in range(xs.shape[3]):
            ys.append(update(xs[..., t:t + 1], state, w, b, 2, 2, cache_seqlens=seqlens + t) * 2)
        return torch.cat(ys, dim=-1)

    gen = torch.Generator().manual_seed(17)
    xs = randn((2, 4, 3, 3), torch.float32, gen)
    seqlens = torch.tensor([1, 6], device=DEVICE)
    s_eager, s_compiled = a["conv_state"].clone(), a["conv_state"].clone()
    want = decode(xs, s_eager, a["weight"], a["bias"], seqlens)
    got = torch.compile(decode, fullgraph=True)(xs, s_compiled, a["weight"], a["bias"],
                                          seqlens)
    assert torch.equal(got, want) and torch.equal(s_compiled, s_eager)


# The module.
@pytest.mark.parametrize("unbatched", [False, True])
def test_module_steps_equal_its_forward(unbatched):
    torch.manual_seed(18)
    m = rowconv_ext.RowConv1d(3, 4, 6, 3, padding="causal", dilation=2, groups=2, device=DEVICE, dtype=torch.float64)
    x = torch.randn(2, 4, 3, 11, dtype=torch.float64, device=DEVICE)
    if unbatched:
        x = x[0]
    with torch.no_grad():
        full = m(x)
        state = m.init_state(None if unbatched else 2)
        assert state.shape == ((4, 3, 4) if unbatched else (2, 4, 3, 4))
        assert state.dtype == torch.float64 and state.device.type == DEVICE and not state.any()
        steps = torch.cat([m.step(x[..., t:t + 1], state) for t in range(x.shape[-1])], dim=-1)
    torch.testing.assert_close(steps, full, rtol=1e-12, atol=1e-12)


def test_module_step_needs_a_causal_module_and_no_grad():
    m = rowconv_ext.RowConv1d(2, 3, 3, 3, padding=1, device=DEVICE)
    with pytest.raises(ValueError, match="RowConv1d.init_state: streaming needs a causal module"):
        m.init_state(1)
    with pytest.raises(ValueError, match="RowConv1d.step: streaming needs a causal module"):
        m.step(torch.zeros(1, 3, 2, 1, device=DEVICE), torch.zeros(1, 3, 2, 2, device=DEVICE))
    m = rowconv_ext.RowConv1d(2, 3, 3, 3, padding=(2, 0), padding_mode="replicate", device=DEVICE)
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        m.init_state(1)
    m = rowconv_ext.RowConv1d(2, 3, 3, 3, padding=(2, 0), device=DEVICE)  # causal by its numbers
    state = m.init_state(1)
    with pytest.raises(RuntimeError, match="row_conv1d_update: weight requires grad"):
        m.step(torch.randn(1, 3, 2, 1, device=DEVICE), state)
    with torch.no_grad():
        assert m.step(torch.randn(1, 3, 2, 1, device=DEVICE), state).shape == (1, 3, 2, 1)


# The usual step (float32, one new input, a state of exactly K - 1, x and the
# state contiguous): the CPU kernel packs a group of neighbouring rows at once
# on AVX-512 (16 / (K - 1) rows; 4 at K = 4) and the rows past a multiple of
# it one at a time; with weights over 256 KiB and fewer than 4 entries a
# thread the threads split the rows where the rows' held inputs fill whole
# cache lines between them (K 3, 5), else the batch entries (K 2, 4), or the
# rows all the same with one entry; with 4 or more they split the entries.
USUAL_STEP_CASES = [  # (B, C, H, K), Cin = Cout
    (5, 4, 19, 2), (5, 4, 10, 3), (5, 4, 6, 4), (5, 4, 7, 5),  # a group of rows and a tail
    (3, 64, 16, 2), (3, 64, 16, 3), (3, 64, 16, 4), (3, 64, 16, 5),  # weights over 256 KiB
    (8, 64, 16, 5),  # the same, 4 entries a thread on 2 threads (3 on 3)
    (1, 64, 16, 4),  # one entry: the rows split, their held inputs sharing lines
]


@pytest.mark.parametrize("pooled", [False, True], ids=["state", "pool"])
@pytest.mark.parametrize("cfg", USUAL_STEP_CASES, ids=lambda c: "B{}-C{}-H{}-K{}".format(*c))
def test_usual_steps_of_contiguous_rows_at_any_thread_count(cfg, pooled, restore_threads):
    B, C, H, K = cfg
    w, b, seq, S = problem(B, C, H, C, K, 1, 1, torch.float32, seed=sum(cfg), length=3)
    want, bound = expected_and_tolerance(seq, w, b, 1, 1)
    gen = torch.Generator().manual_seed(7)
    rows = torch.randperm(2 * B + 1, generator=gen)[:B].to(DEVICE)  # entry e's state: pool row rows[e]
    results = {}
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        if pooled:
            state = randn((2 * B + 1, C, H, S), torch.float32, gen)
            state[rows] = seq[..., :S]
            before = state.clone()
        else:
            state = seq[..., :S].contiguous()
        ys = []
        for t in range(3):
            x = seq[..., S + t:S + t + 1].contiguous()  # rows contiguous, as the grouped packing needs
            y = update(x, state, w, b, state_indices=rows if pooled else None)
            assert_close_bound(y, want[..., t:t + 1], bound[..., t:t + 1])  # valid-conv position t
            ys.append(y)
        held = state[rows] if pooled else state
        assert torch.equal(held, seq[..., 3:S + 3])  # the last S inputs, copied exactly
        if pooled:
            others = torch.ones(2 * B + 1, dtype=torch.bool, device=DEVICE)
            others[rows] = False
            assert torch.equal(state[others], before[others])
        results[n] = ys
    for n in (2, 3):
        for got, want_bits in zip(results[n], results[1]):
            assert torch.equal(got, want_bits)


@pytest.mark.parametrize("cfg", KERNEL_FORMS, ids=_ids)
def test_steps_do_not_depend_on_the_thread_count(cfg, restore_threads):
    """The CPU kernels split batch entries between threads by the thread count;
    every output is still summed in one fixed order: the same bits."""
    B, cin, H, cout, K, d, g = cfg
    w, b, seq, S = problem(B, cin, H, cout, K, d, g, torch.float32, seed=21, length=3)
    results = {}
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        state = seq[..., :S].clone()
        ys = [update(seq[..., S + t:S + t + 1], state, w, b, d, g) for t in range(2)]
        ys.append(update(seq[..., S + 2:], state, w, b, d, g))
        results[n] = ys + [state]
    for n in (2, 3):
        for got, want in zip(results[n], results[1]):
            assert torch.equal(got, want)
    want, bound = expected_and_tolerance(seq, w, b, d, g)
    assert_close_bound(results[2][0], want[..., :1], bound[..., :1])
