"""The choice between the direct kernels and the FFT method, as
scipy.signal.choose_conv_method makes it for scipy: a cost model of both from
the shapes, dtype and device, with constants measured on the machine.

  direct  MACs = B * H * Cout * (Cin / groups) * K * Wout multiply-adds
          (four real ones per complex one), at a measured rate.
  fft     for a transform length n (overlap-save blocks of n points, each
          giving n - span + 1 outputs): the transforms (n log2 n per block of
          every input and output channel, and per weight), the channel mix
          (a complex multiply-add per frequency, block and channel pair) and
          the layout passes over the spectra, each at a measured rate.

fft_block picks the n that minimises the FFT cost (as scipy.signal.oaconvolve
picks its block size); choose_method compares the two costs. The constants
are per device type; `measure_cost_constants()` re-measures them on the
machine it runs on (scipy's `measure=True`), and `set_cost_constants()`
installs a result (docs/design.md, "Choosing the method").
"""
import dataclasses
import functools
import math
import time

import torch

METHODS = ("auto", "direct", "fft")


@dataclasses.dataclass(frozen=True)
class CostConstants:
    """Seconds per unit of work, for one device type (float32; the ratio of
    the two methods hardly depends on the float dtype)."""
    direct_mac: float     # per real multiply-add of the direct kernels
    direct_call: float    # per call of the direct kernels
    fft_point: float      # per n * log2(n) of one real transform of n points
    fft_mix: float        # per complex multiply-add of the channel mix
    fft_pass: float       # per complex spectrum element written by a layout pass
    fft_call: float       # per call of the FFT method


# Measured by measure_cost_constants() on our CPU machines (2 threads; AMD EPYC
# Zen 5, 48 KiB L1d; see benchmarks/results/cost_model_*.json for the runs).
# CUDA: not measured yet (no GPU run); set from the H200's rates so that long
# kernels go to cuFFT, to be replaced by measure_cost_constants('cuda').
_CONSTANTS = {
    "cpu": CostConstants(direct_mac=2.2e-11, direct_call=3e-5, fft_point=1.1e-10, fft_mix=1.0e-9,
                         fft_pass=1.0e-9, fft_call=2e-4),
    "cuda": CostConstants(direct_mac=1.5e-13, direct_call=1e-5, fft_point=3e-13, fft_mix=2e-12,
                          fft_pass=2e-12, fft_call=6e-5),
}


def cost_constants(device_type="cpu"):
    return _CONSTANTS.get(device_type, _CONSTANTS["cpu"])


def set_cost_constants(constants, device_type="cpu"):
    """Installs constants (a CostConstants or the dict measure_cost_constants
    returns) for device_type; 'auto' uses them from the next call on."""
    if isinstance(constants, dict):
        constants = CostConstants(**constants)
    _CONSTANTS[device_type] = constants
    _plan.cache_clear()


@functools.lru_cache(maxsize=None)
def _smooth_sizes(lowest, highest):
    """The 5-smooth numbers (2^a 3^b 5^c, fast for every FFT library) in [lowest, highest]."""
    sizes = []
    p5 = 1
    while p5 <= highest:
        p35 = p5
        while p35 <= highest:
            n = p35
            while n <= highest:
                if n >= lowest:
                    sizes.append(n)
                n *= 2
            p35 *= 3
        p5 *= 5
    return tuple(sorted(sizes))


def _next_smooth(n):
    m = 1 << max(0, (n - 1).bit_length())
    return min(_smooth_sizes(n, m))


def _fft_cost(c, n, outputs, span, batch, cin, cout, rows, in_per_group, complex_):
    blocks = -(-outputs // (n - span + 1))
    freqs = n if complex_ else n // 2 + 1
    transform = n * math.log2(max(n, 2)) * (2 if complex_ else 1)
    transforms = (batch * (cin + cout) * rows * blocks + rows * cout * in_per_group) * transform
    mix = rows * freqs * batch * blocks * cout * in_per_group
    passes = batch * (cin + cout) * rows * blocks * freqs
    return c.fft_call + c.fft_point * transforms + c.fft_mix * mix + c.fft_pass * passes


@functools.lru_cache(maxsize=4096)
def _plan(device_type, complex_, batch, cin, cout, rows, width, kernel_size, stride, pad_left, pad_right,
          dilation, groups):
    """(direct cost, best FFT cost, its block length) in seconds."""
    c = cost_constants(device_type)
    span = dilation * (kernel_size - 1) + 1
    outputs = width + pad_left + pad_right - span + 1  # at stride 1: the FFT computes them all
    out_width = (outputs - 1) // stride + 1
    in_per_group = cin // groups
    macs = batch * rows * cout * in_per_group * kernel_size * out_width * (4 if complex_ else 1)
    direct = c.direct_call + c.direct_mac * macs
    # One block holding every output is the longest transform worth trying.
    sizes = _smooth_sizes(span, _next_smooth(outputs + span - 1))
    costs = [(_fft_cost(c, n, outputs, span, batch, cin, cout, rows, in_per_group, complex_), n)
             for n in sizes]
    fft_cost, block = min(costs)
    return direct, fft_cost, block


def _plan_for(x, weight, stride, pad_left, pad_right, dilation, groups):
    B, cin, H, W = (int(s) for s in x.shape)
    _, cout, _, K = (int(s) for s in weight.shape)
    return _plan(x.device.type, x.is_complex(), B, cin, cout, H, W, K, int(stride), int(pad_left),
                 int(pad_right), int(dilation), int(groups))


def fft_block(x, weight, stride, pad_left, pad_right, dilation, groups):
    """The FFT method's transform length for these arguments (the cheapest by the cost model)."""
    return _plan_for(x, weight, stride, pad_left, pad_right, dilation, groups)[2]


def resolve_method(method, x, weight, stride, pad_left, pad_right, dilation, groups, owner="row_conv1d"):
    """The ops' fft_block argument for method: 0 (direct) or a transform length.
    Arguments are assumed checked except method (the ops check the rest and
    raise their own errors for anything the cost model cannot size)."""
    if method not in METHODS:
        raise ValueError(f"{owner}: method must be one of {METHODS}, got {method!r}")
    if method == "direct" or not _sizeable(x, weight, stride, pad_left, pad_right, dilation, groups):
        return 0
    direct, fft_cost, block = _plan_for(x, weight, stride, pad_left, pad_right, dilation, groups)
    if method == "fft" or fft_cost < direct:
        return block
    return 0


def _sizeable(x, weight, stride, pad_left, pad_right, dilation, groups):
    """Whether the arguments describe a problem the FFT can be planned for;
    anything else goes to the ops, whose checks name what is wrong."""
    if not (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)):
        return False
    if x.dim() != 4 or weight.dim() != 4 or min(stride, dilation, groups) < 1 or min(pad_left, pad_right) < 0:
        return False
    if weight.shape[3] < 1 or x.shape[1] % groups or weight.shape[1] % groups:
        return False
    if not (x.is_floating_point() or x.is_complex()):
        return False
    span = dilation * (weight.shape[3] - 1) + 1
    return x.shape[3] + pad_left + pad_right >= span and x.numel() > 0 and weight.numel() > 0


def choose_method(x, weight, stride=1, padding=0, dilation=1, groups=1):
    """'direct' or 'fft': what row_conv1d(..., method='auto') runs for these
    arguments (their shapes, dtype and device), as
    scipy.signal.choose_conv_method does for scipy.signal.convolve."""
    from .functional import int_arg, resolve_padding  # noqa: PLC0415 (functional imports this module)

    stride = int_arg("stride", stride, "choose_method")
    dilation = int_arg("dilation", dilation, "choose_method")
    groups = int_arg("groups", groups, "choose_method")
    for name, t in (("x", x), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"choose_method: {name} must be a torch.Tensor, got {type(t).__name__}")
    kernel_size = weight.shape[-1] if weight.dim() > 0 else 0
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation, "choose_method")
    block = resolve_method("auto", x, weight, stride, pad_left, pad_right, dilation, groups, "choose_method")
    return "fft" if block else "direct"


def _median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# (B, Cin, H, W, Cout, K): shapes that load each term of the two costs differently.
_CALIBRATION_SHAPES = (
    (4, 8, 8, 4096, 8, 63), (4, 8, 8, 4096, 8, 255), (1, 1, 512, 8192, 1, 64), (1, 1, 256, 8192, 1, 1024),
    (8, 16, 4, 2048, 16, 31), (2, 32, 2, 8192, 32, 127), (16, 4, 16, 1024, 4, 15), (1, 1, 64, 65536, 1, 2048),
    (32, 15, 10, 512, 15, 3), (8, 64, 16, 512, 64, 5),
)


def measure_cost_constants(device="cpu", shapes=_CALIBRATION_SHAPES, repeats=5, seed=0):
    """Times both methods on `shapes` ((B, Cin, H, W, Cout, K), float32) on
    device and fits the constants of the cost model to them (least squares on
    relative errors). Returns a dict for set_cost_constants; takes a minute on
    a 2-core CPU."""
    import numpy as np  # noqa: PLC0415

    from .functional import row_conv1d  # noqa: PLC0415

    gen = torch.Generator().manual_seed(seed)
    ops = torch.ops.rowconv
    direct_rows, direct_times, fft_rows, fft_times = [], [], [], []
    zero = CostConstants(0, 0, 0, 0, 0, 0)
    for B, cin, H, W, cout, K in shapes:
        x = torch.randn(B, cin, H, W, generator=gen).to(device)
        w = torch.randn(H, cout, cin, K, generator=gen).to(device)
        sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        macs = B * H * cout * cin * K * (W - K + 1)
        direct_rows.append([macs, 1.0])
        direct_times.append(_median_seconds(lambda: (row_conv1d(x, w, method="direct"), sync()), repeats))
        span, outputs = K, W - K + 1
        for n in sorted({_next_smooth(2 * K), _next_smooth(4 * K), _next_smooth(outputs + span - 1)}):
            n = max(n, span)
            terms = [_fft_cost(dataclasses.replace(zero, **{k: 1.0}), n, outputs, span, B, cin, cout, H, cin, False)
                     for k in ("fft_point", "fft_mix", "fft_pass", "fft_call")]
            fft_rows.append(terms)
            fft_times.append(_median_seconds(lambda n=n: (ops.row_conv1d(x, w, None, 1, 0, 0, 1, 1, n), sync()),
                                             repeats))

    def fit(rows, times):
        a, t = np.asarray(rows, float), np.asarray(times, float)
        coef = np.linalg.lstsq(a / t[:, None], np.ones_like(t), rcond=None)[0]
        return [max(float(v), 1e-15) for v in coef]

    direct_mac, direct_call = fit(direct_rows, direct_times)
    fft_point, fft_mix, fft_pass, fft_call = fit(fft_rows, fft_times)
    return dict(direct_mac=direct_mac, direct_call=direct_call, fft_point=fft_point, fft_mix=fft_mix,
                fft_pass=fft_pass, fft_call=fft_call)
