"""The CUDA kernels on a real GPU, against stock PyTorch (the float64
reference on the CPU, from the same values): the sweep, every dtype, strided
views, the direct fallbacks, gradcheck, bitwise-equal results over repeated
runs, agreement with the CPU kernels, autocast, torch.compile, torch.func,
streams and errors for mixed devices. Skipped where torch sees no GPU (the
CUDA kernel code is then proven by the emulator: test_cuda_emulation.py and
scripts/cuda_sanitizers.sh). The other test modules run on the GPU too with
`pytest --device cuda` (scripts/gpu_session.sh)."""
import pytest
import torch
from torch import func

import rowconv_ext
from conftest import (SWEEP, Conv, assert_fft_matches_reference, assert_matches_reference, fft_error_bound,
                      fft_scales, make_inputs, normwise_error, reduction_lengths, reference_results, tolerance, wide)
from rowconv_ext.method import cost_plan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU (torch.cuda.is_available() is False)")

ref = rowconv_ext.reference_row_conv1d
ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128]


def _cpu_inputs(cfg, dtype, seed, layout="contiguous"):
    return make_inputs(cfg, dtype, seed=seed, layout=layout, device="cpu")


def _run(cfg, x, w, b, gy, device="cuda", method="auto"):
    """Output and the three grads of row_conv1d on `device` (same layout), back on the CPU."""
    leaves = [t.detach().to(device).requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    y = rowconv_ext.row_conv1d(leaves[0], leaves[1], leaves[2] if b is not None else None, **cfg.kwargs,
                               method=method)
    grads = torch.autograd.grad(y, leaves, gy.to(device))
    return tuple(t.cpu() for t in (y.detach(),) + grads)


@pytest.mark.parametrize("cfg", SWEEP, ids=str)
def test_float32_sweep(cfg):
    x, w, b, gy = _cpu_inputs(cfg, torch.float32, seed=41)
    assert_matches_reference(cfg, _run(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), torch.float32)


@pytest.mark.parametrize("dtype", ALL_DTYPES[1:], ids=str)
@pytest.mark.parametrize("cfg", SWEEP[::5], ids=str)
def test_other_dtypes(cfg, dtype):
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=42)
    assert_matches_reference(cfg, _run(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
@pytest.mark.parametrize("layout", ["permuted", "sliced"])
def test_strided_views(layout, dtype):
    # the views are made on the GPU (a .cuda() of a sliced view would be a dense copy)
    cfg = Conv(2, 4, 3, 300, 6, 5, stride=2, padding=(2, 1), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=43, layout=layout, device="cuda")
    assert x.is_cuda and not x.is_contiguous() and not gy.is_contiguous()
    assert_matches_reference(cfg, _run(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


DIRECT = [
    Conv(1, 2, 1, 4000, 2, 64, dilation=300, padding="same"),  # one channel's tile > 48 KiB: every direct kernel
    Conv(1, 2, 1, 12000, 2, 4, dilation=5000, padding="same"),  # grad-weight direct, 4 taps per chunk
    Conv(1, 2, 1, 5, 2, 2, stride=2**32, padding=1),  # stride past int32: grad-input direct
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cfg", DIRECT, ids=str)
def test_direct_paths(cfg, dtype):
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=44)
    assert_matches_reference(cfg, _run(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


def test_expanded_inputs():
    # zero strides, as autograd hands over for y.sum()
    cfg = Conv(3, 4, 2, 150, 8, 3, padding=1, groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=45, device="cuda")
    x, gy = x[:1].expand_as(x), gy[:1, :, :1].expand_as(gy)
    assert_matches_reference(cfg, _run(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), torch.float32)


@pytest.mark.parametrize("cfg", [Conv(2, 4, 2, 21, 4, 3, stride=2, padding=1, dilation=2, groups=2),
                                 Conv(1, 2, 1, 70, 2, 7, padding="causal", groups=2)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_gradcheck(cfg, dtype):
    x, w, b, _ = make_inputs(cfg, dtype, seed=46, device="cuda")
    leaves = [t.requires_grad_() for t in (x, w, b)]

    def f(*args):
        return rowconv_ext.row_conv1d(*args, **cfg.kwargs)

    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, leaves, check_fwd_over_rev=True)


DETERMINISM = [
    Conv(64, 16, 4, 500, 16, 5, padding=2),  # split sums in grad-weight and grad-bias
    Conv(8, 1, 64, 2000, 1, 20, padding="same"),  # depthwise, sliding window
    Conv(1, 2, 1, 4000, 2, 64, dilation=300, padding="same"),  # direct kernels
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.complex64], ids=str)
@pytest.mark.parametrize("cfg", DETERMINISM, ids=str)
def test_results_are_bitwise_equal_over_runs(cfg, dtype):
    # no floating-point atomics: the same inputs give the same bits, every time
    x, w, b, gy = make_inputs(cfg, dtype, seed=47, device="cuda")
    runs = [_run(cfg, x, w, b, gy) for _ in range(3)]
    for run in runs[1:]:
        for first, again in zip(runs[0], run):
            assert torch.equal(first, again)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", SWEEP[::7], ids=str)
def test_cpu_and_gpu_kernels_agree(cfg, dtype):
    # each is within the reference's tolerance, so within twice it of the other
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=48)
    for name, g, c, n in zip(["output", "grad_x", "grad_weight", "grad_bias"], _run(cfg, x, w, b, gy),
                             _run(cfg, x, w, b, gy, device="cpu"), reduction_lengths(cfg)):
        atol, rtol = tolerance(dtype, n)
        torch.testing.assert_close(wide(g), wide(c), atol=2 * atol, rtol=2 * rtol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_autocast_computes_in_the_autocast_dtype(dtype):
    cfg = Conv(4, 6, 3, 200, 8, 5, padding="same", groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=49, device="cuda")
    leaves = [t.requires_grad_() for t in (x, w, b)]
    with torch.autocast("cuda", dtype=dtype):
        y = rowconv_ext.row_conv1d(*leaves, **cfg.kwargs)
    assert y.dtype == dtype
    # the reference on the inputs as autocast rounds them, in float64
    y_ref = ref(*(wide(t.detach().to(dtype).cpu()) for t in (x, w, b)), **cfg.kwargs)
    atol, rtol = tolerance(dtype, reduction_lengths(cfg)[0])
    torch.testing.assert_close(wide(y.detach()).cpu(), y_ref, atol=atol, rtol=rtol)
    grads = torch.autograd.grad(y, leaves, gy.to(dtype))
    assert all(g.dtype == torch.float32 for g in grads)  # back to the float32 leaves
    with torch.autocast("cuda", dtype=dtype, enabled=False):
        assert rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs).dtype == torch.float32


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_forward_and_backward(dynamic):
    torch._dynamo.reset()
    cfg = Conv(2, 4, 3, 40, 6, 5, stride=2, padding="causal", dilation=2, groups=2)

    def step(fn):
        return lambda x, w, b: torch.tanh(fn(x, w, b, **cfg.kwargs)).square().sum()

    compiled = torch.compile(step(rowconv_ext.row_conv1d), fullgraph=True, dynamic=dynamic)
    for seed in (0, 1):  # a second call runs the cached graph
        x, w, b, _ = make_inputs(cfg, torch.float64, seed=50 + seed, device="cuda")
        leaves_c = [t.clone().requires_grad_() for t in (x, w, b)]
        leaves_r = [t.cpu().requires_grad_() for t in (x, w, b)]
        loss_c = compiled(*leaves_c)
        loss_r = step(ref)(*leaves_r)
        torch.testing.assert_close(loss_c.cpu(), loss_r)
        for gc, gr in zip(torch.autograd.grad(loss_c, leaves_c), torch.autograd.grad(loss_r, leaves_r)):
            torch.testing.assert_close(gc.cpu(), gr)


def test_compile_fullgraph_module_float32():
    torch._dynamo.reset()
    torch.manual_seed(51)
    module = rowconv_ext.RowConv1d(10, 15, 15, 3, padding=1)  # the forum layer
    x = torch.randn(32, 15, 10, 100)
    compiled = torch.compile(module.cuda(), fullgraph=True)
    y = compiled(x.cuda())
    y_ref = ref(*(wide(t.detach().cpu()) for t in (x, module.weight, module.bias)), padding=1)
    atol, rtol = tolerance(torch.float32, 15 * 3 + 1)
    torch.testing.assert_close(wide(y.detach()).cpu(), y_ref, atol=atol, rtol=rtol)
    y.square().sum().backward()
    assert module.weight.grad.is_cuda and module.weight.grad.shape == module.weight.shape


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_torch_func_transforms(dtype):
    """grad, vjp, jvp, jacrev, jacfwd, hessian and vmap on the GPU against the
    same transforms of the reference on the CPU."""
    cfg = Conv(2, 4, 3, 11, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, dtype, seed=52, device="cuda")
    tangent = torch.randn(w.shape, dtype=dtype, generator=torch.Generator().manual_seed(53)).cuda()
    xs = torch.randn((3,) + x.shape, dtype=dtype, generator=torch.Generator().manual_seed(54)).cuda()

    def transforms(fn, x, w, b, gy, tangent, xs):
        def out(x, w, b):
            return fn(x, w, b, **cfg.kwargs)

        def loss(x, w, b):  # real, and not quadratic: second derivatives involve every op
            return (out(x, w, b).abs() ** 3).sum()

        results = [func.grad(loss, argnums=(0, 1, 2))(x, w, b), func.vjp(out, x, w, b)[1](gy),
                   func.jvp(lambda w: out(x, w, b), (w,), (tangent,))[1],
                   func.vmap(lambda x: out(x, w, b))(xs)]
        if not dtype.is_complex:  # jacobians and hessians of complex functions: not holomorphic here
            results += [func.jacrev(out, argnums=1)(x, w, b), func.jacfwd(out, argnums=0)(x, w, b),
                        func.hessian(loss, argnums=1)(x, w, b)]
        return results

    args = (x, w, b, gy, tangent, xs)
    ours = transforms(rowconv_ext.row_conv1d, *args)
    theirs = transforms(ref, *(t.cpu() for t in args))
    for o, t in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
        assert o.is_cuda
        torch.testing.assert_close(o.cpu(), t, rtol=1e-10, atol=1e-10)


def test_module_on_the_gpu_matches_the_module_on_the_cpu():
    torch.manual_seed(55)
    module = rowconv_ext.RowConv1d(4, 6, 6, 5, padding="causal", dilation=2, dtype=torch.float64)
    x = torch.randn(3, 6, 4, 50, dtype=torch.float64)
    y_cpu = module(x)
    g_cpu = torch.autograd.grad(y_cpu.square().sum(), list(module.parameters()))
    module.cuda()
    y_gpu = module(x.cuda())
    g_gpu = torch.autograd.grad(y_gpu.square().sum(), list(module.parameters()))
    torch.testing.assert_close(y_gpu.cpu(), y_cpu)
    for a, c in zip(g_gpu, g_cpu):
        torch.testing.assert_close(a.cpu(), c)


def test_runs_on_the_current_stream():
    cfg = Conv(16, 8, 8, 1000, 8, 7, padding=3)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=56, device="cuda")
    expect = _run(cfg, x, w, b, gy)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        leaves = [t.detach().requires_grad_() for t in (x, w, b)]
        y = rowconv_ext.row_conv1d(*leaves, **cfg.kwargs)
        grads = torch.autograd.grad(y, leaves, gy)
        got = [t.cpu() for t in (y.detach(),) + grads]  # copies on the side stream: ordered after the kernels
    for e, g in zip(expect, got):
        assert torch.equal(e, g)


def test_mixed_devices_are_a_clear_error():
    x = torch.randn(2, 4, 3, 10, device="cuda")
    with pytest.raises(RuntimeError, match="weight must be on the same device as x"):
        rowconv_ext.row_conv1d(x, torch.randn(3, 4, 4, 3))


# The FFT method on the GPU (torch.fft: cuFFT), norm-wise against the float64
# reference on the CPU (conftest.fft_error_bound; test_fft_method.py explains
# the bound and runs everything else with --device cuda).
FFT_CONFIGS = [
    Conv(2, 4, 3, 997, 6, 31, stride=2, padding=(5, 9), dilation=3, groups=2),  # W prime
    Conv(1, 2, 2, 1201, 4, 300, padding="causal", groups=2),  # K = 300
    Conv(2, 3, 3, 509, 3, 64, padding="same", dilation=2, groups=3),  # depthwise
    Conv(3, 2, 2, 1, 3, 4, padding=(3, 0)),  # W = 1
]


def _fft_conv(cfg):
    left, right = cfg.pads()
    return (cfg.stride, left, right, cfg.dilation, cfg.groups)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", FFT_CONFIGS, ids=str)
def test_fft_method_every_dtype(cfg, dtype):
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=60)
    block = cost_plan(x.cuda(), w.cuda(), *_fft_conv(cfg), fft_block=-2)["block"]
    assert_fft_matches_reference(cfg, _run(cfg, x, w, b, gy, method="fft"), reference_results(cfg, x, w, b, gy),
                                 dtype, block, fft_scales(cfg, x, w, gy))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
@pytest.mark.parametrize("cfg", FFT_CONFIGS[:2], ids=str)
def test_fft_forced_transform_lengths(cfg, dtype):
    """Many blocks (n = span, span + 1) and one block for everything, every op."""
    x, w, b, gy = make_inputs(cfg, dtype, seed=61, layout="sliced", device="cuda")
    expect = reference_results(cfg, x, w, b, gy)
    conv = _fft_conv(cfg)
    span = cfg.dilation * (cfg.K - 1) + 1
    for block in (span, span + 1, cfg.W + sum(cfg.pads()) + span):
        ours = (torch.ops.rowconv.row_conv1d(x, w, b, *conv, block),
                torch.ops.rowconv.row_conv1d_grad_input(gy, w.conj(), cfg.W, *conv, block),
                torch.ops.rowconv.row_conv1d_grad_weight(gy, x.conj(), cfg.K, *conv, block),
                torch.ops.rowconv.row_conv1d_grad_bias(gy))
        assert all(t.is_cuda for t in ours)
        assert_fft_matches_reference(cfg, ours, expect, dtype, block, fft_scales(cfg, x, w, gy))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_fft_method_keeps_full_precision_where_matmuls_may_use_tf32(dtype):
    # The channel mix is a complex matmul: with TF32 allowed (as many training
    # scripts set it) cuBLAS would run it at 1e-3 relative, far past the bound
    cfg = FFT_CONFIGS[0]
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=63)
    block = cost_plan(x.cuda(), w.cuda(), *_fft_conv(cfg), fft_block=-2)["block"]
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 for float32 matmuls
        ours = _run(cfg, x, w, b, gy, method="fft")
    finally:
        torch.set_float32_matmul_precision(old)
    assert_fft_matches_reference(cfg, ours, reference_results(cfg, x, w, b, gy), dtype, block,
                                 fft_scales(cfg, x, w, gy))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_fft_gradcheck(dtype):
    cfg = Conv(2, 4, 2, 13, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2)
    x, w, b, _ = make_inputs(cfg, dtype, seed=62, device="cuda")
    leaves = [t.requires_grad_() for t in (x, w, b)]

    def f(*args):
        return rowconv_ext.row_conv1d(*args, **cfg.kwargs, method="fft")

    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_batched_grad=True, fast_mode=True)
    assert torch.autograd.gradgradcheck(f, leaves, check_fwd_over_rev=True, fast_mode=True)


def test_auto_runs_what_choose_method_says():
    """With the CUDA cost constants: a short kernel (direct) and a long one
    (the FFT, with the constants of csrc/fft_plan.cpp; if a measurement on
    the GPU moves the boundary, pick the long shape again). 'auto' is bit for
    bit the chosen method, and the reference's numbers."""
    choices = set()
    for cfg in (Conv(2, 4, 3, 300, 6, 9, padding=(4, 4), groups=2, bias=False),
                Conv(1, 8, 8, 4096, 8, 1023, padding="causal", bias=False)):
        x, w, _, gy = make_inputs(cfg, torch.float32, seed=63, device="cuda")
        plan = cost_plan(x, w, *_fft_conv(cfg))
        choice = rowconv_ext.choose_method(x, w, **cfg.kwargs)
        assert choice == ("fft" if plan["fft_seconds"] < plan["direct_seconds"] else "direct")
        choices.add(choice)
        y = rowconv_ext.row_conv1d(x, w, **cfg.kwargs)
        assert torch.equal(y, rowconv_ext.row_conv1d(x, w, **cfg.kwargs, method=choice))
        err, ref_norm = normwise_error(y, ref(wide(x.cpu()), wide(w.cpu()), **cfg.kwargs))
        assert err <= fft_error_bound(torch.float32, plan["block"], fft_scales(cfg, x, w, gy)[0], ref_norm)
    assert choices == {"direct", "fft"}


# The decode step (kernels/update.cuh) on the GPU: test_streaming_update's
# tests with their tensors on CUDA (references on the CPU, in float64).
import test_streaming_update as streaming  # noqa: E402


@pytest.fixture
def streaming_on_gpu(monkeypatch):
    monkeypatch.setattr(streaming, "DEVICE", "cuda")
    return streaming


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", streaming.STEP_CONFIGS, ids=streaming._ids)
def test_update_single_steps(streaming_on_gpu, cfg, dtype):
    streaming_on_gpu.test_single_steps_equal_the_full_causal_forward(cfg, dtype)


def test_update_chunks_circular_pools_views_and_module(streaming_on_gpu):
    s = streaming_on_gpu
    for dtype in (torch.float32, torch.bfloat16, torch.complex64):
        s.test_chunks_of_several_steps_including_more_than_the_state_holds(dtype, 3)
    for dtype in (torch.float32, torch.float16, torch.complex128):
        s.test_circular_buffer_equals_the_shifted_one(dtype, torch.int32)
    s.test_circular_buffer_writes_only_the_new_positions()
    s.test_state_pool_permuted_and_padded(torch.complex64)
    s.test_state_pool_with_circular_buffer()
    s.test_strided_views_of_x_and_state_are_read_and_updated_in_place()
    s.test_no_bias_no_input_channels_and_no_output_channels()
    s.test_module_steps_equal_its_forward(False)
    s.test_module_steps_equal_its_forward(True)


def test_update_errors_opcheck_and_compile(streaming_on_gpu):
    s = streaming_on_gpu
    for case in range(len(s._bad_cases())):
        s.test_errors_name_the_argument_and_write_nothing(case)
    s.test_state_sharing_memory_with_x_is_refused()
    s.test_mismatched_devices_are_refused()
    s.test_requires_grad_under_grad_mode_is_refused("weight")
    s.test_opcheck()
    s.test_compile_fullgraph_decode_loop()


def test_update_index_vectors_on_another_device_are_refused():
    a = streaming._good()
    a = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in a.items()}
    for name in ("cache_seqlens", "state_indices"):
        with pytest.raises(RuntimeError, match=f"{name} must be on the same device as x"):
            rowconv_ext.row_conv1d_update(**a, **{name: torch.zeros(2, dtype=torch.int64)})


def test_update_large_depthwise_decode_batch():
    """The depthwise decode shape of the benchmark: many blocks of 128 threads."""
    gen = torch.Generator().manual_seed(44)
    B, H, K = 64, 1024, 4
    seq = torch.randn(B, 1, H, K + 2, generator=gen)
    w, b = torch.randn(H, 1, 1, K, generator=gen), torch.randn(H, 1, generator=gen)
    want, bound = streaming.expected_and_tolerance(seq, w, b, 1, 1)
    state = seq[..., :K - 1].clone().cuda()
    for t in range(3):
        y = rowconv_ext.row_conv1d_update(seq[..., K - 1 + t:K + t].cuda(), state, w.cuda(), b.cuda())
        streaming.assert_close_bound(y, want[..., t:t + 1], bound[..., t:t + 1])
    assert torch.equal(state.cpu(), seq[..., 3:K + 2])


def test_update_with_a_state_pool_replays_in_a_cuda_graph():
    """Decoding engines capture the step in a CUDA graph: a pooled step reads
    no index values on the host while the stream is capturing (a sync there
    breaks the capture), and its kernel skips rows past the pool. Replays
    against the float64 reference, pool rows moved between replays."""
    gen = torch.Generator().manual_seed(45)
    B, C, H, K, d, pool = 3, 4, 2, 3, 2, 5
    S = d * (K - 1)
    w, b = torch.randn(H, C, C // 2, K, generator=gen), torch.randn(H, C, generator=gen)
    seq = torch.randn(pool, C, H, S + 4, generator=gen)
    state = seq[..., :S].clone().cuda()
    x = torch.zeros(B, C, H, 1, device="cuda")
    rows = torch.tensor([4, -1, 0], device="cuda")
    wc, bc = w.cuda(), b.cuda()
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture (as torch.cuda.graphs advises)
        rowconv_ext.row_conv1d_update(x, state.clone(), wc, bc, d, 2, state_indices=rows)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = rowconv_ext.row_conv1d_update(x, state, wc, bc, d, 2, state_indices=rows)
    # capture records, nothing runs: the state is still the sequence's start
    assert torch.equal(state.cpu(), seq[..., :S])
    for t, order in enumerate(([4, -1, 0], [4, 9, 0], [4, -1, 0])):  # 9: past the pool, skipped
        rows.copy_(torch.tensor(order))
        live = [r for r in order if 0 <= r < pool]
        before = state.cpu()
        x.copy_(seq[[r if 0 <= r < pool else 0 for r in order], ..., S + t:S + t + 1])
        graph.replay()
        torch.cuda.synchronize()
        for e, r in enumerate(order):
            if r in live:
                window = torch.cat([before[r], seq[r, ..., S + t:S + t + 1]], -1).unsqueeze(0)
                want, bound = streaming.expected_and_tolerance(window, w, b, d, 2)
                streaming.assert_close_bound(y[e:e + 1].cpu(), want, bound)
            else:
                assert torch.equal(y[e].cpu(), torch.zeros(C, H, 1))
        after = state.cpu()
        for r in range(pool):
            expected = torch.cat([before[r], seq[r, ..., S + t:S + t + 1]], -1)[..., 1:] if r in live else before[r]
            assert torch.equal(after[r], expected)


# Carried state (initial_state / return_final_state): the CUDA forward and
# grad-weight kernels read x's prefix; chunked runs equal one pass.
STATE_CONFIGS = [
    Conv(2, 4, 3, 600, 6, 3, padding="causal", dilation=2, groups=2),  # tiled, 2 tiles
    Conv(2, 3, 2, 5, 3, 9, padding="causal", dilation=2, groups=3),  # W < dilation * (K - 1), depthwise
    Conv(1, 12, 1, 130, 72, 4, padding="causal"),  # several channel lanes
]


def _state_reference(cfg, x, w, b, s, gy):
    """Output and grads of x, weight, bias, state: stock PyTorch on torch.cat([state, x], -1), float64, CPU."""
    leaves = [wide(t.detach().cpu()).requires_grad_() for t in (x, w, s) + ((b,) if b is not None else ())]
    y = ref(torch.cat([leaves[2], leaves[0]], -1), leaves[1], leaves[3] if b is not None else None, 1, 0,
            cfg.dilation, cfg.groups)
    return (y.detach(),) + torch.autograd.grad(y, leaves, wide(gy.cpu()))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", STATE_CONFIGS, ids=str)
def test_chunked_with_state_equals_one_pass_on_the_gpu(cfg, dtype):
    x, w, b, gy = _cpu_inputs(cfg, dtype, seed=51)
    S = cfg.dilation * (cfg.K - 1)
    s = make_inputs(Conv(cfg.B, cfg.Cin, cfg.H, S, 1, 1), dtype, seed=52, layout="sliced", device="cpu")[0]
    leaves = [t.detach().to("cuda").requires_grad_() for t in (x, w, s, b)]
    state, outs, start = leaves[2], [], 0
    for n in (1, S + 1, 2, cfg.W):  # chunks shorter and longer than the state
        n = min(n, cfg.W - start)
        if n <= 0:
            break
        y, state = rowconv_ext.row_conv1d(leaves[0][..., start:start + n], leaves[1], leaves[3], padding="causal",
                                          dilation=cfg.dilation, groups=cfg.groups, method="direct",
                                          initial_state=state, return_final_state=True)
        outs.append(y)
        start += n
    y = torch.cat(outs, -1)
    grads = torch.autograd.grad(y, leaves, gy.cuda())
    ours = [t.cpu() for t in (y.detach(), grads[0], grads[1], grads[2], grads[3])]
    refs = _state_reference(cfg, x, w, b, s, gy)
    cin_g, cout_g = cfg.Cin // cfg.groups, cfg.Cout // cfg.groups
    for name, o, r, R in zip(("output", "grad_x", "grad_weight", "grad_state", "grad_bias"), ours, refs,
                             (cin_g * cfg.K + 1, cout_g * cfg.K, cfg.B * cfg.W, cout_g * cfg.K, cfg.B * cfg.W)):
        atol, rtol = tolerance(dtype, R)
        if dtype in (torch.float16, torch.bfloat16):
            # a gradient summed over the 4 chunks' results in dtype: up to 4 more roundings of its size
            atol += 4 * torch.finfo(dtype).eps * r.abs().max().item()
        torch.testing.assert_close(wide(o), r, atol=atol, rtol=rtol, msg=lambda m: f"{cfg} {name}: {m}")


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_gradcheck_through_initial_state_on_the_gpu(dtype, method):
    cfg = Conv(2, 4, 2, 7, 2, 3, padding="causal", dilation=2, groups=2)
    x, w, b, _ = _cpu_inputs(cfg, dtype, seed=53)
    s = torch.randn(2, 4, 2, 4, dtype=dtype)
    leaves = tuple(t.cuda().requires_grad_() for t in (x, w, b, s))

    def f(x, w, b, s):
        return rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=2, groups=2, method=method,
                                      initial_state=s, return_final_state=True)

    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, leaves, check_fwd_over_rev=True)
