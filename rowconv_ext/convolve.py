"""convolve_rows: row i of A convolved with row i of B, scipy's semantics,
computed by row_conv1d (a true convolution is a correlation with the flipped
kernel) instead of a Python loop.

Result dtypes are scipy.signal.convolve's: NumPy's promotion of the inputs'
dtypes, exact integers (wrapping as scipy's integer arithmetic does) and bool
for bool. _result_dtype decides the result dtype; _block_rows computes one
block of rows in it.

The rows are computed in blocks of rows (_rows_per_block), each written into
the result as it is done, so that the temporaries stay bounded by
_BLOCK_BYTES whatever the size of the inputs and the result; the result may
be a caller's array (out=, a numpy.memmap included). Dask arrays in go to
_dask_rows: a lazy result, one block of rows per chunk (dask is imported only
then).
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .functional import row_conv1d
from .method import cost_plan, fft_block_arg

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

# The temporaries of one block of rows (inputs in the compute dtype, padded
# copies, FFT blocks and spectra, the result before its cast) stay below
# _BLOCK_BYTES: _rows_per_block counts _WORK_COPIES values of the compute dtype
# per point of a row (padded signal and kernel); row_conv1d's FFT method was
# measured to use 40-70% of that (benchmarks/convolve_rows_memory.py), the
# direct method less. A single row that needs more is one block of its own.
_BLOCK_BYTES = 128 << 20
_WORK_COPIES = 8

# Integers by the FFT (float64) are exact after rounding when the FFT's error is
# below 0.5. The FFT of n points is off elementwise by at most about
# c eps log2(n) ||x||_2 ||y||_2 <= c eps log2(n) n max|a| max|b| (n the
# transform length of one overlap-save block, both blocks within it); with
# c = 8 we ask for at most 0.25, a factor 2 below the rounding threshold.
_FFT_ERROR_C = 8
_FFT_ERROR_LIMIT = 0.25


# ---------------------------------------------------------------------------
# Inputs: checks, result dtype and shape

def _is_dask(x):
    """x is a dask.array.Array. Without importing dask: if dask.array was never
    imported, no such array exists."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def _as_array(name, value):
    """value as a tensor, a Dask array or a NumPy array, of a numeric dtype."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in _NUMPY_OF and value.dtype != torch.bfloat16:
            raise ValueError(f"convolve_rows: {name} must have a bool, integer, float or complex dtype, "
                             f"got {value.dtype}")
        return value
    try:
        array = value if _is_dask(value) else np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"convolve_rows: {name} must be a NumPy array or a tensor, got "
                         f"{type(value).__name__} ({e})") from None
    if array.dtype.kind not in "biufc":  # object, str, bytes, datetime, structured...
        raise ValueError(f"convolve_rows: {name} must be a NumPy array or a tensor of a bool, integer, float or "
                         f"complex dtype, got {type(value).__name__} of dtype {array.dtype}")
    return array


def _checked_inputs(a, b):
    """(a, b, lead, scalar): the inputs as arrays or tensors (0-d ones as one
    row of one), the broadcast leading dims (..., M) and whether both were 0-d."""
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
    return a, b, lead, scalar


def _result_dtype(a, b):
    """The dtype scipy.signal.convolve returns: np.result_type of the inputs'
    dtypes (torch dtypes read as their NumPy twins). bfloat16 has no twin: torch's
    promotion for it. A torch dtype, or the NumPy one where torch has none
    (longdouble, clongdouble)."""
    na, nb = (x.dtype if isinstance(x.dtype, np.dtype) else _NUMPY_OF.get(x.dtype) for x in (a, b))
    if na is None or nb is None:  # bfloat16
        other = nb if na is None else na
        if other is None or other.kind in "bui":
            return torch.bfloat16
        return torch.promote_types(torch.bfloat16, _TORCH_OF[other]) if other in _TORCH_OF else other
    result = np.result_type(na, nb)
    return _TORCH_OF.get(result, result)


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


def _signal_and_kernel(a, b, mode):
    """(signal, kernel, pads, length): the inputs in the roles row_conv1d gives
    them for scipy's mode, and the length of a result row."""
    swap, pads = _layout(a.shape[-1], b.shape[-1], mode)
    signal, kernel = (b, a) if swap else (a, b)
    return signal, kernel, pads, signal.shape[-1] + sum(pads) - kernel.shape[-1] + 1


def _device_of(a, b, result, tensor_in):
    """The device of the computation (NumPy inputs: the CPU), once a and b are
    known to have one and a result dtype torch can hold where tensors come in."""
    if isinstance(result, np.dtype) and tensor_in:  # longdouble or clongdouble: no torch dtype holds it
        name, x = ("a", a) if isinstance(a, np.ndarray) and a.dtype not in _TORCH_OF else ("b", b)
        raise ValueError(f"convolve_rows: {name} has dtype {x.dtype}, which torch lacks, so a tensor cannot "
                         f"hold the {result} result: expected NumPy arrays for both a and b, or a dtype torch "
                         f"has")
    device_a, device_b = (x.device if isinstance(x, torch.Tensor) else torch.device("cpu") for x in (a, b))
    if device_a != device_b:
        raise ValueError(f"convolve_rows: a and b must be on one device, got {device_a} and {device_b}")
    return device_a


def _check_dask_partners(a, b, out):
    """With a Dask input: the other a NumPy or Dask array, and no out (the result is lazy)."""
    for name, x in (("a", a), ("b", b)):
        if isinstance(x, torch.Tensor):
            raise ValueError(f"convolve_rows: {name} must be a NumPy or Dask array when the other input is a Dask "
                             f"array, got a Tensor")
    if out is not None:
        raise ValueError(f"convolve_rows: out must be None for Dask inputs (the result is a lazy Dask array; "
                         f"dask.array.store writes it into an array), got {type(out).__name__}")


# ---------------------------------------------------------------------------
# out=

def _check_out(out, shape, result, tensor_out, device, a, b):
    """Refuses an out that cannot take the result (shape, dtype, kind, device,
    writeability, autograd, memory shared with the inputs), before any work."""
    kind = "a torch.Tensor (the inputs include a tensor)" if tensor_out else "a NumPy array (the inputs are NumPy)"
    if not isinstance(out, torch.Tensor if tensor_out else np.ndarray):
        raise ValueError(f"convolve_rows: out must be {kind}, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"convolve_rows: out must have the result's shape {tuple(shape)}, got {tuple(out.shape)}")
    expected = result if tensor_out else _NUMPY_OF.get(result, result)
    if out.dtype != expected:
        raise ValueError(f"convolve_rows: out must have the result's dtype {expected}, got {out.dtype}")
    if tensor_out and out.device != device:
        raise ValueError(f"convolve_rows: out must be on the inputs' device {device}, got {out.device}")
    if not tensor_out and not out.flags.writeable:
        raise ValueError(f"convolve_rows: out must be writeable, got a read-only {type(out).__name__}")
    strides = out.stride() if tensor_out else out.strides
    if 0 not in out.shape and any(stride == 0 and size > 1 for size, stride in zip(out.shape, strides)):
        raise ValueError(f"convolve_rows: out must not have elements that share memory (a broadcast or expanded "
                         f"view), got strides {tuple(strides)} for shape {tuple(out.shape)}")
    grads = [name for name, x in (("a", a), ("b", b), ("out", out)) if getattr(x, "requires_grad", False)]
    if tensor_out and torch.is_grad_enabled() and grads:
        raise ValueError(f"convolve_rows: out= does not support autograd (as torch's out= functions): expected "
                         f"inputs and out that do not require grad (or torch.no_grad()), got {grads[0]} with "
                         f"requires_grad=True")
    for name, x in (("a", a), ("b", b)):
        if _shares_memory(out, x):
            raise ValueError(f"convolve_rows: out must not share memory with {name} (the inputs are read while out "
                             f"is written), got an out that overlaps {name}")


def _shares_memory(x, y):
    """Whether x and y may share memory: NumPy's exact test for two arrays (an
    undecided case counts as shared), overlapping address ranges for tensors."""
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        try:
            return np.shares_memory(x, y, max_work=10 ** 6)
        except np.exceptions.TooHardError:
            return True
    (x_lo, x_hi), (y_lo, y_hi) = _address_range(_to_tensor(x)), _address_range(_to_tensor(y))
    return x_lo < y_hi and y_lo < x_hi


def _address_range(t):
    """[first byte, last byte + 1) of the memory a tensor's elements occupy."""
    if t.numel() == 0:
        return 0, 0
    reach = [(size - 1) * stride * t.element_size() for size, stride in zip(t.shape, t.stride())]
    start = t.data_ptr() + sum(r for r in reach if r < 0)
    return start, t.data_ptr() + sum(r for r in reach if r > 0) + t.element_size()


# ---------------------------------------------------------------------------
# Rows of the (broadcast) inputs and of the result, a block at a time

def _to_tensor(x):
    """x as a tensor, sharing x's memory where torch can (a memmap stays one)."""
    if isinstance(x, torch.Tensor):
        return x
    if x.dtype.isnative and all(s >= 0 for s in x.strides):
        return torch.from_numpy(x if x.flags.writeable else np.asarray(_WriteableAlias(x)))
    # (a copy: ascontiguousarray keeps a negative stride along an axis of
    # length 1, where NumPy calls the array contiguous, and torch refuses it)
    return torch.from_numpy(np.array(x, dtype=x.dtype.newbyteorder("="), order="C", copy=True))


class _WriteableAlias:
    """A read-only array's memory flagged writeable, for torch.from_numpy, which
    warns that writes to such a tensor are undefined: inputs are only ever
    read. (A warnings filter would not do: catch_warnings blocks around an
    import drop it, and catch_warnings per call is not thread-safe.)"""

    def __init__(self, array):
        self.array = array  # the memory's owner stays alive with the alias
        pointer, _ = array.__array_interface__["data"]
        self.__array_interface__ = dict(array.__array_interface__, data=(pointer, False))


def _flat_rows(x, length):
    """x as a (rows, length) view, or None where its strides allow no view."""
    try:
        if isinstance(x, torch.Tensor):
            return x.view(-1, length)
        return x.reshape(-1, length, copy=False)
    except (RuntimeError, ValueError):
        return None


def _row_indices(lead, start, stop, like):
    """The leading-dims indices of the flat rows start:stop, for indexing like."""
    indices = np.unravel_index(np.arange(start, stop), lead)
    return tuple(torch.from_numpy(i) for i in indices) if isinstance(like, torch.Tensor) else indices


def _row_reader(x, lead):
    """(start, stop) -> rows start:stop of x broadcast to lead: (stop - start, length),
    a view where x's layout allows one, else a copy of those rows only."""
    shape = tuple(lead) + (x.shape[-1],)
    full = x.expand(shape) if isinstance(x, torch.Tensor) else np.broadcast_to(x, shape)
    flat = _flat_rows(full, x.shape[-1])
    if flat is not None:
        return lambda start, stop: flat[start:stop]
    return lambda start, stop: full[_row_indices(lead, start, stop, full)]


def _row_writer(out, lead, length):
    """(start, stop, rows) -> writes rows as the flat rows start:stop of out."""
    flat = _flat_rows(out, length)

    def write(start, stop, rows):
        if isinstance(out, np.ndarray) and isinstance(rows, torch.Tensor):
            rows = rows.numpy()
        if flat is not None:
            flat[start:stop] = rows
        else:
            out[_row_indices(lead, start, stop, out)] = rows
    return write


def _rows_per_block(signal_length, kernel_length, pads, itemsize):
    """Rows per block so that a block's temporaries stay below _BLOCK_BYTES
    (see there); at least one."""
    points = signal_length + sum(pads) + kernel_length
    return max(1, _BLOCK_BYTES // (_WORK_COPIES * points * itemsize))


def _row_blocks(rows, step):
    """(start, stop) of each block of step rows (the last one shorter)."""
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


# ---------------------------------------------------------------------------
# One block of rows: (rows, n) signal and (rows, p) kernel -> (rows, length)

def _correlate(signal, kernel, pads, method):
    """Each row of signal convolved with its row of kernel by row_conv1d."""
    rows, n, p = signal.shape[0], signal.shape[-1], kernel.shape[-1]
    out = row_conv1d(signal.reshape(1, 1, rows, n), kernel.reshape(rows, 1, 1, p).flip(-1), padding=pads,
                     method=method)
    return out.reshape(rows, out.shape[-1])


def _magnitude(t):
    """max |t| as a Python int (no overflow for int64's minimum)."""
    return max(-t.min().item(), t.max().item()) if t.numel() else 0


def _int64_rows(signal, kernel, pads):
    """Exact correlation of each row of signal with its flipped row of kernel
    in int64, wrapping mod 2^64 as scipy's integer arithmetic does mod its
    width; in blocks of output positions so the products stay small."""
    kernel = kernel.flip(-1)
    windows = F.pad(signal, pads).unfold(-1, kernel.shape[-1], 1)  # (rows, length, P), a view
    span = max(1, _INT64_BLOCK // max(1, windows.shape[0] * windows.shape[2]))
    return torch.cat([(windows[:, t:t + span] * kernel.unsqueeze(1)).sum(-1)
                      for t in range(0, windows.shape[1], span)], dim=-1)


def _auto_takes_fft(signal, kernel, pads):
    """Whether 'auto' takes the float64 FFT for these integer rows: the cost
    model prefers it, and its error bound (see _FFT_ERROR_C) at the planned
    transform length is below _FFT_ERROR_LIMIT, so the rounded result is exact."""
    x, w = (torch.empty((), dtype=torch.float64, device=signal.device).expand(shape)
            for shape in ((1, 1) + tuple(signal.shape), (kernel.shape[0], 1, 1, kernel.shape[1])))
    plan = cost_plan(x, w, 1, pads[0], pads[1])
    if plan["fft_seconds"] >= plan["direct_seconds"]:  # 'auto' would not take the FFT anyway
        return False
    n = plan["block"]
    bound = _FFT_ERROR_C * np.finfo(np.float64).eps * np.log2(max(n, 2)) * n
    return bound * _magnitude(signal) * _magnitude(kernel) < _FFT_ERROR_LIMIT


def _exact_rows(signal, kernel, pads):
    """Exact integer correlation by the direct method: in a float dtype whose
    integers hold every partial sum (at most max|a| max|b| min(N, P)), else int64."""
    bound = _magnitude(signal) * _magnitude(kernel) * min(signal.shape[-1], kernel.shape[-1])
    compute = next((dtype for limit, dtype in _EXACT_FLOATS if bound < limit), torch.int64)
    if compute == torch.int64:
        return _int64_rows(signal, kernel, pads)
    return _correlate(signal.to(compute), kernel.to(compute), pads, "direct")


def _integer_rows(signal, kernel, pads, method, result):
    """Result rows for bool and integer inputs. 'fft': scipy's, the float64 FFT
    rounded (np.around's ties to even) and cast to the result dtype as
    NumPy's astype casts (bool: count > 0). 'auto': the same FFT where its error
    bound proves it exact, else the exact direct method; both, like 'direct',
    wrap as scipy's integer arithmetic (int64 -> a narrower int wraps; uint64
    read as int64 is the same bits mod 2^64, and the result, at most 64 bits,
    is taken mod 2^bits anyway)."""
    if method == "fft":
        return _fft_rounded(signal, kernel, pads).to(result)
    signal, kernel = signal.to(torch.int64), kernel.to(torch.int64)
    if method == "auto" and _auto_takes_fft(signal, kernel, pads):
        return _fft_rounded(signal, kernel, pads).to(torch.int64).to(result)
    return _exact_rows(signal, kernel, pads).to(torch.int64).to(result)


def _fft_rounded(signal, kernel, pads):
    return _correlate(signal.to(torch.float64), kernel.to(torch.float64), pads, "fft").round()


def _compute_itemsize(result):
    """Bytes of one value in the dtype a block is computed in."""
    if result.is_floating_point or result.is_complex:
        return max(4, result.itemsize)  # float16 and bfloat16 may be computed in float32
    return 8  # int64 or float64


def _block_rows(signal, kernel, pads, method, result):
    """One block of result rows, of dtype result: floats in the result dtype
    (bfloat16 in float32, rounded once at the end), bool and integers exact
    (_integer_rows)."""
    if not (result.is_floating_point or result.is_complex):
        return _integer_rows(signal, kernel, pads, method, result)
    compute = torch.float32 if result == torch.bfloat16 else result
    return _correlate(signal.to(compute), kernel.to(compute), pads, method).to(result)


# ---------------------------------------------------------------------------
# Whole computations

def _tensor_rows(a, b, lead, mode, method, result, out):
    """The result (shape lead + (length,), dtype result) of tensors a and b,
    block by block into out (allocated once where None). A single block, or one
    that autograd records, is returned without the copy into out."""
    signal, kernel, pads, length = _signal_and_kernel(a, b, mode)
    if min(signal.shape[-1], kernel.shape[-1]) == 1:
        # scipy's FFT skips an axis of length 1 (fftconvolve: in1 * in2, in
        # the inputs' dtype): the direct method's products, exact and wrapping
        method = "direct"
    rows = int(np.prod(lead))
    step = _rows_per_block(signal.shape[-1], kernel.shape[-1], pads, _compute_itemsize(result))
    read_signal, read_kernel = _row_reader(signal, lead), _row_reader(kernel, lead)

    def block(start, stop):
        return _block_rows(read_signal(start, stop), read_kernel(start, stop), pads, method, result)

    shape = tuple(lead) + (length,)
    if out is None and rows <= step:
        return block(0, rows).reshape(shape)
    if out is None and torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return torch.cat([block(start, stop) for start, stop in _row_blocks(rows, step)]).reshape(shape)
    if out is None:
        out = torch.empty(shape, dtype=result, device=a.device)
    write = _row_writer(out, lead, length)
    for start, stop in _row_blocks(rows, step):
        write(start, stop, block(start, stop))
    return out


def _numpy_rows(a, b, lead, mode, result, out):
    """scipy's own arithmetic, np.convolve row by row, into out (allocated
    where None): the rare path for longdouble and clongdouble, which torch lacks."""
    signal, kernel, pads, length = _signal_and_kernel(a, b, mode)
    start = kernel.shape[-1] - 1 - pads[0]  # the mode's slice of 'full'
    if out is None:
        out = np.empty(tuple(lead) + (length,), result)
    read_signal, read_kernel = _row_reader(signal, lead), _row_reader(kernel, lead)
    write = _row_writer(out, lead, length)
    for i in range(int(np.prod(lead))):
        write(i, i + 1, np.convolve(read_signal(i, i + 1)[0], read_kernel(i, i + 1)[0])[start:start + length])
    return out


def _dask_block(a, b, mode, method):
    """One chunk of rows of the Dask result (NumPy in, NumPy out)."""
    return convolve_rows(a, b, mode, method)


def _dask_rows(a, b, lead, mode, method, result):
    """The lazy result of Dask (or NumPy) a and b: chunked by rows as the Dask
    input is (a's where both are), one map_blocks task per chunk of rows."""
    import dask.array as da  # noqa: PLC0415 (optional: only for Dask inputs)

    source = a if _is_dask(a) else b
    a, b, source = (da.broadcast_to(x if _is_dask(x) else da.from_array(x), tuple(lead) + (x.shape[-1],))
                    for x in (a, b, source))
    row_chunks = source.chunks[:-1]
    a, b = (x.rechunk(row_chunks + ((x.shape[-1],),)) for x in (a, b))  # the same rows; whole rows
    length = _signal_and_kernel(a, b, mode)[3]
    return da.map_blocks(_dask_block, a, b, mode=mode, method=method, dtype=result,
                         chunks=row_chunks + ((length,),), meta=np.empty((0,) * (len(lead) + 1), result),
                         token="convolve_rows")


def convolve_rows(a, b, mode="full", method="auto", out=None):
    """out[..., i, :] = scipy.signal.convolve(a[..., i, :], b[..., i, :], mode, method)

    a: (..., M, N), b: (..., M, P) (leading dims broadcast; 1-D a and b are one
    row; 0-d a and b give a * b, as scipy). mode: 'full' (length N + P - 1),
    'same' (length N, centred on 'full' as scipy does) or 'valid' (length
    max(N, P) - min(N, P) + 1; like scipy, the longer of the two rows slides
    under the shorter).

    method: 'direct' (multiply-adds, exact to rounding per element), 'fft' (an
    FFT convolution: its error is relative to the norms of the rows, not per
    element) or 'auto' (the faster of the two by row_conv1d's cost model, as
    scipy.signal.choose_conv_method). Bool and integer inputs stay exact under
    'auto': it takes the FFT (float64, then rounded) only where its error bound
    proves the rounded result exact, the exact direct method otherwise; 'fft'
    on them is scipy's: the float64 FFT rounded to the nearest integer (ties
    to even) and cast to the result dtype as NumPy's astype casts (bool:
    count > 0), exact only while the sums stay well inside float64's integers
    and the dtype's range.

    The result dtype is scipy's: NumPy's promotion of the inputs' dtypes (torch
    dtypes read as the NumPy ones; bfloat16 as torch promotes it, computed in
    float32); integers are exact ('auto' and 'direct'), wrapping on overflow
    as scipy's do; bool inputs give bool (an OR of ANDs). NumPy arrays in give
    a NumPy array out (longdouble and clongdouble included, computed by
    np.convolve whatever the method); tensors in give a tensor out,
    differentiable in floating a and b.

    out: an array (NumPy inputs; a numpy.memmap included) or a tensor (tensor
    inputs, same device) of the result's shape and dtype to write the result
    into; it is returned. It must not share memory with a or b, and with
    tensors neither a, b nor out may require grad (as torch's out= functions).

    Memory: the rows are computed in blocks of rows and each block is written
    into the result as it is done, so that beyond the inputs and the result
    the temporaries stay below about 128 MiB (_BLOCK_BYTES), or one row's
    needs where a single row needs more. With memmaps for a and out, neither
    the input nor the result needs to fit in memory. (Tensors that autograd records are joined
    at the end instead: twice the result.)

    Dask arrays in (a or b) give a lazy Dask array out (dtype as for NumPy
    inputs), chunked by rows as the Dask input is, each chunk computed by
    convolve_rows (map_blocks); out= is refused for them (use
    dask.array.store). Dask is imported only when a Dask array comes in.
    """
    if mode not in MODES:
        raise ValueError(f"convolve_rows: mode must be one of {MODES}, got {mode!r}")
    fft_block_arg(method, "convolve_rows")  # checks method
    dask_in = _is_dask(a) or _is_dask(b)
    if dask_in:
        _check_dask_partners(a, b, out)
    tensor_in = isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)
    a, b, lead, scalar = _checked_inputs(a, b)
    result = _result_dtype(a, b)
    if dask_in:
        lazy = _dask_rows(a, b, lead, mode, method, _NUMPY_OF.get(result, result))
        return lazy.reshape(()) if scalar else lazy
    device = _device_of(a, b, result, tensor_in)
    if out is not None:
        shape = () if scalar else tuple(lead) + (_signal_and_kernel(a, b, mode)[3],)
        _check_out(out, shape, result, tensor_in, device, a, b)
    if isinstance(result, np.dtype):
        values = _numpy_rows(a, b, lead, mode, result, out)
    else:
        values = _tensor_rows(_to_tensor(a), _to_tensor(b), lead, mode, method, result, out)
    if out is not None:
        return out
    if not tensor_in and isinstance(values, torch.Tensor):
        values = values.numpy()
    if scalar:  # scipy's a * b: a NumPy scalar, or a 0-d tensor
        return values.reshape(()) if tensor_in else values.reshape(())[()]
    return values
