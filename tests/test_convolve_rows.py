"""convolve_rows against scipy.signal.convolve applied row by row."""
import os
import pathlib

import numpy as np
import pytest
import scipy.signal
import torch

import rowconv_ext
from rowconv_ext import convolve_rows

MODES = ["full", "same", "valid"]


def _scipy_rows(a, b, mode, method="auto"):
    return np.vstack([scipy.signal.convolve(ai, bi, mode, method) for ai, bi in zip(a, b)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("N,P", [(7, 3), (3, 7), (6, 4), (4, 6), (5, 5), (1, 1), (1, 4), (4, 1), (129, 20), (20, 151)])
def test_numpy_rows_equal_scipy(mode, N, P):
    rng = np.random.default_rng(N * 1000 + P)
    a, b = rng.standard_normal((5, N)), rng.standard_normal((5, P))
    out = convolve_rows(a, b, mode)
    ref = _scipy_rows(a, b, mode)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == ref.shape
    # float64 sums of min(N, P) products: far inside 1e-12.
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_dtype_is_kept(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 1000)).astype(dtype), rng.standard_normal((300, 20)).astype(dtype)
    out = convolve_rows(a, b)
    assert out.dtype == dtype
    # float32: sums of 20 products, accumulated in float32.
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, _scipy_rows(a.astype(np.float64), b.astype(np.float64), "full"), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", MODES)
def test_leading_batch_dims(mode):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3, 4, 17)), rng.standard_normal((2, 3, 4, 5))
    out = convolve_rows(a, b, mode)
    ref = _scipy_rows(a.reshape(-1, 17), b.reshape(-1, 5), mode).reshape(2, 3, 4, -1)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    # broadcast: one kernel per row shared across the batch
    out_b = convolve_rows(a, b[0, 0], mode)
    ref_b = _scipy_rows(a.reshape(-1, 17), np.broadcast_to(b[0, 0], (2, 3, 4, 5)).reshape(-1, 5), mode)
    np.testing.assert_allclose(out_b, ref_b.reshape(out_b.shape), rtol=1e-12, atol=1e-12)


def test_one_dimensional_inputs_are_one_row():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5])
    np.testing.assert_allclose(convolve_rows(a, b), scipy.signal.convolve(a, b))


@pytest.mark.parametrize("mode", MODES)
def test_tensors_in_tensor_out_and_differentiable(mode):
    a = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = convolve_rows(a, b, mode)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), _scipy_rows(a.detach().numpy(), b.detach().numpy(), mode),
                               rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(a, b, mode), (a, b))
    # the kernel longer than the row: scipy's swap in 'valid'
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(b, a, mode), (a, b))


def test_large_matrix_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4096, 1024)).astype(np.float32), rng.standard_normal((4096, 20)).astype(np.float32)
    ref = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), axes=1)
    # float32 accumulation of 20 products of standard normals.
    np.testing.assert_allclose(convolve_rows(a, b), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("args,match", [
    ((np.ones((2, 3)), np.ones((2, 2)), "circular"), "mode must be one of"),
    ((np.ones((2, 0)), np.ones((2, 2))), "rows of a must not be empty"),
    ((np.ones((2, 3)), np.ones((3, 2))), r"leading .* must match or broadcast"),
    ((np.ones((2, 3)), "abc"), "b must be a NumPy array or a tensor"),
])
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        convolve_rows(*args)


# ---------------------------------------------------------------------------
# Result dtypes and values for every pair of NumPy's numeric dtypes, as scipy.

def _row_conv1d_takes_complex():
    try:
        rowconv_ext.row_conv1d(torch.ones(1, 1, 1, 2, dtype=torch.complex64),
                               torch.ones(1, 1, 1, 1, dtype=torch.complex64))
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return False
    return True


needs_complex = pytest.mark.skipif(not _row_conv1d_takes_complex(),
                                   reason="row_conv1d has no complex64/complex128 support in this build yet")

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
          np.float16, np.float32, np.float64, np.complex64, np.complex128, np.longdouble, np.clongdouble]
TORCH_LACKS = (np.longdouble, np.clongdouble)


def _dtype_pairs():
    pairs = []
    for da in DTYPES:
        for db in DTYPES:
            # scipy's result dtype for the pair: complex64/complex128 ones go through row_conv1d's complex support.
            kind = scipy.signal.convolve(np.ones(1, da), np.ones(1, db)).dtype
            marks = [needs_complex] if kind in (np.complex64, np.complex128) else []
            pairs.append(pytest.param(da, db, marks=marks, id=f"{np.dtype(da).name}-{np.dtype(db).name}"))
    return pairs


def _scipy_reference(a, b, mode):
    try:
        return _scipy_rows(a, b, mode)
    except ValueError:
        # scipy's 'same' with rows shorter than the kernel refuses bool and float16 ("Unsupported
        # type"); its definition of 'same', the centred part of 'full' (scipy's _centered), stands in.
        assert mode == "same" and a.shape[-1] < b.shape[-1]
        full = _scipy_rows(a, b, "full")
        start = (full.shape[-1] - a.shape[-1]) // 2
        return full[:, start:start + a.shape[-1]]


def _random(rng, dtype, shape):
    """Integers over the type's whole range (negatives where signed, so products overflow
    the narrow types and scipy's wraparound is tested), normal floats, random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _assert_matches(out, ref, a, b):
    """out (a NumPy array) is scipy's ref: its dtype and shape, its bits for bool and integers."""
    assert isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.shape == ref.shape
    if ref.dtype.kind in "biu":
        assert np.array_equal(out, ref)
        return
    # Floats: each output is a sum of k = min(N, P) products, rounded in the result's precision by
    # scipy and by us in different orders, so each side is off by at most ~k eps sum|products|
    # <= k^2 eps max|a| max|b| (the inputs' own conversion to the result dtype is the same on both).
    k = min(a.shape[-1], b.shape[-1])
    scale = np.abs(a.astype(np.clongdouble)).max() * np.abs(b.astype(np.clongdouble)).max()
    wide = np.clongdouble if ref.dtype.kind == "c" else np.longdouble
    np.testing.assert_allclose(out.astype(wide), ref.astype(wide), rtol=0,
                               atol=2 * k * k * np.finfo(ref.dtype).eps * scale)


@pytest.mark.parametrize("da,db", _dtype_pairs())
def test_every_dtype_pair_matches_scipy(da, db):
    rng = np.random.default_rng([np.dtype(da).num, np.dtype(db).num])
    for n, p in [(7, 3), (3, 7)]:  # both orders: scipy's swap in 'valid', 'same' shorter than the kernel
        a, b = _random(rng, da, (4, n)), _random(rng, db, (4, p))
        for mode in MODES:
            ref = _scipy_reference(a, b, mode)
            _assert_matches(convolve_rows(a, b, mode), ref, a, b)
            if da in TORCH_LACKS or db in TORCH_LACKS:
                continue
            # Tensors: the same NumPy rule on the equivalent torch dtypes.
            out = convolve_rows(torch.from_numpy(a), torch.from_numpy(b), mode)
            assert isinstance(out, torch.Tensor) and out.dtype == torch.from_numpy(ref[:0]).dtype
            _assert_matches(out.numpy(), ref, a, b)


@pytest.mark.parametrize("mode", MODES)
def test_int64_beyond_2_to_53_is_exact(mode):
    # Products up to 2^60, sums of 40 of them: far beyond float64's integers, within int64
    # (no wraparound: the plain exact answer). Enough rows for several blocks of products.
    rng = np.random.default_rng(5)
    a = rng.integers(-2 ** 40, 2 ** 40, (64, 2000))
    b = rng.integers(-2 ** 20, 2 ** 20, (64, 40))
    out = convolve_rows(a, b, mode)
    ref = _scipy_rows(a, b, mode)
    assert out.dtype == ref.dtype == np.int64
    assert np.array_equal(out, ref)
    assert np.abs(ref).max() > 2 ** 53
    out_t = convolve_rows(torch.from_numpy(b), torch.from_numpy(a), mode)
    assert out_t.dtype == torch.int64
    assert np.array_equal(out_t.numpy(), _scipy_rows(b, a, mode))


def test_bool_is_or_of_ands():
    a = np.array([[True, True, False, True]])
    b = np.array([[True, True]])
    out = convolve_rows(a, b)
    ref = _scipy_rows(a, b, "full")
    assert out.dtype == ref.dtype == np.bool_
    assert np.array_equal(out, ref)
    assert np.array_equal(ref, [[True, True, True, True, True]])  # counts 1 2 1 1 1: > 0


@pytest.mark.parametrize("x,y", [
    (2.0, 3.0), (np.float32(2.5), np.int64(3)), (np.int8(100), np.int8(100)), (True, True),
    (np.uint8(200), np.int8(-3)), (np.uint64(2 ** 63), np.int8(3)), (np.float16(1.5), np.float16(2.0)),
    (np.longdouble(1.5), np.longdouble(3.0)),
])
def test_zero_dim_inputs_give_a_times_b(x, y):
    a, b = np.array(x), np.array(y)
    ref = scipy.signal.convolve(a, b)
    out = convolve_rows(a, b)
    assert type(out) is type(ref) and out.dtype == ref.dtype and np.shape(out) == np.shape(ref) == ()
    assert out == ref
    if a.dtype == np.longdouble:
        return
    out_t = convolve_rows(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == () and out_t.dtype == torch.from_numpy(np.asarray(ref)).dtype
    assert out_t.item() == ref


@pytest.mark.parametrize("other,result", [
    (torch.int64, torch.bfloat16), (torch.uint16, torch.bfloat16), (torch.bool, torch.bfloat16),
    (torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32), (torch.float64, torch.float64),
])
def test_bfloat16_follows_torch_promotion(other, result):
    rng = np.random.default_rng(6)
    a = torch.from_numpy(rng.standard_normal((3, 9))).to(torch.bfloat16)
    b = torch.from_numpy(_random(rng, torch.empty(0, dtype=other).numpy().dtype if other != torch.bfloat16
                                 else np.float32, (3, 4))).to(other)
    for x, y in [(a, b), (b, a)]:
        out = convolve_rows(x, y, "same")
        assert out.dtype == result
        xs, ys = x.double().numpy(), y.double().numpy()
        ref = _scipy_rows(xs, ys, "same")
        # Computed in float32 from the bfloat16 inputs, then rounded once to the result's dtype.
        eps = torch.finfo(result).eps
        scale = np.abs(xs).max() * np.abs(ys).max()
        np.testing.assert_allclose(out.double().numpy(), ref, rtol=0, atol=2 * 4 * 4 * eps * scale)


def test_mixed_dtype_tensors_are_differentiable():
    a = torch.randn(3, 9, dtype=torch.float32, requires_grad=True)
    b = torch.randint(-5, 5, (3, 4))
    out = convolve_rows(a, b)
    assert out.dtype == torch.float64  # NumPy: float32 with int64 gives float64
    out.sum().backward()
    assert a.grad.dtype == torch.float32
    # d/da_j sum_k out_k = sum of row i of b, for every j
    torch.testing.assert_close(a.grad, b.sum(-1, keepdim=True).float().expand(3, 9))


@needs_complex
@pytest.mark.parametrize("mode", MODES)
def test_complex_tensors_differentiable(mode):
    a = torch.randn(3, 9, dtype=torch.complex128, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    out = convolve_rows(a, b, mode)
    np.testing.assert_allclose(out.detach().numpy(), _scipy_rows(a.detach().numpy(), b.detach().numpy(), mode),
                               rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(a, b, mode), (a, b))


@pytest.mark.parametrize("args,match", [
    ((np.array(2.0), np.ones((2, 3))), r"a must have at least 1 dimension .* got a 0-d a"),
    ((np.ones(3), torch.tensor(2.0)), r"b must have at least 1 dimension .* got a 0-d b"),
    ((np.array([1, "x"], dtype=object), np.ones(2)), r"a must be a NumPy array or a tensor of a bool, integer, "
                                                     r"float or complex dtype, got ndarray of dtype object"),
    ((np.ones((2, 3)), "abc"), r"b must be a NumPy array or a tensor .* got str of dtype <U3"),
    ((np.ones((2, 3)), [[1.0, 2.0], [3.0]]), r"b must be a NumPy array or a tensor, got list"),
    ((torch.ones(2, 3, dtype=torch.float8_e4m3fn), torch.ones(2, 2)),
     r"a must have a bool, integer, float or complex dtype, got torch.float8_e4m3fn"),
    ((torch.ones(2, 3), np.ones((2, 2), np.longdouble)), r"b has dtype float128, which torch lacks"),
    ((np.ones((2, 3), np.clongdouble), torch.ones(2, 2)), r"a has dtype complex256, which torch lacks"),
])
def test_refusals_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        convolve_rows(*args)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64])  # computed in float32, float64, int64
@pytest.mark.parametrize("mode", MODES)
def test_integer_leading_batch_dims(dtype, mode):
    rng = np.random.default_rng(7)
    a, b = _random(rng, dtype, (2, 3, 4, 17)), _random(rng, dtype, (4, 5))
    out = convolve_rows(a, b, mode)  # b broadcast over the leading dims
    ref = _scipy_rows(a.reshape(-1, 17), np.broadcast_to(b, (2, 3, 4, 5)).reshape(-1, 5), mode)
    assert out.dtype == ref.dtype and np.array_equal(out, ref.reshape(out.shape))


# ---------------------------------------------------------------------------
# method='auto' | 'direct' | 'fft'

import rowconv_ext.convolve as convolve_module  # noqa: E402  (white-box: block size and paths)
from rowconv_ext.method import cost_constants, set_cost_constants  # noqa: E402

METHODS = ["auto", "direct", "fft"]
FLOATS = [np.float32, np.float64, pytest.param(np.complex64, marks=needs_complex),
          pytest.param(np.complex128, marks=needs_complex)]
# N < P, N = P, long rows with a short kernel, a long kernel: 'valid' swaps and 'same' is shorter than the kernel.
LENGTHS = [(5, 9), (8, 8), (3000, 37), (40, 1500)]


def _wide(x):
    return x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)


def _assert_normwise(out, ref, a, b):
    """Row by row, ||out - ref|| <= 8 eps log2(n) ||a|| ||b||, n = N + P (at least the FFT's length).

    Norm-wise, not per element: the FFT's rounding errors are spread over every output
    of a row in proportion to the norms of the rows, so an output that is small by
    cancellation carries an absolute error of the size of the others and its relative
    error can be large; only the direct method is exact to rounding per element."""
    eps = np.finfo(out.dtype).eps
    n = a.shape[-1] + b.shape[-1]
    err = np.linalg.norm(_wide(out) - ref, axis=-1)
    bound = 8 * eps * np.log2(n) * np.linalg.norm(_wide(a), axis=-1) * np.linalg.norm(_wide(b), axis=-1)
    assert np.all(err <= bound), (err / bound).max()


@pytest.mark.parametrize("N,P", LENGTHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_methods_on_floats_match_scipy(method, mode, dtype, N, P):
    rng = np.random.default_rng([N, P, np.dtype(dtype).num, MODES.index(mode), METHODS.index(method)])
    a, b = _random(rng, dtype, (4, N)), _random(rng, dtype, (4, P))
    out = convolve_rows(a, b, mode, method)
    if method == "direct":  # exact to rounding per element, against scipy in the same dtype
        _assert_matches(out, _scipy_rows(a, b, mode), a, b)
    else:  # against scipy on the same values in double precision
        assert out.dtype == dtype and out.shape == _scipy_rows(a, b, mode).shape
        _assert_normwise(out, _scipy_rows(_wide(a), _wide(b), mode), a, b)
    out_t = convolve_rows(torch.from_numpy(a), torch.from_numpy(b), mode, method)
    np.testing.assert_array_equal(out_t.numpy(), out)  # the same computation


@pytest.mark.parametrize("method", [None, "FFT", "overlap-add", 1])
def test_bad_method_is_refused(method):
    with pytest.raises(ValueError, match=r"convolve_rows: method must be one of \('auto', 'direct', 'fft'\), got "
                                         + repr(method).replace("(", r"\(")):
        convolve_rows(np.ones((2, 3)), np.ones((2, 2)), "full", method)


@pytest.mark.parametrize("mode", MODES)
def test_fft_method_is_differentiable(mode):
    gen = torch.Generator().manual_seed(11)
    a = torch.randn(3, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    np.testing.assert_allclose(convolve_rows(a, b, mode, "fft").detach().numpy(),
                               _scipy_rows(a.detach().numpy(), b.detach().numpy(), mode), rtol=0, atol=1e-13)
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(a, b, mode, "fft"), (a, b))
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(b, a, mode, "fft"), (a, b))  # 'valid' swaps


# ---------------------------------------------------------------------------
# Integers: exact under 'auto', scipy's rounded FFT under 'fft'

@pytest.fixture
def fft_preferred():
    """A cost model under which 'auto' prefers the FFT at every size, so that small
    inputs reach the FFT's exactness rule (the measured one does so only for large ones)."""
    saved = cost_constants("cpu")
    set_cost_constants(dict(saved, direct_mac=1.0, direct_call=1.0), "cpu")
    yield
    set_cost_constants(saved, "cpu")


@pytest.fixture
def methods_run(monkeypatch):
    """The methods convolve_rows hands to row_conv1d, call by call."""
    calls = []
    correlate = convolve_module._correlate

    def spy(signal, kernel, pads, method):
        calls.append(method)
        return correlate(signal, kernel, pads, method)
    monkeypatch.setattr(convolve_module, "_correlate", spy)
    return calls


INTEGERS = [np.int8, np.int16, np.int32, np.int64, np.uint8]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INTEGERS)
def test_integers_under_auto_are_exact(dtype, mode, fft_preferred, methods_run):
    rng = np.random.default_rng([np.dtype(dtype).num, MODES.index(mode)])
    a, b = _random(rng, dtype, (3, 700)), _random(rng, dtype, (3, 90))  # the whole range: sums wrap
    for x, y in [(a, b), (b, a)]:
        out = convolve_rows(x, y, mode)
        assert out.dtype == dtype
        # scipy's exact direct method (its 'auto' takes the FFT for some 16-bit inputs here, and
        # casts sums beyond the float-to-int16 conversion's range to garbage).
        assert np.array_equal(out, _scipy_rows(x, y, mode, "direct"))
    # The FFT's error bound allows the 8- and 16-bit ranges, not the 32- and 64-bit ones.
    assert ("fft" in methods_run) == (np.iinfo(dtype).bits <= 16)


@pytest.mark.parametrize("mode", MODES)
def test_integers_near_the_fft_bound(mode, fft_preferred, methods_run):
    # The FFT (float64) is taken only when 8 eps log2(n) n max|a| max|b| < 0.25, n the transform
    # length (here at most ~3000): max|a| max|b| = 2^30 is inside, 2^38 outside, though scipy's
    # own rule (max|a| max|b| min(N, P) < 2^52) would take the FFT for both. Both must be exact,
    # and the extreme values are in the inputs.
    rng = np.random.default_rng(MODES.index(mode))
    for bits_a, bits_b, fft in [(19, 11, True), (24, 14, False)]:
        a = rng.integers(-2 ** bits_a, 2 ** bits_a, (3, 1500), endpoint=True)
        b = rng.integers(-2 ** bits_b, 2 ** bits_b, (3, 300), endpoint=True)
        a[:, 0], b[:, 0] = 2 ** bits_a, -2 ** bits_b
        methods_run.clear()
        out = convolve_rows(a, b, mode)
        assert np.array_equal(out, _scipy_rows(a, b, mode, "direct"))
        assert ("fft" in methods_run) == fft
        assert np.abs(out).max() > 2 ** (bits_a + bits_b)  # far beyond float32's integers


def test_integers_under_direct_never_use_the_fft(fft_preferred, methods_run):
    rng = np.random.default_rng(12)
    a, b = _random(rng, np.int8, (3, 500)), _random(rng, np.int8, (3, 60))
    assert np.array_equal(convolve_rows(a, b, "full", "direct"), _scipy_rows(a, b, "full", "direct"))
    assert methods_run == ["direct"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INTEGERS)
def test_integers_under_fft_are_scipys_fft(dtype, mode):
    # scipy: np.around(fftconvolve(...)).astype(result dtype). The 8-bit types over their
    # whole range (sums wrap through that cast), the others where the sums fit them.
    rng = np.random.default_rng([np.dtype(dtype).num, MODES.index(mode), 1])
    if np.iinfo(dtype).bits == 8:
        a, b = _random(rng, dtype, (3, 700)), _random(rng, dtype, (3, 90))
    else:
        a, b = rng.integers(-12, 12, (3, 700)).astype(dtype), rng.integers(-12, 12, (3, 90)).astype(dtype)
    for x, y in [(a, b), (b, a)]:
        ref = _scipy_rows(x, y, mode, "fft")
        out = convolve_rows(x, y, mode, "fft")
        assert out.dtype == ref.dtype == dtype
        assert np.array_equal(out, ref)
        assert np.array_equal(convolve_rows(torch.from_numpy(x), torch.from_numpy(y), mode, "fft").numpy(), ref)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INTEGERS + [np.float32, np.complex128])
def test_fft_with_rows_of_one_is_scipys_product(dtype, mode):
    # scipy's fftconvolve skips an axis of length 1 (in1 * in2 in the inputs'
    # dtype): exact and wrapping, no float64 rounding, for every dtype
    rng = np.random.default_rng([np.dtype(dtype).num, MODES.index(mode), 2])
    a, b = _random(rng, dtype, (3, 9)), _random(rng, dtype, (3, 1))
    if np.dtype(dtype) == np.int64:  # beyond float64's integers
        a[0, :3] = [2**60 + 1, 2**59 + 7, -(2**62) + 3]
    for x, y in [(a, b), (b, a), (a[:, :1], b)]:
        ref = _scipy_rows(x, y, mode, "fft")
        out = convolve_rows(x, y, mode, "fft")
        assert out.dtype == ref.dtype
        if np.dtype(dtype).kind in "biu":
            assert np.array_equal(out, ref)
        else:  # one product an element: a few roundings of the largest product
            atol = 4 * np.finfo(dtype).eps * np.abs(x).max() * np.abs(y).max()
            np.testing.assert_allclose(out, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_reversed_views_along_an_axis_of_one_match_scipy(dtype):
    # x[::-1] along an axis of length 1: NumPy calls it contiguous, its stride
    # is negative (torch refuses such arrays without a copy)
    rng = np.random.default_rng(3)
    a, b = _random(rng, dtype, (1, 40)), _random(rng, dtype, (4, 7))
    for x, y in [(a[::-1], b[:1]), (a, b[:1, ::-1]), (b[:, :1][:, ::-1], b), (a[0][::-1], b[0, :1][::-1])]:
        assert any(s < 0 for s in x.strides + y.strides)
        x_, y_ = np.atleast_2d(x), np.atleast_2d(y)
        for mode in MODES:
            ref = _scipy_rows(x_, y_, mode, "direct")
            out = np.atleast_2d(convolve_rows(x, y, mode))
            if np.dtype(dtype).kind == "i":
                np.testing.assert_array_equal(out, ref)
            else:  # sums of up to 7 products: a few roundings of 7 of the largest products
                atol = 4 * 7 * np.finfo(dtype).eps * np.abs(x).max() * np.abs(y).max()
                np.testing.assert_allclose(out, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("method", METHODS)
def test_bool_under_every_method_is_or_of_ands(method, fft_preferred):
    rng = np.random.default_rng(13)
    a, b = rng.random((4, 300)) < 0.05, rng.random((4, 40)) < 0.05  # sparse: many counts of 0
    out = convolve_rows(a, b, "full", method)
    assert out.dtype == np.bool_ and np.array_equal(out, _scipy_rows(a, b, "full"))


# ---------------------------------------------------------------------------
# out=

def _outs(kind, shape, dtype, tmp_path):
    if kind == "ndarray":
        return np.full(shape, -1, dtype)
    if kind == "memmap":
        return np.memmap(tmp_path / "out.bin", dtype=dtype, mode="w+", shape=shape)
    return torch.full(shape, -1, dtype=torch.from_numpy(np.empty(0, dtype)).dtype)


@pytest.mark.parametrize("kind", ["ndarray", "memmap", "tensor"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_out_is_written_and_returned(kind, mode, method, tmp_path):
    rng = np.random.default_rng([MODES.index(mode), METHODS.index(method)])
    a, b = rng.standard_normal((2, 5, 60)), rng.standard_normal((5, 13))  # b broadcast over a's batch
    a_copy, b_copy = a.copy(), b.copy()
    ref = _scipy_rows(a.reshape(-1, 60), np.tile(b, (2, 1)), mode).reshape(2, 5, -1)
    out = _outs(kind, ref.shape, np.float64, tmp_path)
    x, y = (torch.from_numpy(a), torch.from_numpy(b)) if kind == "tensor" else (a, b)
    assert convolve_rows(x, y, mode, method, out=out) is out
    values = out.numpy() if kind == "tensor" else np.asarray(out)
    np.testing.assert_allclose(values, ref, rtol=0, atol=1e-12)
    assert np.array_equal(a, a_copy) and np.array_equal(b, b_copy)


@pytest.mark.parametrize("dtype", [np.int16, np.bool_, np.float32, np.complex64, np.longdouble])
def test_out_in_every_result_dtype(dtype, tmp_path):
    rng = np.random.default_rng(14)
    a, b = _random(rng, dtype, (6, 50)), _random(rng, dtype, (6, 7))
    ref = _scipy_rows(a, b, "same")
    out = _outs("memmap", ref.shape, ref.dtype, tmp_path)
    assert convolve_rows(a, b, "same", out=out) is out
    _assert_matches(np.asarray(out), ref, a, b)


def test_out_with_strides_that_allow_no_flat_view():
    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((3, 4, 30)), rng.standard_normal((3, 4, 6))
    ref = _scipy_rows(a.reshape(-1, 30), b.reshape(-1, 6), "full").reshape(3, 4, 35)
    out = np.zeros((4, 3, 35)).transpose(1, 0, 2)  # rows of (3, 4) are not one stride apart
    assert convolve_rows(a, b, out=out) is out
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    out_t = torch.zeros(4, 3, 35, dtype=torch.float64).transpose(0, 1)
    assert convolve_rows(torch.from_numpy(a), torch.from_numpy(b), out=out_t) is out_t
    np.testing.assert_allclose(out_t.numpy(), ref, rtol=0, atol=1e-12)


def test_out_zero_dim():
    out = np.zeros((), np.int16)
    assert convolve_rows(np.array(300, np.int16), np.array(300, np.int16), out=out) is out
    assert out == scipy.signal.convolve(np.array(300, np.int16), np.array(300, np.int16))


@pytest.mark.parametrize("dtype", [np.float64, np.int8, np.int64, np.longdouble])
@pytest.mark.parametrize("method", METHODS)
def test_no_rows(method, dtype):
    a, b = np.ones((2, 0, 5), dtype), np.ones((0, 3), dtype)
    out = convolve_rows(a, b, "valid", method)  # no rows: nothing for scipy to compare with
    assert out.shape == (2, 0, 3) and out.dtype == dtype
    given = np.empty((2, 0, 3), dtype)
    assert convolve_rows(a, b, "valid", method, out=given) is given


def _bad_outs(tmp_path):
    """(a, b, out, mode, message) for every out that must be refused."""
    a, b = np.ones((4, 10)), np.ones((4, 3))
    ta, tb = torch.ones(4, 10, dtype=torch.float64), torch.ones(4, 3, dtype=torch.float64)
    read_only = np.zeros((4, 12))
    read_only.flags.writeable = False
    np.memmap(tmp_path / "r.bin", np.float64, "w+", shape=(4, 12)).flush()
    buffer, buffer_b = np.zeros((4, 30)), np.zeros((4, 30))
    grad_a = ta.clone().requires_grad_()
    return [
        (a, b, np.zeros((4, 11)), "full", r"out must have the result's shape \(4, 12\), got \(4, 11\)"),
        (a, b, np.zeros((12,)), "full", r"out must have the result's shape \(4, 12\), got \(12,\)"),
        (a, b, np.zeros((4, 12), np.float32), "full", "out must have the result's dtype float64, got float32"),
        (ta, tb, torch.zeros(4, 12), "full", "out must have the result's dtype torch.float64, got torch.float32"),
        (a, b, torch.zeros(4, 12, dtype=torch.float64), "full", "out must be a NumPy array .* got Tensor"),
        (ta, tb, np.zeros((4, 12)), "full", r"out must be a torch.Tensor .* got ndarray"),
        (ta, b, np.zeros((4, 12)), "full", r"out must be a torch.Tensor .* got ndarray"),
        (a, b, [[0.0] * 12] * 4, "full", "out must be a NumPy array .* got list"),
        (ta, tb, torch.zeros(4, 12, dtype=torch.float64, device="meta"), "full",
         "out must be on the inputs' device cpu, got meta"),
        (a, b, read_only, "full", "out must be writeable, got a read-only ndarray"),
        (a, b, np.memmap(tmp_path / "r.bin", np.float64, "r", shape=(4, 12)), "full",
         "out must be writeable, got a read-only memmap"),
        (a, b, np.broadcast_to(np.zeros((4, 1)), (4, 12)), "full", "out must be writeable"),
        (ta, tb, torch.zeros(4, 1, dtype=torch.float64).expand(4, 12), "full",
         r"out must not have elements that share memory .* got strides \(1, 0\)"),
        (a, b, a, "same", "out must not share memory with a"),
        (a, buffer_b[:, :3], buffer_b[:, 2:14], "full", "out must not share memory with b"),  # one column
        (buffer[:, :10], b, buffer[:, 5:15], "same", "out must not share memory with a"),
        (ta, tb, ta, "same", "out must not share memory with a"),
        (ta[:, :10], tb, ta.view(4, 10)[:, :], "same", "out must not share memory with a"),
        (a, torch.from_numpy(b), torch.from_numpy(a), "same", "out must not share memory with a"),
        (grad_a, tb, torch.zeros(4, 12, dtype=torch.float64), "full",
         "out= does not support autograd .* got a with requires_grad=True"),
        (ta, tb, torch.zeros(4, 12, dtype=torch.float64, requires_grad=True), "full",
         "out= does not support autograd .* got out with requires_grad=True"),
    ]


def test_bad_outs_are_refused_before_any_work(tmp_path, monkeypatch):
    def no_work(*args):
        raise AssertionError("computed before refusing out")
    monkeypatch.setattr(convolve_module, "_block_rows", no_work)
    def snapshot(x):
        return x.detach().numpy().copy() if isinstance(x, torch.Tensor) else x.copy()
    for a, b, out, mode, message in _bad_outs(tmp_path):
        before = [snapshot(a), snapshot(b)]
        with pytest.raises(ValueError, match="convolve_rows: " + message):
            convolve_rows(a, b, mode, out=out)
        assert np.array_equal(snapshot(a), before[0]) and np.array_equal(snapshot(b), before[1])


def test_out_with_inputs_under_no_grad_is_allowed():
    a = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64)
    out = torch.empty(3, 12, dtype=torch.float64)
    with torch.no_grad():
        assert convolve_rows(a, b, out=out) is out
    np.testing.assert_allclose(out.numpy(), _scipy_rows(a.detach().numpy(), b.numpy(), "full"), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# Blocks of rows

@pytest.fixture
def small_blocks(monkeypatch):
    """A block budget of a few rows, and a count of the blocks computed."""
    blocks = []
    block_rows = convolve_module._block_rows

    def counted(signal, kernel, *args):
        blocks.append(signal.shape[0])
        return block_rows(signal, kernel, *args)
    monkeypatch.setattr(convolve_module, "_BLOCK_BYTES", 40_000)
    monkeypatch.setattr(convolve_module, "_block_rows", counted)
    return blocks


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
@pytest.mark.parametrize("mode", MODES)
def test_rows_are_computed_in_blocks(mode, dtype, small_blocks, tmp_path):
    rng = np.random.default_rng([MODES.index(mode), np.dtype(dtype).num])
    a = _random(rng, dtype, (2, 11, 80)) if dtype != np.int64 else rng.integers(-2 ** 40, 2 ** 40, (2, 11, 80))
    b = _random(rng, dtype, (11, 9)) if dtype != np.int64 else rng.integers(-2 ** 20, 2 ** 20, (11, 9))
    ref = _scipy_rows(a.reshape(-1, 80), np.tile(b, (2, 1)), mode).reshape(2, 11, -1)
    out = _outs("memmap", ref.shape, ref.dtype, tmp_path)
    assert convolve_rows(a, b, mode, out=out) is out
    _assert_matches(np.asarray(out), ref, a, b)
    # 40 kB at 8 values of 8 bytes per point of a row (at most 80 + 16 + 9): 5 rows or more a
    # block; 22 rows give several equal blocks and a shorter last one.
    step = small_blocks[0]
    assert 5 <= step < 11 and small_blocks == [step] * (22 // step) + [22 % step] * (22 % step > 0)
    blocks = list(small_blocks)
    small_blocks.clear()
    _assert_matches(convolve_rows(a, b, mode), ref, a, b)  # without out: the same blocks
    assert small_blocks == blocks


def test_blocks_keep_autograd(small_blocks, monkeypatch):
    monkeypatch.setattr(convolve_module, "_BLOCK_BYTES", 5_000)  # 2 rows of (20 + 4 + 5) points a block
    gen = torch.Generator().manual_seed(16)
    a = torch.randn(5, 20, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(5, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    out = convolve_rows(a, b, "same", "fft")
    assert small_blocks == [2, 2, 1]
    _assert_normwise(out.detach().numpy(), _scipy_rows(a.detach().numpy(), b.detach().numpy(), "same"),
                     a.detach().numpy(), b.detach().numpy())
    assert torch.autograd.gradcheck(lambda a, b: convolve_rows(a, b, "same", "fft"), (a, b))


# ---------------------------------------------------------------------------
# Dask

def test_dask_is_not_imported_with_the_package(tmp_path):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    code = "import sys, rowconv_ext; assert not [m for m in sys.modules if m.split('.')[0] == 'dask'], 'dask'"
    # the rowconv_ext this process imported (the installed one, not a source tree in the cwd)
    package_root = str(pathlib.Path(rowconv_ext.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_dask_in_gives_lazy_dask_out(mode, method):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng([MODES.index(mode), METHODS.index(method), 2])
    a, b = rng.standard_normal((23, 70)), rng.standard_normal((23, 12))
    ref = _scipy_rows(a, b, mode)
    lazy = convolve_rows(da.from_array(a, chunks=(5, -1)), b, mode, method)
    assert isinstance(lazy, da.Array) and lazy.dtype == ref.dtype and lazy.shape == ref.shape
    assert lazy.chunks == ((5, 5, 5, 5, 3), (ref.shape[-1],))
    np.testing.assert_allclose(lazy.compute(), ref, rtol=0, atol=1e-12)
    # b in Dask too, in other chunks (also along its rows' length): a's rows lead
    both = convolve_rows(da.from_array(a, chunks=(5, 30)), da.from_array(b, chunks=(7, 5)), mode, method)
    assert both.chunks[0] == (5, 5, 5, 5, 3)
    np.testing.assert_allclose(both.compute(), ref, rtol=0, atol=1e-12)


def test_dask_dtypes_broadcast_and_kernel_in_dask():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(17)
    a, b = _random(rng, np.int16, (3, 8, 40)), _random(rng, np.int8, (8, 6))
    ref = _scipy_rows(a.reshape(-1, 40), np.tile(b, (3, 1)), "valid").reshape(3, 8, -1)
    lazy = convolve_rows(a, da.from_array(b, chunks=(3, -1)), "valid")  # only the kernel in Dask
    assert lazy.dtype == convolve_rows(a, b, "valid").dtype == ref.dtype == np.int16
    assert lazy.chunks[:2] == ((3,), (3, 3, 2))
    assert np.array_equal(lazy.compute(), ref)
    zero_d = convolve_rows(da.from_array(np.array(2.5)), np.array(4.0))
    assert isinstance(zero_d, da.Array) and zero_d.shape == () and zero_d.compute() == 10.0


def test_dask_refusals():
    da = pytest.importorskip("dask.array")
    a = da.from_array(np.ones((4, 10)), chunks=(2, -1))
    with pytest.raises(ValueError, match="convolve_rows: out must be None for Dask inputs .* got ndarray"):
        convolve_rows(a, np.ones((4, 3)), out=np.zeros((4, 12)))
    with pytest.raises(ValueError, match="convolve_rows: b must be a NumPy or Dask array when the other input is a "
                                         "Dask array, got a Tensor"):
        convolve_rows(a, torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"the leading \(\.\.\., M\) dims of a \(4, 10\) and b \(3, 3\)"):
        convolve_rows(a, np.ones((3, 3)))


@pytest.mark.slow
def test_dask_on_a_local_cluster():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    import dask.array as da  # noqa: PLC0415
    rng = np.random.default_rng(18)
    a, b = rng.standard_normal((40, 500)).astype(np.float32), rng.standard_normal((40, 30)).astype(np.float32)
    lazy = convolve_rows(da.from_array(a, chunks=(10, -1)), b, "same", "fft")
    cluster_args = dict(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    with distributed.LocalCluster(**cluster_args) as cluster, distributed.Client(cluster) as client:
        out = client.compute(lazy).result()
    assert out.dtype == np.float32
    _assert_normwise(out, _scipy_rows(a.astype(np.float64), b.astype(np.float64), "same"), a, b)


def test_memory_benchmark_runs(tmp_path):
    """benchmarks/convolve_rows_memory.py end to end on a tiny A (its numbers are not looked at)."""
    import csv  # noqa: PLC0415
    import pathlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "convolve_rows_memory.py"
    done = subprocess.run([sys.executable, str(script), "--gib", "0.001", "--length", "4096", "--kernel", "64",
                           "--methods", "fft", "--out", str(tmp_path), "--tmp", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = csv.DictReader(open(tmp_path / "convolve_rows_memory_0.001gib.csv"))
    # 0.001 GiB of float32 rows of 4096: 66 rows
    assert row["method"] == "fft" and int(row["rows"]) == 66 and float(row["max_rel_err"]) < 1e-5
