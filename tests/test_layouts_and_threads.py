"""Inputs of any strides, inputs never written to, and results independent of
the thread count."""
import itertools
import os

import pytest
import torch

import rowconv_ext
from conftest import (SWEEP, Conv, assert_matches_reference, last_level_cache_bytes, make_inputs, our_results,
                      reference_results)

LAYOUT_CONFIGS = [
    Conv(2, 4, 3, 37, 6, 3, stride=2, padding=(2, 1), dilation=2, groups=2),
    Conv(3, 3, 2, 130, 3, 5, padding="causal", groups=3),
]


@pytest.mark.parametrize("layout", ["permuted", "sliced"])
@pytest.mark.parametrize("cfg", LAYOUT_CONFIGS, ids=str)
def test_views_of_any_strides(cfg, layout):
    # x, weight, bias and the incoming gradient all in the strided layout.
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=21, layout=layout)
    assert not x.is_contiguous() and not gy.is_contiguous()
    ours = our_results(cfg, x, w, b, gy)
    assert_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), torch.float32)
    # Same numbers as on contiguous copies: the kernels read strides in place
    # and keep the reduction order.
    dense = our_results(cfg, *(t.contiguous() for t in (x, w, b, gy)))
    for o, d in zip(ours, dense):
        torch.testing.assert_close(o, d, rtol=0, atol=0)


ALL_DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64, torch.complex128]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=str)
def test_every_memory_order_of_every_operand(order):
    """x, weight and grad_out each stored in the order `order` of their
    dimensions (a permuted copy viewed back; bias its reversed pair), in
    every dtype. A permuted layout of one order ('permuted' above) once hid a
    complex weight that failed in another."""
    cfg = LAYOUT_CONFIGS[0]
    inverse = [order.index(i) for i in range(4)]
    for seed, dtype in enumerate(ALL_DTYPES):
        x, w, b, gy = make_inputs(cfg, dtype, seed=25 + seed)
        x, w, gy = (t.permute(order).contiguous().permute(inverse) for t in (x, w, gy))
        b = b.t().contiguous().t()
        ours = our_results(cfg, x, w, b, gy)
        assert_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), dtype)


def test_channels_last_style_and_expanded_inputs():
    cfg = Conv(4, 3, 5, 33, 3, 3, padding=1)
    x, w, b, _ = make_inputs(cfg, torch.float32, seed=22)
    x_cl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # C innermost
    x_exp = x[:1].expand(cfg.B, -1, -1, -1)  # zero batch stride
    for xi in (x_cl, x_exp):
        ref = rowconv_ext.reference_row_conv1d(xi, w, b, **cfg.kwargs)
        torch.testing.assert_close(rowconv_ext.row_conv1d(xi, w, b, **cfg.kwargs), ref)


def test_gradient_of_a_sum_has_zero_strides():
    # y.sum().backward() sends an expanded (all-zero-strides) grad_out.
    cfg = Conv(2, 4, 3, 21, 6, 3, stride=2, groups=2)
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=23)
    leaves = [t.requires_grad_() for t in (x, w, b)]
    ours = torch.autograd.grad(rowconv_ext.row_conv1d(*leaves, **cfg.kwargs).sum(), leaves)
    ref = torch.autograd.grad(rowconv_ext.reference_row_conv1d(*leaves, **cfg.kwargs).sum(), leaves)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r)


@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
def test_inputs_are_never_written(layout):
    cfg = Conv(2, 4, 3, 29, 4, 5, padding="same", groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=24, layout=layout)
    before = [t.clone() for t in (x, w, b, gy)]
    versions = [t._version for t in (x, w, b, gy)]
    leaves = [t.requires_grad_() for t in (x, w, b)]
    y = rowconv_ext.row_conv1d(*leaves, **cfg.kwargs)
    torch.autograd.grad(y, leaves, gy, create_graph=True)
    for t, t0, v in zip((x, w, b, gy), before, versions):
        assert torch.equal(t, t0) and t._version == v


# Large enough that every kernel splits its work across threads.
THREAD_CONFIGS = [
    Conv(4, 8, 6, 700, 8, 5, stride=2, padding=(3, 1), dilation=2, groups=2),
    Conv(2, 1, 1, 5000, 1, 9, padding="same"),  # one row: split over width tiles only
    Conv(1, 3, 1, 3000, 4, 3, padding=1),  # one row group: grad-weight splits channels
    # many rows: grad-weight and grad-bias serve runs of neighbouring rows per
    # batch entry, runs that the thread split cuts at different rows
    Conv(3, 4, 37, 300, 4, 3, padding="causal", groups=4),  # dot form (one output channel a group)
    Conv(2, 8, 21, 200, 16, 3, padding=2, dilation=2),  # gemm form
    # one row, gemm form: blocks of input channels share each transposed
    # tile of grad_out, several tiles a row
    Conv(2, 16, 1, 3000, 32, 5, padding="same"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cfg", THREAD_CONFIGS, ids=str)
def test_results_do_not_depend_on_thread_count(cfg, dtype, restore_threads):
    x, w, b, gy = make_inputs(cfg, dtype, seed=25)
    results = {}
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        results[n] = our_results(cfg, x, w, b, gy)
    for n in (2, 3):
        for o1, on in zip(results[1], results[n]):
            torch.testing.assert_close(on, o1, rtol=0, atol=0)
    assert_matches_reference(cfg, results[2], reference_results(cfg, x, w, b, gy), dtype)


# Depthwise rows of many taps. The taps kernel (microkernels.cpp,
# TapClasses) shares each loaded vector among the taps a whole vector apart
# where the dilation divides the vector width (1, 2, 4, 8 here), in blocks
# whose middle and ends it sums by different loops, and takes the taps one
# at a time otherwise (3): PyTorch's values, and the same bits in place and
# through copied windows (strided views), on any thread count, and for a
# causal sequence fed in chunks with its carried state.
LONG_DEPTHWISE_CONFIGS = [
    Conv(2, 3, 2, 300, 3, 20, padding="causal", groups=3),
    Conv(1, 2, 3, 517, 2, 33, padding=(5, 40), dilation=2, groups=2),
    Conv(2, 2, 2, 261, 2, 9, padding=(0, 3), dilation=4, groups=2),
    Conv(1, 2, 2, 300, 2, 17, padding="causal", dilation=3, groups=2),
    Conv(1, 1, 3, 1000, 1, 64, padding="causal"),
    # 8 taps a class or more on AVX-512 too (16 floats a vector): the
    # grad-weight's shared form there
    Conv(1, 2, 2, 700, 2, 40, padding="causal", dilation=8, groups=2),
    # few taps a class of 64-byte vectors (float at dilation 2, double at
    # 1), which on Zen 4 take AVX2's kernels (microkernels.cpp,
    # depthwise_micro_kernels), as K 20 and dilation 4 K 9 above do
    Conv(1, 2, 2, 400, 2, 12, padding="causal", dilation=2, groups=2),
    Conv(2, 2, 2, 300, 2, 12, padding=(3, 8), groups=2),
    # AVX2's rows for the forward and grad-input there, AVX-512's dot
    # products for grad-weight (float)
    Conv(1, 1, 2, 600, 1, 44, padding="same"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("cfg", LONG_DEPTHWISE_CONFIGS, ids=str)
def test_long_depthwise_rows_match_pytorch_with_the_same_bits_in_every_layout(cfg, dtype, restore_threads):
    torch.set_num_threads(2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=cfg.K + cfg.W)
    ours = our_results(cfg, x, w, b, gy, method="direct")
    assert_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), dtype)
    for layout in ("permuted", "sliced"):
        views = make_inputs(cfg, dtype, seed=cfg.K + cfg.W, layout=layout)
        strided = our_results(cfg, *views, method="direct")
        dense = our_results(cfg, *(t.contiguous() for t in views), method="direct")
        for name, o, d in zip(["output", "grad_x", "grad_weight", "grad_bias"], strided, dense):
            assert torch.equal(o, d), f"{layout} {name}"
    torch.set_num_threads(1)
    for name, o, o2 in zip(["output", "grad_x", "grad_weight", "grad_bias"],
                           our_results(cfg, x, w, b, gy, method="direct"), ours):
        assert torch.equal(o, o2), f"1 thread against 2: {name}"
    if cfg.padding == "causal":
        # chunks of 7 (all of it copied windows), 129 and the rest: the
        # outputs of one pass, bit for bit
        kw = dict(padding="causal", dilation=cfg.dilation, groups=cfg.groups, method="direct")
        state, outs, start = None, [], 0
        for n in (7, 129, cfg.W - 136):
            y, state = rowconv_ext.row_conv1d(x[..., start:start + n], w, b, **kw, initial_state=state,
                                              return_final_state=True)
            outs.append(y)
            start += n
        assert torch.equal(torch.cat(outs, -1), ours[0])


def test_sweep_under_one_thread(restore_threads):
    torch.set_num_threads(1)
    for cfg in SWEEP[::8]:
        x, w, b, gy = make_inputs(cfg, torch.float32, seed=26)
        assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy),
                                 torch.float32)


def test_memory_does_not_grow_with_the_stride():
    # Only the stride phases some tap reads are loaded: a stride of 50000 over
    # a short row costs no more than a small one (it once cost ~300 MB).
    cfg = Conv(1, 8, 1, 100000, 8, 3, stride=50000)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=27)
    assert_matches_reference(cfg, our_results(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy),
                             torch.float32)


def test_import_without_importing_torch_first():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import rowconv_ext; print(rowconv_ext.row_conv1d)"],
                          capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr


# Run in a fresh process whose glibc maps every block of 1 MiB or more afresh
# (a fixed mmap threshold): the results are then new memory, which the
# library advises (memory that a long-lived heap hands back, already
# resident, it leaves alone, so this test cannot run in the suite's process).
_HUGE_PAGE_CHILD = r"""
import sys, torch, rowconv_ext

def flags(address):
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(a, 16) for a in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(hex(address))

torch.manual_seed(41)
x = torch.randn(1, 2, 1, 5_000_000, requires_grad=True)  # y and grad_x: 40 MB each
w = torch.randn(1, 2, 2, 3, requires_grad=True)
y = rowconv_ext.row_conv1d(x, w, method=sys.argv[1])
(gx,) = torch.autograd.grad(y, x, torch.randn_like(y))
control = torch.empty_like(y)
for name, t in (("control", control), ("output", y), ("grad_x", gx)):
    # 4 MiB in: inside the 2 MiB-aligned part the hint covers
    print(name, t.nbytes, " ".join(flags(t.data_ptr() + 4 * 2**20)))
"""


def _huge_page_child_flags(method, mmap_threshold):
    """Runs _HUGE_PAGE_CHILD with glibc's mmap threshold at mmap_threshold
    bytes: {name: [nbytes, VmFlags...]} for the control, the output and grad_x."""
    import subprocess
    import sys
    env = dict(os.environ, GLIBC_TUNABLES=f"glibc.malloc.mmap_threshold={mmap_threshold}")
    done = subprocess.run([sys.executable, "-c", _HUGE_PAGE_CHILD, method], env=env, capture_output=True,
                          text=True, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    return {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage"),
                    reason="needs Linux with transparent huge pages (the hint the library gives)")
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_large_results_are_marked_for_huge_pages(method):
    """A new result of 32 MiB or more (y, grad_x) is advised MADV_HUGEPAGE,
    which /proc shows as the flag 'hg' on its memory: glibc maps such a
    block afresh, and 4 KiB faults on first write took half of a 78 MB
    forward here. A plain torch.empty of the same size is the control (no
    flag without the hint). The hint changes no values: results of that size
    are checked against PyTorch by
    test_outputs_larger_than_the_cache_are_stored_past_it_unchanged."""
    seen = _huge_page_child_flags(method, mmap_threshold=1048576)
    assert "hg" not in seen["control"][1:], seen["control"]
    for name in ("output", "grad_x"):
        assert int(seen[name][0]) >= 32 * 2**20
        assert "hg" in seen[name][1:], f"{name}: not advised for huge pages: {seen[name]}"


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage"),
                    reason="needs Linux with transparent huge pages (the hint the library gives)")
def test_large_results_from_the_heap_are_left_to_the_allocator():
    """With glibc's mmap threshold raised (the benchmarks' stable allocator),
    a 40 MB result comes from the heap, fresh pages while it grows: no huge
    page hint there (a madvised fault may compact memory first, and the
    heap's growing calls measured slower with it than with 4 KiB faults)."""
    seen = _huge_page_child_flags("direct", mmap_threshold=4294967295)
    for name in ("output", "grad_x"):
        assert int(seen[name][0]) >= 32 * 2**20
        assert "hg" not in seen[name][1:], f"{name}: heap memory advised for huge pages: {seen[name]}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("padding", ["causal", 0])  # rows on 64-byte boundaries, and not
# (Cin, Cout, groups): 16 channels, the fewest rows of 8 terms or more whose
# products stream (3-15 store plainly; streams_result); 72 output channels
# are more rows than the streaming store's buffer holds a stretch of (the
# gemm blocks store them themselves); (4, 16): the forward's rows in place
# (16 output rows, 20 terms an output) and (2, 4): grad-input's (2 rows, 20
# terms), whose tiles split off a first partial line where they start off one
@pytest.mark.parametrize("channels", [(16, 16, 1), (8, 8, 8), (2, 72, 1), (4, 16, 1), (2, 4, 1)],
                         ids=["dense", "depthwise", "many-outputs", "few-terms", "few-inputs"])
# 3 rows of 2101 (2097 'valid'): every row, and every output channel's row
# (3 * 2101 elements apart), starts at another place in a line, and so do
# the rows' second and third tiles; the last vectors are partial (the
# stores split off each tile's first partial line and carry a line cut by
# a stretch of columns to the next)
@pytest.mark.parametrize("H, W", [(4, 1024), (3, 2101)], ids=["4x1024", "3x2101"])
def test_outputs_larger_than_the_cache_are_stored_past_it_unchanged(channels, padding, dtype, H, W, restore_threads):
    """An output (or grad_x) of the last-level cache's size or more is stored
    non-temporally, whole lines of each row's stretch of columns in one run
    (the depthwise forward's row kernel also fetches its input ahead): the
    forward's and grad-input's values still match PyTorch's, and the first
    batch entries have the same bits as in a batch of two, whose outputs are
    stored plainly."""
    Cin, Cout, groups = channels
    sized = Cin if Cout <= 2 * Cin else Cout  # y, and grad_x where Cout <= 2 Cin, >= the L3
    B = -(-last_level_cache_bytes() // (sized * H * W * dtype.itemsize))
    cfg = Conv(B, Cin, H, W, Cout, 5, padding=padding, groups=groups)
    x, w, b, gy = make_inputs(cfg, dtype, seed=31)
    torch.set_num_threads(2)
    ours = our_results(cfg, x, w, b, gy, method="direct")
    assert_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), dtype)
    small_cfg = Conv(2, Cin, H, W, Cout, 5, padding=padding, groups=groups)
    small = our_results(small_cfg, x[:2], w, b, gy[:2], method="direct")
    for name, big, few in zip(["output", "grad_x"], ours[:2], small[:2]):
        assert torch.equal(big[:2], few), f"{name}: batch entries 0-1 differ from a batch of two"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
# (stride, groups, K, Cout): 2: the copied windows of every phase, fetched
# ahead; 4 groups of one channel, K 40: the depthwise grad-weight's shared
# taps; K 33: enough terms that the forward and grad-input fetch their next
# items (their results streamed past the cache); Cout 2: the forward's
# result stays below the streamed size while it fetches
@pytest.mark.parametrize("stride,groups,K,Cout", [(1, 1, 5, 4), (2, 1, 5, 4), (1, 4, 40, 4), (1, 1, 33, 4), (1, 1, 33, 2)],
                         ids=["dot", "stride2", "taps", "long", "long-small-result"])
def test_grad_weight_of_inputs_larger_than_the_cache_at_every_thread_count(dtype, stride, groups, K, Cout,
                                                                           restore_threads):
    """x and grad_out of the last-level cache's size or more, 2 or 4 output
    channels (grad-weight's dot form, one strip of rows, its runs of items
    split differently at 1 and 2 threads, the next step's lines fetched as
    it computes): the results match PyTorch's and have the same bits at 1
    and 2 threads. (It caught a fetch-ahead of the forward's rows that
    computed the wrong columns past the cache, where no other test looked;
    see docs/design.md, Zen 5.)"""
    C, H, W = 4, 4, 1024
    B = -(-last_level_cache_bytes() // (C * H * W * dtype.itemsize))  # x (and grad_out) >= the L3
    cfg = Conv(B, C, H, W, Cout, K, stride=stride, padding=(1, 2), groups=groups)
    x, w, b, gy = make_inputs(cfg, dtype, seed=33)
    ref = reference_results(cfg, x, w, b, gy)
    found = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        found[threads] = our_results(cfg, x, w, b, gy, method="direct")
    assert_matches_reference(cfg, found[2], ref, dtype)
    for name, one, two in zip(["output", "grad_x", "grad_weight", "grad_bias"], found[1], found[2]):
        assert torch.equal(one, two), f"{name}: 1 and 2 threads differ"


# x and grad_out together about half the L3: the range where the kernels
# time a few loads of their operands' lines to decide whether to fetch ahead
# (csrc/cpu/cache_residency.h); K 9 over 8 input channels and a stride-1
# 'same' padding: the forward's and grad-input's products have enough terms
# a line to fetch their next items, grad-weight its next steps
@pytest.mark.parametrize("chunked", [False, True], ids=["one-pass", "causal-chunk"])
def test_operands_of_half_the_cache_give_the_same_bits_from_memory_and_from_the_caches(chunked, restore_threads):
    """The same calls with their operands flushed from the caches (a larger
    buffer written first) and right after (the operands in the caches): the
    kernels may decide differently whether to fetch ahead; results match
    PyTorch's and have the same bits both times. As a chunk of a stream:
    causal, with carried state."""
    C, H, W, K = 8, 4, 1024, 9
    B = max(1, last_level_cache_bytes() // 2 // (2 * C * H * W * 4))
    padding = "causal" if chunked else "same"
    cfg = Conv(B, C, H, W, C, K, padding=padding)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=35)
    torch.set_num_threads(2)
    flush = torch.empty(last_level_cache_bytes() // 2, dtype=torch.float32)
    runs = []
    for _ in range(2):  # first from memory, then from the caches
        if not runs:
            flush.uniform_()
        if chunked:
            state = torch.randn(B, C, H, K - 1, generator=torch.Generator().manual_seed(36))
            y, final = rowconv_ext.row_conv1d(x, w, b, padding="causal", initial_state=state,
                                              return_final_state=True)
            ref = rowconv_ext.reference_row_conv1d(torch.cat([state, x], dim=3).double(), w.double(), b.double())
            # float32 sums of C * K = 72 terms: each output off by at most about
            # 72 roundings of the largest magnitude
            tol = C * K * 2.0**-23 * ref.abs().max().item()
            torch.testing.assert_close(y.double(), ref, rtol=0, atol=tol)
            assert torch.equal(final, x[..., -(K - 1):])
            runs.append((y,))
        else:
            ours = our_results(cfg, x, w, b, gy, method="direct")
            assert_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), torch.float32)
            runs.append(ours)
    for name, cold, warm in zip(["output", "grad_x", "grad_weight", "grad_bias"], *runs):
        assert torch.equal(cold, warm), f"{name}: from memory and from the caches differ"


# (dtype, chunk, dilation): rows of a chunk 2 KiB (float) or 4 KiB (double),
# whose next lines in memory are the row's next chunk: the op fetches the
# next row and the taps kernel fetches nothing; rows of 6 KiB: both fetch
@pytest.mark.parametrize("dtype,chunk,dilation", [(torch.float32, 512, 1), (torch.float32, 1536, 2),
                                                  (torch.float64, 512, 1)], ids=["short", "long", "double"])
def test_depthwise_chunks_as_views_of_one_input_match_pytorch_and_contiguous_chunks(dtype, chunk, dilation,
                                                                                    restore_threads):
    """A depthwise causal convolution run in chunks x[..., i:i+chunk] of one
    x (each row's chunk followed in memory by the same row's next chunk, not
    by the next row), outputs of the last-level cache's size or more (stored
    past the caches): every chunk has the same bits as a contiguous copy of
    it, and the chunks together match PyTorch's one pass over the state and
    x."""
    H, K, n_chunks = 64, 4, 2
    B = -(-last_level_cache_bytes() // (H * chunk * dtype.itemsize))  # a chunk's output >= the L3
    gen = torch.Generator().manual_seed(41)
    x = torch.randn(B, 1, H, n_chunks * chunk, generator=gen, dtype=dtype)
    w = torch.randn(H, 1, 1, K, generator=gen, dtype=dtype)
    b = torch.randn(H, 1, generator=gen, dtype=dtype)
    state0 = torch.randn(B, 1, H, dilation * (K - 1), generator=gen, dtype=dtype)
    torch.set_num_threads(2)
    outputs, state, state_c = [], state0, state0
    for view in x.split(chunk, dim=3):
        y, state = rowconv_ext.row_conv1d(view, w, b, padding="causal", dilation=dilation, initial_state=state,
                                          return_final_state=True)
        y_c, state_c = rowconv_ext.row_conv1d(view.contiguous(), w, b, padding="causal", dilation=dilation,
                                              initial_state=state_c, return_final_state=True)
        assert torch.equal(y, y_c), "a chunk as a view and as a contiguous copy differ"
        assert torch.equal(state, state_c)
        outputs.append(y)
    full = torch.cat([state0, x], dim=3).double().reshape(B, H, -1)
    ref = torch.nn.functional.conv1d(full, w.double().reshape(H, 1, K), b.double().reshape(H), dilation=dilation,
                                     groups=H).reshape(B, 1, H, -1)
    # sums of K products and the bias: each output off by at most about K + 1
    # roundings of the largest magnitude
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(torch.cat(outputs, dim=3).double(), ref, rtol=0,
                               atol=(K + 1) * eps * ref.abs().max().item())
    assert torch.equal(state, x[..., -dilation * (K - 1):])
