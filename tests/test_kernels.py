"""sparsenet.kernels against the triple-loop reference (imports the kernels module on purpose)."""

import os
import re
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

import naive
from sparsenet import kernels
from sparsenet.kernels import simd

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


def network_inputs(rng, density, dtype, index_dtype, n_batch):
    widths = [int(v) for v in rng.integers(1, 30, size=4)] + [5]
    weights, packs, (bias, bias_off), widths = pack_network(rng, widths, density, dtype, index_dtype,
                                                             with_bias=density != 0.5)
    relu = np.array([True] * (len(widths) - 2) + [False])
    x = rng.standard_normal((n_batch, widths[0])).astype(dtype)
    x[:, 0] = 0  # zero inputs are skipped by the batch-1 kernel: must not change the result
    return weights, packs, bias, bias_off, widths, relu, x, dense_reference(weights, bias, bias_off, x)


TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_forward_vector_matches_dense(rng, dtype, index_dtype, density):
    weights, packs, bias, bias_off, widths, relu, x, expected = network_inputs(rng, density, dtype, index_dtype, 1)
    max_w = int(widths[1:-1].max())
    ptr, idx, vals, off = packs["csc"]
    n = len(weights)
    for as_dense in ([False] * n, [True] * n, [l % 2 == 1 for l in range(n)]):
        # dense blocks where flagged (two per layer, the multi-block path), the CSC pack elsewhere
        blocks = [(np.ascontiguousarray(w[a:b].T), a, b - a) for w, d in zip(weights, as_dense) if d
                  for a, b in ((0, w.shape[0] // 2), (w.shape[0] // 2, w.shape[0]))]
        dense = (np.concatenate([blk.ravel() for blk, _, _ in blocks] or [np.zeros(0)]).astype(dtype),
                 np.cumsum([0] + [blk.size for blk, _, _ in blocks])[:-1].astype(np.int64),
                 np.array([a for _, a, _ in blocks], np.int64), np.array([k for _, _, k in blocks], np.int64),
                 np.concatenate([[0], np.cumsum([2 * d for d in as_dense])]).astype(np.int64),
                 np.array([k for _, _, k in blocks], np.int64))  # rows not padded: stride = width
        out = np.full(widths[-1], np.nan, dtype)
        kernels.forward_vector(ptr, idx, vals, off, np.ones(n, np.int64), *dense, bias, bias_off, widths, relu,
                               x[0], np.empty(max_w, dtype), np.empty(max_w, dtype), out)
        np.testing.assert_allclose(out, expected[0], rtol=TOL[dtype], atol=TOL[dtype])


def block_csr(weights, n_blocks, index_dtype, dtype):
    """csr_forward_batch's pack, written out directly: layer l's inputs cut into n_blocks[l]
    contiguous blocks, each a CSR over all of the layer's rows, indices relative to the layer."""
    ptr, idx, vals, blk_off, row = [0], [], [], [], 0
    for w, k in zip(weights, n_blocks):
        n_out, n_in = w.shape
        blk_off.append(row)
        for q in range(k):
            c0, c1 = q * n_in // k, (q + 1) * n_in // k
            for i in range(n_out):
                cols = np.flatnonzero(w[i, c0:c1]) + c0
                idx.extend(cols)
                vals.extend(w[i, cols])
                ptr.append(len(idx))
            row += n_out
    return (np.array(ptr, np.int64), np.array(idx, index_dtype), np.array(vals, dtype), np.array(blk_off, np.int64),
            np.array(n_blocks, np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("lanes", kernels.LANES)
@pytest.mark.parametrize("n_tiles, n_threads", [(1, 2), (3, 2), (5, 1), (4, 2)])
def test_csr_forward_batch_matches_dense(rng, dtype, index_dtype, density, lanes, n_tiles, n_threads):
    """Every tile width, both thread splits (by rows: fewer than two tiles per thread; by tiles),
    and input blocks from one per layer to one per input (many hold no kept weight)."""
    n_batch = n_tiles * lanes
    weights, _, bias, bias_off, widths, relu, x, expected = network_inputs(rng, density, dtype, index_dtype,
                                                                           n_batch)
    xt = np.ascontiguousarray(x.reshape(n_tiles, lanes, -1).transpose(0, 2, 1))
    max_w = int(widths[1:-1].max())
    buf = [np.empty((n_tiles, max_w, lanes), dtype) for _ in range(2)]
    for n_blocks in ([1] * len(weights), [min(3, w.shape[1]) for w in weights], [w.shape[1] for w in weights]):
        out = np.full((n_tiles, widths[-1], lanes), np.nan, dtype)  # must be fully overwritten
        kernels.csr_forward_batch(*block_csr(weights, n_blocks, index_dtype, dtype), bias, bias_off, widths, relu,
                                  xt, *buf, out, n_threads)
        got = out.transpose(0, 2, 1).reshape(n_batch, -1)
        np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype])


def test_csr_forward_batch_rejects_other_tile_widths(rng):
    weights, _, bias, bias_off, widths, relu, x, _ = network_inputs(rng, 0.5, np.float32, np.uint16, 12)
    xt = np.ascontiguousarray(x.reshape(1, 12, -1).transpose(0, 2, 1))
    buf = np.empty((1, int(widths[1:-1].max()), 12), np.float32)
    out = np.empty((1, widths[-1], 12), np.float32)
    with pytest.raises(ValueError, match="tile width"):
        kernels.csr_forward_batch(*block_csr(weights, [1] * len(weights), np.uint16, np.float32), bias, bias_off,
                                  widths, relu, xt, buf, buf.copy(), out, 2)


# --- instruction sets: detection and the override ---

@pytest.mark.parametrize("features, bits", [
    ("+64bit,+avx,+avx2,+fma,-avx512f,+sse2", 256),            # AVX2 (Zen 3: where this was measured)
    ("+avx,+avx2,+avx512f,+avx512vl,+evex512", 512),            # AVX-512
    ("+avx,+avx2,+avx512f", 512),                               # LLVM before the evex512 flag
    ("+avx,+avx2,+avx512f,-evex512", 256),                      # AVX10/256: AVX-512 on ymm registers
    ("+avx,-avx2,-fma", 256),                                   # AVX without AVX2 (Sandy Bridge)
    ("+64bit,+sse2,+sse4.2,-avx", 128),                         # SSE only
    ("+neon,+fp-armv8,+v8a", 128),                              # ARM
    ("", 128),                                                  # llvmlite could not ask the host
])
def test_vector_bits_of_features(features, bits):
    assert simd.vector_bits_of(features) == bits


@pytest.mark.skipif("SPARSENET_VECTOR_BITS" in os.environ, reason="VECTOR_BITS is overridden")
def test_vector_bits_is_what_llvm_emits():
    """The detected width is the register LLVM really uses for a 64-lane float32 vector here:
    zmm for 512, ymm (and no zmm) for 256, xmm only for 128."""

    @numba.njit
    def axpy(x, y):
        simd.vstore(y, 0, simd.vfma(simd.vload(y, 0, 64), x[0], simd.vload(x, 0, 64)))

    x, y = np.ones(64, np.float32), np.ones(64, np.float32)
    axpy(x, y)
    assert (y == 2).all()
    asm = "\n".join(axpy.inspect_asm().values())
    used = {bits for bits, reg in ((512, "zmm"), (256, "ymm"), (128, "xmm")) if re.search(rf"%{reg}\d", asm)}
    assert max(used, default=128) == simd.VECTOR_BITS, used


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_vector_bits_override_is_read_at_import():
    probe = "from sparsenet.kernels import simd; print(simd.VECTOR_BITS)"
    assert _python(probe, SPARSENET_VECTOR_BITS="128").stdout.split()[0] == "128"
    bad = _python(probe, SPARSENET_VECTOR_BITS="384")
    assert bad.returncode != 0 and "SPARSENET_VECTOR_BITS must be 128, 256 or 512, found '384'" in bad.stderr


# --- layouts: the intrinsics refuse non-contiguous arrays when a kernel is compiled ---

@numba.njit
def _load(a):
    out = np.empty(8, a.dtype)
    simd.vstore(out, 0, simd.vload(a, 0, 8))


@numba.njit
def _store(a):
    simd.vstore(a, 0, simd.vzeros(a[0], 8))


@numba.njit
def _at(a):
    return simd.at(a, 1)


@pytest.mark.parametrize("fn, name", [(_load, "vload"), (_store, "vstore"), (_at, "at")])
def test_intrinsics_refuse_non_contiguous_arrays(fn, name):
    strided = np.zeros(32, np.float32)[::2]
    with pytest.raises(TypingError, match=rf"{name} needs a C-contiguous array, found array\(float32, 1d, A\)"):
        fn(strided)
    fn(np.zeros(16, np.float32))  # the same function compiles for a C-contiguous array
