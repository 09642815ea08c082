"""convolve_rows: row i of A convolved with row i of B, scipy's semantics,
computed by row_conv1d (a true convolution is a correlation with the flipped
kernel) instead of a Python loop.

Result dtypes are scipy.signal.convolve's: NumPy's promotion of the inputs'
dtypes, exact integers (wrapping as scipy's integer arithmetic does) and bool
for bool. _result_dtype decides the result dtype, _compute_dtype the dtype the
numbers are computed in.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .functional import row_conv1d

MODES = ("full", "same", "valid")

# torch dtype -> the NumPy dtype of the same numbers (bfloat16 has none).
_NUMPY_OF = {t: np.dtype(n) for t, n in [
    (torch.bool, np.bool_), (torch.uint8, np.uint8), (torch.uint16, np.uint16), (torch.uint32, np.uint32),
    (torch.uint64, np.uint64), (torch.int8, np.int8), (torch.int16, np.int16), (torch.int32, np.int32),
    (torch.int64, np.int64), (torch.float16, np.float16), (torch.float32, np.float32),
    (torch.float64, np.float64), (torch.complex64, np.complex64), (torch.complex128, np.complex128)]}
_TORCH_OF = {n: t for t, n in _NUMPY_OF.items()}
# Integer sums whose every partial sum stays below these are exact in that float dtype.
_EXACT_FLOATS = ((2 ** 24, torch.float32), (2 ** 53, torch.float64))
_INT64_BLOCK = 1 << 22  # elements of one block of products in the int64 path (32 MiB)


def _as_array(name, value):
    """value as a tensor or a NumPy array of a numeric dtype."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in _NUMPY_OF and value.dtype != torch.bfloat16:
            raise ValueError(f"convolve_rows: {name} must have a bool, integer, float or complex dtype, "
                             f"got {value.dtype}")
        return value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"convolve_rows: {name} must be a NumPy array or a tensor, got "
                         f"{type(value).__name__} ({e})") from None
    if array.dtype.kind not in "biufc":  # object, str, bytes, datetime, structured...
        raise ValueError(f"convolve_rows: {name} must be a NumPy array or a tensor of a bool, integer, float or "
                         f"complex dtype, got {type(value).__name__} of dtype {array.dtype}")
    return array


def _result_dtype(a, b):
    """The dtype scipy.signal.convolve returns: np.result_type of the inputs'
    dtypes (torch dtypes read as their NumPy twins). bfloat16 has no twin: torch's
    promotion for it. A torch dtype, or the NumPy one where torch has none
    (longdouble, clongdouble)."""
    na, nb = (x.dtype if isinstance(x, np.ndarray) else _NUMPY_OF.get(x.dtype) for x in (a, b))
    if na is None or nb is None:  # bfloat16
        other = nb if na is None else na
        if other is None or other.kind in "bui":
            return torch.bfloat16
        return torch.promote_types(torch.bfloat16, _TORCH_OF[other]) if other in _TORCH_OF else other
    result = np.result_type(na, nb)
    return _TORCH_OF.get(result, result)


def _magnitude(t):
    """max |t| as a Python int (no overflow for int64's minimum)."""
    return max(-t.min().item(), t.max().item()) if t.numel() else 0


def _compute_dtype(result, a, b):
    """The dtype the numbers are computed in for that result dtype (a and b as
    int64 tensors for bool and integer results)."""
    if result.is_floating_point or result.is_complex:
        return torch.float32 if result == torch.bfloat16 else result  # bfloat16: rounded once, at the end
    # bool and integers, exact: every partial sum is at most max|a| max|b| min(N, P), so a float
    # dtype whose integers reach that bound is exact; int64 beyond. uint64 read as int64 is the
    # same bits mod 2^64, and the result (at most 64 bits) is taken mod 2^bits anyway.
    bound = _magnitude(a) * _magnitude(b) * min(a.shape[-1], b.shape[-1])
    return next((dtype for limit, dtype in _EXACT_FLOATS if bound < limit), torch.int64)


def _to_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("=")))


def _layout(n, p, mode):
    """(swap, (left, right) padding of the signal) for row_conv1d to give scipy's mode."""
    swap = mode == "valid" and p > n  # scipy swaps in 'valid': the longer input slides
    if swap:
        n, p = p, n
    if mode == "full":
        return swap, (p - 1, p - 1)
    if mode == "same":
        shift = (p - 1) // 2  # scipy's centring of 'same' within 'full'
        return swap, (p - 1 - shift, shift)
    return swap, (0, 0)


def _int64_rows(signal, kernel, pads):
    """Exact correlation of each row of signal with its row of kernel in int64,
    wrapping mod 2^64 as scipy's integer arithmetic does mod its width; in blocks
    of rows so the (rows, Wout, P) products stay small."""
    windows = F.pad(signal, pads).unfold(-1, kernel.shape[-1], 1)  # (rows, Wout, P), a view
    kernel = kernel.unsqueeze(1)
    step = max(1, _INT64_BLOCK // max(1, windows.shape[1] * windows.shape[2]))
    return torch.cat([(windows[i:i + step] * kernel[i:i + step]).sum(-1)
                      for i in range(0, max(1, windows.shape[0]), step)])


def _numpy_rows(a, b, lead, mode, dtype):
    """scipy's own arithmetic, np.convolve row by row: the rare path for
    longdouble and clongdouble, which torch lacks."""
    n, p = a.shape[-1], b.shape[-1]
    rows_a = np.broadcast_to(a, lead + (n,)).reshape(-1, n)
    rows_b = np.broadcast_to(b, lead + (p,)).reshape(-1, p)
    swap, (left, right) = _layout(n, p, mode)
    if swap:
        n, p = p, n
    start, length = p - 1 - left, n + left + right - p + 1  # the mode's slice of 'full'
    out = np.empty((rows_a.shape[0], length), dtype)
    for i, (ai, bi) in enumerate(zip(rows_a, rows_b)):
        out[i] = np.convolve(ai, bi)[start:start + length]
    return out.reshape(lead + (length,))


def convolve_rows(a, b, mode="full"):
    """out[..., i, :] = scipy.signal.convolve(a[..., i, :], b[..., i, :], mode)

    a: (..., M, N), b: (..., M, P) (leading dims broadcast; 1-D a and b are one
    row; 0-d a and b give a * b, as scipy). mode: 'full' (length N + P - 1),
    'same' (length N, centred on 'full' as scipy does) or 'valid' (length
    max(N, P) - min(N, P) + 1; like scipy, the longer of the two rows slides
    under the shorter).
    The result dtype is scipy's: NumPy's promotion of the inputs' dtypes (torch
    dtypes read as the NumPy ones; bfloat16 as torch promotes it, computed in
    float32); integers are exact, wrapping on overflow as scipy's do; bool
    inputs give bool (an OR of ANDs). NumPy arrays in give a NumPy array out
    (longdouble and clongdouble included); tensors in give a tensor out,
    differentiable in floating a and b.
    """
    if mode not in MODES:
        raise ValueError(f"convolve_rows: mode must be one of {MODES}, got {mode!r}")
    numpy_in = not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor)
    a, b = _as_array("a", a), _as_array("b", b)
    scalar = a.ndim == 0 and b.ndim == 0  # scipy returns a * b
    if scalar:
        a, b = a.reshape(1), b.reshape(1)
    for name, x, other in (("a", a, b), ("b", b, a)):
        if x.ndim == 0:  # scipy refuses a lone 0-d input too
            raise ValueError(f"convolve_rows: {name} must have at least 1 dimension (..., M, length) when the other "
                             f"input has {other.ndim}, got a 0-d {name} (both 0-d give a * b)")
        if x.shape[-1] == 0:
            raise ValueError(f"convolve_rows: rows of {name} must not be empty, got shape {tuple(x.shape)}")
    try:
        lead = np.broadcast_shapes(tuple(a.shape[:-1]), tuple(b.shape[:-1]))
    except ValueError:
        raise ValueError(f"convolve_rows: the leading (..., M) dims of a {tuple(a.shape)} and b {tuple(b.shape)} "
                         f"must match or broadcast") from None

    result = _result_dtype(a, b)
    if isinstance(result, np.dtype):  # longdouble or clongdouble: no torch dtype holds it
        if not numpy_in:
            name, x = ("a", a) if isinstance(a, np.ndarray) and a.dtype not in _TORCH_OF else ("b", b)
            raise ValueError(f"convolve_rows: {name} has dtype {x.dtype}, which torch lacks, so a tensor cannot "
                             f"hold the {result} result: expected NumPy arrays for both a and b, or a dtype torch "
                             f"has")
        out = _numpy_rows(a, b, lead, mode, result)
        return out.reshape(())[()] if scalar else out

    a, b = _to_tensor(a), _to_tensor(b)
    if a.device != b.device:
        raise ValueError(f"convolve_rows: a and b must be on one device, got {a.device} and {b.device}")
    n, p = a.shape[-1], b.shape[-1]
    rows = int(np.prod(lead)) if lead else 1
    swap, pads = _layout(n, p, mode)
    floating = result.is_floating_point or result.is_complex
    if not floating:  # uint64 becomes int64 with the same bits: see _compute_dtype
        a, b = a.to(torch.int64), b.to(torch.int64)
    compute = _compute_dtype(result, a, b)
    signal = a.to(compute).expand(lead + (n,)).reshape(rows, n)
    kernel = b.to(compute).expand(lead + (p,)).reshape(rows, p)
    if swap:
        signal, kernel, n, p = kernel, signal, p, n
    if compute == torch.int64:
        out = _int64_rows(signal, kernel.flip(-1), pads)
    else:
        out = row_conv1d(signal.reshape(1, 1, rows, n), kernel.reshape(rows, 1, 1, p).flip(-1), padding=pads)
    if not floating:
        # float -> int64 is exact here; int64 -> a narrower int wraps (as scipy), never
        # float -> uint8 directly (saturating or undefined); -> bool is count > 0.
        out = out.to(torch.int64)
    out = out.to(result).reshape(lead + (out.shape[-1],))
    if scalar:
        out = out.reshape(())
    if numpy_in:
        out = out.numpy()
        return out[()] if scalar else out
    return out
