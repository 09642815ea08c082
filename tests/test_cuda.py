"""The CUDA kernels on a real GPU, against stock PyTorch (float64 reference on
the CPU from the same values): the sweep, the dtypes, strided views, the
fallback paths, gradcheck, results independent of run, and errors for mixed
devices. Skipped where torch sees no GPU (the CUDA kernel code is then
proven by the emulator: test_cuda_emulation.py and scripts/cuda_sanitizers.sh)."""
import pytest
import torch

import rowconv_ext
from conftest import SWEEP, Conv, assert_matches_reference, make_inputs, reference_results

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def _on_gpu(cfg, x, w, b, gy):
    leaves = [t.detach().cuda().requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    y = rowconv_ext.row_conv1d(leaves[0], leaves[1], leaves[2] if b is not None else None, **cfg.kwargs)
    grads = torch.autograd.grad(y, leaves, gy.cuda())
    return tuple(t.cpu() for t in (y.detach(),) + grads)


@pytest.mark.parametrize("cfg", SWEEP, ids=str)
def test_float32_sweep(cfg):
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=41)
    assert_matches_reference(cfg, _on_gpu(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("cfg", SWEEP[::5], ids=str)
def test_other_dtypes(cfg, dtype):
    x, w, b, gy = make_inputs(cfg, dtype, seed=42)
    assert_matches_reference(cfg, _on_gpu(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), dtype)


@pytest.mark.parametrize("layout", ["permuted", "sliced"])
def test_strided_views(layout):
    cfg = Conv(2, 4, 3, 300, 6, 5, stride=2, padding=(2, 1), dilation=2, groups=2)
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=43, layout=layout)
    assert_matches_reference(cfg, _on_gpu(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), torch.float32)


def test_long_dilated_kernel_takes_the_direct_path():
    cfg = Conv(1, 2, 1, 40000, 2, 64, dilation=300, padding="same")  # one channel's tile > 48 KiB
    x, w, b, gy = make_inputs(cfg, torch.float32, seed=44)
    assert_matches_reference(cfg, _on_gpu(cfg, x, w, b, gy), reference_results(cfg, x, w, b, gy), torch.float32)


def test_gradcheck_and_deterministic():
    cfg = Conv(2, 4, 2, 21, 4, 3, stride=2, padding=1, dilation=2, groups=2)
    x, w, b, _ = make_inputs(cfg, torch.float64, seed=45)
    leaves = [t.cuda().requires_grad_() for t in (x, w, b)]

    def f(*args):
        return rowconv_ext.row_conv1d(*args, **cfg.kwargs)

    assert torch.autograd.gradcheck(f, leaves)
    assert torch.autograd.gradgradcheck(f, leaves)
    # no floating-point atomics: the weight gradient is the same on every run
    runs = [torch.autograd.grad(f(*leaves).sum(), leaves[1])[0] for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs)


def test_mixed_devices_are_a_clear_error():
    x = torch.randn(2, 4, 3, 10, device="cuda")
    with pytest.raises(RuntimeError, match="weight must be on the same device as x"):
        rowconv_ext.row_conv1d(x, torch.randn(3, 4, 4, 3))
