"""convolve_rows against scipy.signal.convolve applied row by row."""
import numpy as np
import pytest
import scipy.signal
import torch

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


def test_integer_numpy_input_gives_float64():
    a, b = np.arange(12).reshape(2, 6), np.arange(6).reshape(2, 3)
    out = convolve_rows(a, b)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, _scipy_rows(a, b, "full"))


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
    ((np.ones((2, 3)) + 1j, np.ones((2, 2))), "must be real"),
])
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        convolve_rows(*args)
