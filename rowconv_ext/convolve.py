"""convolve_rows: row i of A convolved with row i of B, scipy's semantics,
computed by row_conv1d (a true convolution is a correlation with the flipped
kernel) instead of a Python loop."""
import numpy as np
import torch

from .functional import row_conv1d

MODES = ("full", "same", "valid")


def _as_tensor(name, value):
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.from_numpy(np.ascontiguousarray(value))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"convolve_rows: {name} must be a NumPy array or a tensor, got "
                         f"{type(value).__name__} ({e})") from None


def _common_float_dtype(a, b, numpy_in):
    dtype = torch.promote_types(a.dtype, b.dtype)
    if dtype.is_complex:
        raise ValueError(f"convolve_rows: a and b must be real, got {a.dtype} and {b.dtype}")
    if not dtype.is_floating_point:
        # Integers: NumPy in gives float64 (exact for moderate values), tensors the default float dtype.
        dtype = torch.float64 if numpy_in else torch.get_default_dtype()
    return dtype


def convolve_rows(a, b, mode="full"):
    """out[..., i, :] = scipy.signal.convolve(a[..., i, :], b[..., i, :], mode)

    a: (..., M, N), b: (..., M, P) (leading dims broadcast; 1-D a and b are one
    row). mode: 'full' (length N + P - 1), 'same' (length N, centred on
    'full' as scipy does) or 'valid' (length max(N, P) - min(N, P) + 1; like
    scipy, the longer of the two rows slides under the shorter).
    NumPy arrays in give a NumPy array out in the inputs' float dtype; tensors
    in give a tensor out, differentiable in a and b.
    """
    if mode not in MODES:
        raise ValueError(f"convolve_rows: mode must be one of {MODES}, got {mode!r}")
    numpy_in = not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor)
    a, b = _as_tensor("a", a), _as_tensor("b", b)
    for name, t in (("a", a), ("b", b)):
        if t.dim() == 0:
            raise ValueError(f"convolve_rows: {name} must have at least 1 dimension (..., M, length), got a scalar")
        if t.shape[-1] == 0:
            raise ValueError(f"convolve_rows: rows of {name} must not be empty, got shape {tuple(t.shape)}")
    if a.device != b.device:
        raise ValueError(f"convolve_rows: a and b must be on one device, got {a.device} and {b.device}")
    try:
        lead = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except RuntimeError:
        raise ValueError(f"convolve_rows: the leading (..., M) dims of a {tuple(a.shape)} and b {tuple(b.shape)} "
                         f"must match or broadcast") from None
    dtype = _common_float_dtype(a, b, numpy_in)
    n, p = a.shape[-1], b.shape[-1]
    signal, kernel = a.to(dtype).expand(lead + (n,)), b.to(dtype).expand(lead + (p,))
    if mode == "valid" and p > n:  # scipy swaps: the longer input slides
        signal, kernel, n, p = kernel, signal, p, n
    rows = int(np.prod(lead)) if lead else 1
    if mode == "full":
        pads = (p - 1, p - 1)
    elif mode == "same":
        shift = (p - 1) // 2  # scipy's centring of 'same' within 'full'
        pads = (p - 1 - shift, shift)
    else:
        pads = (0, 0)
    out = row_conv1d(signal.reshape(1, 1, rows, n), kernel.reshape(rows, 1, 1, p).flip(-1), padding=pads)
    out = out.reshape(lead + (out.shape[-1],))
    return out.numpy() if numpy_in else out
