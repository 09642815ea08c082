"""Shared helpers: random problem configurations, inputs in several memory
layouts, the stock-PyTorch ground truth (computed in float64 on the very same
values), and tolerances derived from the length of each reduction.

`pytest --device cuda` puts make_inputs' tensors on the GPU, so every test
built on it runs the CUDA kernels; the values are drawn on the CPU either way
and the reference is computed from them on the CPU."""
import dataclasses
import math
import random

import pytest
import torch

import rowconv_ext

# Where make_inputs puts its tensors: set from --device at start-up.
DEVICE = "cpu"

# Tests that cannot mean anything on a GPU, or build CPU tensors of their own
# next to make_inputs' (the GPU equivalents are in test_cuda.py).
_CPU_ONLY = {
    "test_cpu_isa.py": "CPU instruction-set builds",
    "test_results_do_not_depend_on_thread_count": "CPU thread counts",
    "test_sweep_under_one_thread": "CPU thread counts",
    "test_backward_ops_are_differentiable": "makes a CPU grad_out of its own",
    "test_torch_func_and_vmap_complex": "makes CPU tensors of its own",
    "test_torch_func_transforms_match_the_reference": "draws tangents with a CPU generator",
    "test_vmap_of_jacrev_and_jacfwd_nested": "makes CPU tensors of its own",
    "test_compile_fullgraph_with_torch_func": "makes CPU tensors of its own",
}


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda"),
                     help="device of make_inputs' tensors (default cpu)")
    parser.addoption("--every-nth", type=int, default=1, metavar="N",
                     help="run the 1st, (N+1)th, (2N+1)th... parametrization of each test function "
                          "(every function at least once; default 1: all). scripts/cuda_build.sh "
                          "checks the oldest supported torch this way where no GPU is there")


def pytest_configure(config):
    global DEVICE
    DEVICE = config.getoption("--device")
    if DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no GPU")
        # Stock PyTorch in full float32: cuDNN would use TF32 by default.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def _keep_every_nth(config, items, n):
    seen = {}  # test function -> parametrizations met so far
    kept, dropped = [], []
    for item in items:
        key = (item.path, getattr(item, "originalname", item.name))
        index = seen[key] = seen.get(key, -1) + 1
        (kept if index % n == 0 else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_modifyitems(config, items):
    n = config.getoption("--every-nth")
    if n < 1:
        raise pytest.UsageError(f"--every-nth: expected N >= 1, got {n}")
    if n > 1:
        _keep_every_nth(config, items, n)
    if DEVICE == "cpu":
        return
    for item in items:
        reason = _CPU_ONLY.get(item.path.name) or _CPU_ONLY.get(getattr(item, "originalname", item.name))
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"--device {DEVICE}: {reason}"))


@dataclasses.dataclass(frozen=True)
class Conv:
    B: int
    Cin: int
    H: int
    W: int
    Cout: int
    K: int
    stride: int = 1
    padding: object = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def pads(self):
        total = self.dilation * (self.K - 1)
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            return total // 2, total - total // 2
        if self.padding == "causal":
            return total, 0
        if isinstance(self.padding, tuple):
            return self.padding
        return self.padding, self.padding

    @property
    def out_width(self):
        left, right = self.pads()
        return (self.W + left + right - self.dilation * (self.K - 1) - 1) // self.stride + 1

    def __str__(self):
        s = f"B{self.B}-C{self.Cin}-H{self.H}-W{self.W}-O{self.Cout}-K{self.K}"
        if self.stride != 1:
            s += f"-s{self.stride}"
        if self.padding != 0:
            p = self.padding if isinstance(self.padding, str) else "x".join(map(str, self.pads()))
            s += f"-p{p}"
        if self.dilation != 1:
            s += f"-d{self.dilation}"
        if self.groups != 1:
            s += f"-g{self.groups}"
        return s + ("" if self.bias else "-nobias")


def _edge_configs():
    """Hand-picked edge cases: empty batch, one row, depthwise, K = 1 and 31,
    Wout = 1 exactly, the awkward lengths of causal-conv1d's tests, every
    padding form, padding wider than the kernel, stride not dividing W."""
    c = [
        Conv(0, 3, 2, 10, 4, 3),
        Conv(1, 1, 1, 1, 1, 1),
        Conv(1, 2, 1, 2, 3, 2, bias=False),
        Conv(2, 4, 3, 129, 4, 4, groups=4),  # depthwise
        Conv(2, 3, 2, 151, 6, 5, groups=3, padding="same"),  # depthwise multiplier 2
        Conv(2, 3, 2, 31, 2, 31),  # Wout = 1
        Conv(1, 2, 3, 61, 2, 31, dilation=2),  # Wout = 1 with dilation
        Conv(2, 2, 2, 7, 3, 3, stride=2, padding=(0, 0)),  # (W - span) % stride != 0
        Conv(2, 3, 2, 5, 2, 3, padding=4),  # padding wider than the kernel
        Conv(3, 2, 2, 1, 2, 3, padding=(2, 0)),  # W = 1, all but one tap in padding
        Conv(2, 4, 3, 40, 6, 7, stride=3, padding=(5, 1), dilation=2, groups=2),
        Conv(2, 5, 2, 33, 5, 4, padding="same", dilation=3),  # even K: extra pad on the right
        Conv(2, 5, 2, 33, 5, 4, padding="causal", dilation=2),
        Conv(2, 5, 2, 33, 5, 4, padding="valid", stride=2),
        Conv(1, 2, 1, 1500, 3, 3, stride=1, padding=1),  # several width tiles
        Conv(1, 64, 2, 300, 64, 3, groups=2),  # many channels per group: narrow tiles
        # a vector of output channels per group (grad-weight's gemm form), odd geometry
        Conv(2, 6, 2, 77, 48, 4, stride=2, padding=(3, 1), dilation=2, groups=3),
        Conv(3, 15, 10, 100, 15, 3),  # the forum shape, shrunk in batch
        Conv(1, 2, 1, 5, 2, 2, stride=2**32, padding=1),  # a stride past int32: one output, residues past the row
        # rows of the result a multiple of 2 KiB apart, several strips of rows:
        # the micro-kernels' blocks in panels (forward; grad-input, 24 rows)
        Conv(2, 2, 2, 256, 32, 4, padding="same"),
        Conv(1, 4, 4, 1024, 24, 3, padding="causal"),
        Conv(1, 24, 2, 512, 2, 3, padding="same"),
    ]
    return c


def _random_configs(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        groups = rng.choice([1, 1, 2, 3])
        cin_g, cout_g = rng.choice([1, 2, 3]), rng.choice([1, 2, 4])
        K = rng.randint(1, 31)
        dilation = rng.choice([1, 1, 2, 3])
        stride = rng.choice([1, 1, 2, 3])
        span = dilation * (K - 1) + 1
        padding = rng.choice([0, rng.randint(0, K), (rng.randint(0, K), rng.randint(0, K)), "valid",
                              "same", "causal"])
        if padding == "same":
            stride = 1
        cfg = Conv(B=rng.choice([0, 1, 2, 3]), Cin=groups * cin_g, H=rng.choice([1, 2, 3, 5]),
                   W=1, Cout=groups * cout_g, K=K, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, bias=rng.random() < 0.7)
        left, right = cfg.pads()
        min_w = max(1, span - left - right)
        cfg = dataclasses.replace(cfg, W=min_w + rng.choice([0, 1, 2, rng.randint(0, 60), 129, 151]))
        out.append(cfg)
    return out


SWEEP = _edge_configs() + _random_configs(110, seed=1234)


def wide(t):
    """The float64 (complex128) copy the reference computes in."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def _randn(shape, dtype, generator):
    # complex: independent standard normal real and imaginary parts
    wide_dtype = torch.complex128 if dtype.is_complex else torch.float64
    return torch.randn(shape, generator=generator, dtype=wide_dtype).to(dtype)


def make_tensor(shape, dtype, generator, layout="contiguous"):
    """Random normal values in the requested memory layout:
    'contiguous', 'permuted' (dims stored in reverse order) or 'sliced' (a
    strided window, with an offset, into a larger tensor)."""
    if layout == "contiguous":
        return _randn(shape, dtype, generator)
    if layout == "permuted":
        rev = tuple(reversed(shape))
        return _randn(rev, dtype, generator).permute(*reversed(range(len(shape))))
    if layout == "sliced":
        big = [2 * s + 1 for s in shape]
        return _randn(big, dtype, generator)[tuple(slice(1, 1 + 2 * s, 2) for s in shape)]
    raise ValueError(layout)


def _to_device(t, device):
    """t on device with the same strides (a sliced view stays a view of a larger tensor)."""
    if t.device.type == device:
        return t
    if t._base is None:
        return t.to(device)
    return t._base.to(device).as_strided(t.shape, t.stride(), t.storage_offset())


def make_inputs(cfg, dtype=torch.float32, seed=0, layout="contiguous", device=None):
    """x, weight, bias (None without), grad_out: drawn on the CPU, then moved
    to `device` (default: --device) in the same layout."""
    g = torch.Generator().manual_seed(seed)
    x = make_tensor((cfg.B, cfg.Cin, cfg.H, cfg.W), dtype, g, layout)
    w = make_tensor((cfg.H, cfg.Cout, cfg.Cin // cfg.groups, cfg.K), dtype, g, layout)
    b = make_tensor((cfg.H, cfg.Cout), dtype, g, layout) if cfg.bias else None
    gy = make_tensor((cfg.B, cfg.Cout, cfg.H, cfg.out_width), dtype, g, layout)
    device = device or DEVICE
    return tuple(None if t is None else _to_device(t, device) for t in (x, w, b, gy))


def reference_results(cfg, x, w, b, gy):
    """Output and the grads of x, weight, bias from stock PyTorch (grouped
    F.conv1d and its autograd), in float64 (complex128), on the very same
    values, on the CPU wherever they are."""
    leaves = [wide(t.detach().cpu()).requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    xr, wr = leaves[:2]
    br = leaves[2] if b is not None else None
    y = rowconv_ext.reference_row_conv1d(xr, wr, br, **cfg.kwargs)
    grads = torch.autograd.grad(y, leaves, wide(gy.cpu())) if y.numel() else [torch.zeros_like(t) for t in leaves]
    return (y.detach(),) + tuple(grads)


def our_results(cfg, x, w, b, gy, method="auto"):
    leaves = [t.detach().requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    xo, wo = leaves[:2]
    bo = leaves[2] if b is not None else None
    y = rowconv_ext.row_conv1d(xo, wo, bo, **cfg.kwargs, method=method)
    grads = torch.autograd.grad(y, leaves, gy)
    return (y.detach(),) + tuple(grads)


# Unit roundoff of the accumulation (float32 for the 16-bit types) and of the
# stored result. A complex product sums two real ones per part: twice the terms.
_ACC_EPS = {torch.float64: 2.0**-52, torch.float32: 2.0**-23, torch.float16: 2.0**-23,
            torch.bfloat16: 2.0**-23, torch.complex128: 2 * 2.0**-52, torch.complex64: 2 * 2.0**-23}
_OUT_EPS = {torch.float64: 2.0**-52, torch.float32: 2.0**-23, torch.float16: 2.0**-10,
            torch.bfloat16: 2.0**-7, torch.complex128: 2.0**-52, torch.complex64: 2.0**-23}


def last_level_cache_bytes():
    """The L3 size the library tiles for (sysfs, or ROWCONV_CPU_CACHES)."""
    return torch.ops.rowconv.cpu_cache_bytes()[2]


def tolerance(dtype, reduction_length):
    """(atol, rtol) against a float64 reference on the same input values.
    A sum of R products of standard normals accumulated in precision eps is off
    by at most about R * eps * mean|term| (|term| averages 2/pi), so atol grows
    linearly in R; the final rounding to the output dtype adds one ulp of the
    result, which rtol covers. The factor 4 is headroom over the mean."""
    atol = 4.0 * _ACC_EPS[dtype] * max(reduction_length, 1) + 1e-12
    rtol = 2.0 * _OUT_EPS[dtype]
    return atol, rtol


def reduction_lengths(cfg):
    """Terms summed per element of: output, grad_x, grad_w, grad_b."""
    cin_g, cout_g = cfg.Cin // cfg.groups, cfg.Cout // cfg.groups
    per_out = cin_g * cfg.K + 1
    per_gx = cout_g * cfg.K
    per_gw = cfg.B * cfg.out_width
    return per_out, per_gx, per_gw, per_gw


def assert_matches_reference(cfg, ours, ref, dtype):
    names = ["output", "grad_x", "grad_weight", "grad_bias"]
    for name, o, r, R in zip(names, ours, ref, reduction_lengths(cfg)):
        assert o.dtype == dtype, f"{name}: dtype {o.dtype}, expected {dtype}"
        assert o.shape == r.shape, f"{name}: shape {tuple(o.shape)}, expected {tuple(r.shape)}"
        atol, rtol = tolerance(dtype, R)
        torch.testing.assert_close(wide(o).cpu(), r, atol=atol, rtol=rtol, msg=lambda m: f"{cfg} {name}: {m}")


# The FFT method (method='fft', or a positive fft_block of the ops). Its error
# is relative to the norms of the operands, not to each element: a transform
# of n points spreads every input's rounding error over all n outputs. The
# classic bound (Higham, Accuracy and Stability of Numerical Algorithms,
# sec. 24.1) for one transform of length n is ||fl(FFT x) - FFT x|| <=
# c eps log2(n) ||FFT x||, c a small constant; a convolution of two operands is
# three transforms and a product, so per output signal
#     ||y_fft - y|| <= C eps log2(n) * sum over the terms ||operand 1|| ||operand 2||
# where the sum runs over the channel pairs (and the batch, for grad-weight)
# that the reduction adds: fft_scales computes that scale for each op.
# C = 4: the largest ratio ||y_fft - y|| / (eps log2(n) scale) measured over
# the seeded sweeps of test_fft_method.py and a wider one (every dtype, forced
# short blocks, about 1500 op results) is 0.5. Higham's worst case, about 3
# per transform, would be about 9 here, but rounding errors do not line up
# like that: 4 keeps 8x headroom over the measurement, while an answer of the
# next lower precision (float32 accuracy judged as float64, bfloat16 as
# float32) is orders of magnitude outside (test_fft_method.py checks it fails).
FFT_C = 4.0


def fft_eps(dtype):
    """eps of the precision the FFT method computes in: float32 for the
    16-bit types (they are converted to float32 and rounded once at the end)."""
    if dtype in (torch.float64, torch.complex128):
        return torch.finfo(torch.float64).eps
    return torch.finfo(torch.float32).eps


def fft_tolerance(dtype, n):
    """The relative-to-the-norms tolerance of an FFT of n points in dtype."""
    return FFT_C * fft_eps(dtype) * math.log2(max(n, 2))


def _row_norms(t):
    """The 2-norm over the last (width) dimension, in float64 on the CPU."""
    return wide(t.detach().cpu()).abs().square().sum(-1).sqrt()


def fft_scales(cfg, x, w, gy):
    """The norm scales of the three FFT results (output, grad_x, grad_weight):
    the Frobenius norm over all output signals of sum ||a|| ||b|| over the
    pairs the op multiplies (Cauchy-Schwarz form of the bound above):
      output[b, o, h]      sum over c in o's group   ||x[b, c, h]|| ||w[h, o, c]||
      grad_x[b, c, h]      sum over o in c's group   ||gy[b, o, h]|| ||w[h, o, c]||
      grad_w[h, o, c]      sum over b                ||gy[b, o, h]|| ||x[b, c, h]||
    With random normal inputs these are a few times the norm of the result."""
    g = cfg.groups
    xn = _row_norms(x).reshape(cfg.B, g, cfg.Cin // g, cfg.H)
    wn = _row_norms(w).reshape(cfg.H, g, cfg.Cout // g, cfg.Cin // g)
    gn = _row_norms(gy).reshape(cfg.B, g, cfg.Cout // g, cfg.H)
    return (torch.einsum("bgch,hgoc->bgoh", xn, wn).norm().item(),
            torch.einsum("bgoh,hgoc->bgch", gn, wn).norm().item(),
            torch.einsum("bgoh,bgch->hgoc", gn, xn).norm().item())


def fft_error_bound(dtype, n, scale, ref_norm):
    """||ours - ref||_F may be at most this: the FFT's error (fft_tolerance
    times the norm scale) plus one rounding of every element to dtype
    (|fl(y) - y| <= u |y|, u half of dtype's eps). For float16 and bfloat16,
    computed in float32, that rounding is nearly all of the tolerance."""
    return fft_tolerance(dtype, n) * scale + _OUT_EPS[dtype] / 2 * ref_norm


def normwise_error(ours, ref):
    """(||ours - ref||_F, ||ref||_F), ours widened and on the CPU."""
    return (wide(ours.detach().cpu()) - ref).norm().item(), ref.norm().item()


def assert_fft_matches_reference(cfg, ours, ref, dtype, n, scales):
    """Output, grad_x and grad_weight of the FFT method norm-wise within
    fft_error_bound of the float64 reference; grad_bias (a direct sum, the
    same op for every method) element-wise as in assert_matches_reference."""
    names = ["output", "grad_x", "grad_weight", "grad_bias"]
    for i, (name, o, r) in enumerate(zip(names, ours, ref)):
        assert o.dtype == dtype, f"{cfg} {name}: dtype {o.dtype}, expected {dtype}"
        assert o.shape == r.shape, f"{cfg} {name}: shape {tuple(o.shape)}, expected {tuple(r.shape)}"
        if i == 3:
            atol, rtol = tolerance(dtype, reduction_lengths(cfg)[3])
            torch.testing.assert_close(wide(o).cpu(), r, atol=atol, rtol=rtol, msg=lambda m: f"{cfg} {name}: {m}")
            continue
        err, ref_norm = normwise_error(o, r)
        bound = fft_error_bound(dtype, n, scales[i], ref_norm)
        assert err <= bound, (f"{cfg} {name} ({dtype}, n={n}): ||ours - ref|| = {err:.3e} > {bound:.3e} "
                              f"(relative to ||ref|| = {ref_norm:.3e}: {err / max(ref_norm, 1e-300):.3e})")


def assert_every_derivative(f, leaves, fast_mode=False):
    """gradcheck and gradgradcheck of f at leaves in every mode: reverse,
    forward, batched, forward-over-reverse and reverse-over-reverse (fast_mode:
    a random projection of the Jacobian instead of all of it)."""
    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_backward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True, fast_mode=fast_mode)
    assert torch.autograd.gradgradcheck(f, leaves, check_fwd_over_rev=True, check_rev_over_rev=True,
                                        check_batched_grad=True, fast_mode=fast_mode)


@pytest.fixture
def no_vmap_fallback():
    """vmap must use our batching rules: with the per-sample fallback turned
    off, an op without a rule raises instead of looping."""
    torch._C._functorch._set_vmap_fallback_enabled(False)
    yield
    torch._C._functorch._set_vmap_fallback_enabled(True)


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
