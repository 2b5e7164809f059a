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


def pack_network(rng, widths, density, dtype, index_dtype, with_bias):
    """Random CSR and CSC packs of a whole network, plus dense weights for the reference."""
    weights, bias, rows, cols = [], [], [], []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        keep = rng.random((n_out, n_in)) < density
        keep[0, :] = False   # an empty row
        keep[:, -1] = False  # an empty column
        weights.append(np.where(keep, rng.standard_normal((n_out, n_in)), 0).astype(dtype))
        bias.append((rng.standard_normal(n_out) if with_bias else np.zeros(n_out)).astype(dtype))
    packs = {}
    for name, by_rows in (("csr", True), ("csc", False)):
        ptr, idx, vals, off, start = [0], [], [], [], 0
        for w in weights:
            m = w if by_rows else w.T
            r, c = np.nonzero(m)
            ptr.extend(ptr[-1] + np.cumsum(np.bincount(r, minlength=m.shape[0])))
            idx.append(c.astype(index_dtype))
            vals.append(m[r, c])
            off.append(start)
            start += m.shape[0]
        packs[name] = (np.array(ptr, np.int64), np.concatenate(idx), np.concatenate(vals).astype(dtype),
                       np.array(off, np.int64))
    widths = np.array(widths, np.int64)
    extras = (np.concatenate(bias), np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64))
    return weights, packs, extras, widths


def dense_reference(weights, bias, bias_off, x):
    h = x.astype(np.float64)
    for l, w in enumerate(weights):
        h = h @ w.T.astype(np.float64) + bias[bias_off[l]:bias_off[l] + w.shape[0]]
        if l < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("n_batch, tile", [(1, 1), (2, 2), (7, 7), (13, 4), (64, 16), (40, 8)])
def test_fused_kernels_match_dense(rng, dtype, index_dtype, density, n_batch, tile):
    widths = [int(v) for v in rng.integers(1, 30, size=4)] + [5]
    weights, packs, (bias, bias_off), widths = pack_network(rng, widths, density, dtype, index_dtype,
                                                             with_bias=density != 0.5)
    relu = np.array([True] * (len(widths) - 2) + [False])
    x = rng.standard_normal((n_batch, widths[0])).astype(dtype)
    x[:, 0] = 0  # zero inputs are skipped by the batch-1 kernel: must not change the result
    expected = dense_reference(weights, bias, bias_off, x)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    max_w = int(widths[1:-1].max())
    if n_batch == 1:
        ptr, idx, vals, off = packs["csc"]
        n = len(weights)
        for as_dense in ([False] * n, [True] * n, [l % 2 == 1 for l in range(n)]):
            # dense blocks where flagged (two per layer, the multi-block path), the CSC pack elsewhere
            blocks = [(np.ascontiguousarray(w[a:b].T), a, b - a) for w, d in zip(weights, as_dense) if d
                      for a, b in ((0, w.shape[0] // 2), (w.shape[0] // 2, w.shape[0]))]
            dense = (np.concatenate([blk.ravel() for blk, _, _ in blocks] or [np.zeros(0)]).astype(dtype),
                     np.cumsum([0] + [blk.size for blk, _, _ in blocks])[:-1].astype(np.int64),
                     np.array([a for _, a, _ in blocks], np.int64), np.array([k for _, _, k in blocks], np.int64),
                     np.concatenate([[0], np.cumsum([2 * d for d in as_dense])]).astype(np.int64))
            out = np.full(widths[-1], np.nan, dtype)
            kernels.forward_vector(ptr, idx, vals, off, np.ones(n, np.int64), *dense, bias, bias_off, widths, relu,
                                   x[0], np.empty(max_w, dtype), np.empty(max_w, dtype), out)
            np.testing.assert_allclose(out, expected[0], rtol=tol, atol=tol)
    n_tiles = n_batch // tile
    xt = np.ascontiguousarray(x[:n_tiles * tile].reshape(n_tiles, tile, -1).transpose(0, 2, 1))
    ptr, idx, vals, off = packs["csr"]
    out = np.full((n_tiles, widths[-1], tile), np.nan, dtype)
    buf = [np.empty((n_tiles, max_w, tile), dtype) for _ in range(2)]
    for by_tiles in (False, True):
        out[:] = np.nan
        kernels.csr_forward_batch(ptr, idx, vals, bias, bias_off, off, widths, relu, xt, *buf, out, by_tiles)
        got = out.transpose(0, 2, 1).reshape(n_tiles * tile, -1)
        np.testing.assert_allclose(got, expected[:n_tiles * tile], rtol=tol, atol=tol)
