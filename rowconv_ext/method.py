"""The method argument: 'direct' (the direct kernels), 'fft' (the FFT method)
or 'auto' (the cheaper of the two by a cost model, as
scipy.signal.choose_conv_method chooses for scipy).

The cost model lives with the ops (csrc/fft_plan.h), so that 'auto' decides
on the shapes of each call, also under torch.compile with dynamic shapes, and
each backward op decides for itself. It counts the work of both methods and
weighs it with constants measured on the machine:

  direct  direct_call + direct_mac * MACs + direct_narrow * MACs / min(Cout_g, 8)
          (MACs = B H Cout Cin_g K Wout real multiply-adds; the kernels' register
          block of 8 output channels shares each input load, fewer cost more)
  fft     fft_call + fft_point * (transform points x log2 n)
          + fft_mix * (channel-mix multiply-adds) + fft_matrix * (mix matrices)
          + fft_pass * (spectrum elements)
          at the transform length n that minimises it (overlap-save blocks of
          n points, as scipy.signal.oaconvolve sizes its blocks).

measure_cost_constants() re-measures the constants on the machine it runs on
(scipy's measure=True) and set_cost_constants() installs them.
"""
import time

import torch

METHODS = ("auto", "direct", "fft")
# The ops' fft_block argument for each method (csrc/fft_plan.h); a positive
# value is a transform length, for tests and benchmarks.
FFT_BLOCK = {"direct": 0, "auto": -1, "fft": -2}
CONSTANT_NAMES = ("direct_mac", "direct_narrow", "direct_call", "fft_point", "fft_mix", "fft_matrix", "fft_pass",
                  "fft_call")


def fft_block_arg(method, owner="row_conv1d"):
    """The ops' fft_block argument for a method name."""
    if not isinstance(method, str) or method not in FFT_BLOCK:
        raise ValueError(f"{owner}: method must be one of {METHODS}, got {method!r}")
    return FFT_BLOCK[method]


def cost_plan(x, weight, stride=1, pad_left=0, pad_right=0, dilation=1, groups=1, fft_block=-1):
    """The cost model for row_conv1d(x, weight, ...) as a dict: the FFT's
    transform length (fft_block if positive, else the planned one), the work
    counts and the predicted seconds of both methods."""
    values = torch.ops.rowconv.cost_plan(x, weight, stride, pad_left, pad_right, dilation, groups, fft_block)
    names = ("block", "direct_macs", "narrow_macs", "transform_points", "mix_macs", "mix_matrices",
             "spectrum_elements", "direct_seconds", "fft_seconds")
    plan = dict(zip(names, values))
    plan["block"] = int(plan["block"])
    return plan


def choose_method(x, weight, stride=1, padding=0, dilation=1, groups=1):
    """'direct' or 'fft': what row_conv1d(..., method='auto') runs for these
    arguments (their shapes, dtype and device), as
    scipy.signal.choose_conv_method does for scipy.signal.convolve. The
    arguments are checked as row_conv1d checks them."""
    from .functional import check_tensor, int_arg, resolve_padding  # noqa: PLC0415 (imports this module)

    owner = "choose_method"
    check_tensor("x", x, owner)
    check_tensor("weight", weight, owner)
    stride, dilation, groups = (int_arg(n, v, owner) for n, v in
                                (("stride", stride), ("dilation", dilation), ("groups", groups)))
    kernel_size = weight.shape[-1] if weight.dim() > 0 else 0
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation, owner)
    plan = cost_plan(x, weight, stride, pad_left, pad_right, dilation, groups)
    return "fft" if plan["fft_seconds"] < plan["direct_seconds"] else "direct"


def cost_constants(device_type="cpu"):
    """The constants 'auto' uses on a device type, as a dict."""
    return dict(zip(CONSTANT_NAMES, torch.ops.rowconv.cost_constants(device_type)))


def set_cost_constants(constants, device_type="cpu"):
    """Installs constants (a dict as measure_cost_constants returns) for
    device_type ('cpu' or 'cuda'), in this process."""
    missing = set(CONSTANT_NAMES) - set(constants)
    if missing:
        raise ValueError(f"set_cost_constants: constants must give {CONSTANT_NAMES}, missing {sorted(missing)}")
    torch.ops.rowconv.set_cost_constants(device_type, [float(constants[k]) for k in CONSTANT_NAMES])


def _median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# (B, Cin, H, W, Cout, K): shapes that load each term of the two costs differently.
CALIBRATION_SHAPES = (
    (4, 8, 8, 4096, 8, 63), (4, 8, 8, 4096, 8, 255), (1, 1, 512, 8192, 1, 64), (1, 1, 256, 8192, 1, 1024),
    (8, 16, 4, 2048, 16, 31), (2, 32, 2, 8192, 32, 127), (16, 4, 16, 1024, 4, 15), (1, 1, 64, 65536, 1, 2048),
    (32, 15, 10, 512, 15, 3), (8, 64, 16, 512, 64, 5), (1, 1, 1024, 8192, 1, 20), (16, 1, 256, 2048, 1, 64),
    # small problems, which fix the fixed costs per call
    (1, 1, 16, 2048, 1, 255), (1, 1, 4, 1024, 1, 64), (2, 4, 2, 1024, 4, 127), (1, 1, 64, 4096, 1, 1023),
    # many rows of one short row each: the mix's matrices have one column
    (1, 8, 512, 512, 8, 185), (1, 8, 128, 2048, 8, 93),
)


def measure_cost_constants(device="cpu", shapes=CALIBRATION_SHAPES, repeats=5, seed=0):
    """Times both methods (float32) on `shapes` ((B, Cin, H, W, Cout, K)) on
    device and fits the cost model's constants to the times, least squares on
    relative errors. Returns (constants, samples): a dict for
    set_cost_constants, and per timed call its shape, method, transform length,
    measured and predicted seconds. About a minute on a 2-core CPU."""
    import numpy as np  # noqa: PLC0415

    gen = torch.Generator().manual_seed(seed)
    op = torch.ops.rowconv.row_conv1d
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    direct, fft = [], []  # (shape, block, terms, seconds)
    for shape in shapes:
        B, cin, H, W, cout, K = shape
        x = torch.randn(B, cin, H, W, generator=gen).to(device)
        w = torch.randn(H, cout, cin, K, generator=gen).to(device)
        plan = cost_plan(x, w)
        seconds = _median_seconds(lambda: (op(x, w, None, 1, 0, 0, 1, 1, 0), sync()), repeats)
        direct.append((shape, 0, [plan["direct_macs"], plan["narrow_macs"], 1.0], seconds))
        # The planned length and powers of two around it (lengths the planner
        # may pick), so that every term varies.
        below, above = max(K, plan["block"] // 4), plan["block"] * 4
        for block in sorted({plan["block"], 1 << (below - 1).bit_length(), 1 << (above - 1).bit_length()}):
            p = cost_plan(x, w, fft_block=block)
            seconds = _median_seconds(lambda: (op(x, w, None, 1, 0, 0, 1, 1, block), sync()), repeats)
            fft.append((shape, block, [p["transform_points"], p["mix_macs"], p["mix_matrices"],
                                       p["spectrum_elements"], 1.0], seconds))

    def fit(samples):
        terms = np.array([s[2] for s in samples], float)
        seconds = np.array([s[3] for s in samples], float)
        coef = np.linalg.lstsq(terms / seconds[:, None], np.ones_like(seconds), rcond=None)[0]
        return [max(float(v), 1e-16) for v in coef], terms, seconds

    (direct_mac, direct_narrow, direct_call), d_terms, d_sec = fit(direct)
    (fft_point, fft_mix, fft_matrix, fft_pass, fft_call), f_terms, f_sec = fit(fft)
    constants = dict(direct_mac=direct_mac, direct_narrow=direct_narrow, direct_call=direct_call,
                     fft_point=fft_point, fft_mix=fft_mix, fft_matrix=fft_matrix, fft_pass=fft_pass,
                     fft_call=fft_call)
    d_pred = d_terms @ np.array([direct_mac, direct_narrow, direct_call])
    f_pred = f_terms @ np.array([fft_point, fft_mix, fft_matrix, fft_pass, fft_call])
    samples = ([dict(shape=s[0], method="direct", block=0, seconds=s[3], predicted=float(p))
                for s, p in zip(direct, d_pred)] +
               [dict(shape=s[0], method="fft", block=s[1], seconds=s[3], predicted=float(p))
                for s, p in zip(fft, f_pred)])
    return constants, samples
