"""sparsenet.kernels against the triple-loop reference (imports the kernels module on purpose)."""

import numpy as np
import pytest

import naive
from sparsenet import kernels

KERNELS = [kernels.csr_matmul, kernels.csr_matmul_parallel]


def random_csr(rng, n_out, n_in, density, dtype, index_dtype, empty_rows=()):
    keep = rng.random((n_out, n_in)) < density
    keep[list(empty_rows), :] = False
    rows, cols = np.nonzero(keep)
    indptr = np.searchsorted(rows, np.arange(n_out + 1)).astype(index_dtype)
    data = rng.standard_normal(rows.size).astype(dtype)
    return indptr, cols.astype(index_dtype), data


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_batch", [1, 2, 7, 64])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 1.0])
def test_csr_matmul_matches_naive(rng, kernel, dtype, index_dtype, n_batch, density):
    n_out, n_in = rng.integers(1, 40), rng.integers(1, 40)
    indptr, indices, data = random_csr(rng, n_out, n_in, density, dtype, index_dtype, empty_rows=[0])
    x = rng.standard_normal((n_in, n_batch)).astype(dtype)
    out = np.full((n_out, n_batch), np.nan, dtype=dtype)  # must be fully overwritten
    kernel(indptr, indices, data, x, out)
    expected = naive.csr_matmul(indptr, indices, data, x)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert (out[0] == 0).all(), "an empty row gives exact zeros"


def test_serial_equals_parallel(rng):
    indptr, indices, data = random_csr(rng, 300, 200, 0.1, np.float32, np.int32)
    x = rng.standard_normal((200, 33)).astype(np.float32)
    a, b = np.empty((300, 33), np.float32), np.empty((300, 33), np.float32)
    kernels.csr_matmul(indptr, indices, data, x, a)
    kernels.csr_matmul_parallel(indptr, indices, data, x, b)
    np.testing.assert_array_equal(a, b)


def test_nan_weight_propagates(rng):
    indptr, indices, data = random_csr(rng, 5, 5, 1.0, np.float32, np.int32)
    data[3] = np.nan
    out = np.empty((5, 1), np.float32)
    kernels.csr_matmul(indptr, indices, data, np.ones((5, 1), np.float32), out)
    assert np.isnan(out[0, 0]) and np.isfinite(out[1:]).all()
