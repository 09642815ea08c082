"""convolve_rows against scipy.signal.convolve applied row by row."""
import numpy as np
import pytest
import scipy.signal
import torch

import rowconv_ext
from rowconv_ext import convolve_rows

MODES = ["full", "same", "valid"]


def _scipy_rows(a, b, mode):
    return np.vstack([scipy.signal.convolve(ai, bi, mode) for ai, bi in zip(a, b)])


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
