"""sparsenet.kernels against tests/naive.py (imports the kernels module on purpose).

Every kernel is checked against one oracle with one tolerance (sparsenet.testing); the batched
kernel runs every tile width it is compiled for: this machine's and every other instruction
set's, since the width is an argument and the code is the same everywhere.
"""

import json
import os
import re
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from sparsenet import Layer, Network, convert, kernels, prune
from sparsenet.kernels import simd
from sparsenet.testing import assert_forward_close

import naive

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
    assert_forward_close(out, naive.csr_matmul(indptr, indices, data, x).astype(dtype))
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


def random_network(rng, density, dtype, with_bias):
    """A random ReLU network (linear logits) with an empty row and an empty column per layer,
    and the NetworkShape and bias the whole-network kernels take for it."""
    widths = [int(v) for v in rng.integers(1, 30, size=4)] + [5]
    layers = []
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        keep = rng.random((n_out, n_in)) < density
        keep[0, :] = False   # an empty row
        keep[:, -1] = False  # an empty column
        w = np.where(keep, rng.standard_normal((n_out, n_in)), 0).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype) if with_bias else None
        layers.append(Layer(w, b, "relu" if l < len(widths) - 2 else "linear"))
    net = Network(tuple(layers))
    widths = np.array(widths, np.int64)
    shape = kernels.NetworkShape(widths, np.array([layer.activation == "relu" for layer in layers]),
                                 np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64))
    bias = np.concatenate([np.zeros(layer.n_out, dtype) if layer.bias is None else layer.bias for layer in layers])
    return net, shape, bias


def network_inputs(rng, density, dtype, n_batch):
    net, shape, bias = random_network(rng, density, dtype, with_bias=density != 0.5)
    x = rng.standard_normal((n_batch, int(shape.widths[0]))).astype(dtype)
    x[:, 0] = 0  # zero inputs are skipped by the batch-1 kernels: must not change the result
    return net, shape, bias, x, naive.forward_net(net, x)


def csc_parts(net, index_dtype):
    """forward_vector's CSC pack with one part per layer."""
    ptr, idx, vals, off, start = [0], [], [], [], 0
    for layer in net.layers:
        m = layer.weight.T
        r, c = np.nonzero(m)
        ptr.extend(ptr[-1] + np.cumsum(np.bincount(r, minlength=m.shape[0])))
        idx.append(c.astype(index_dtype))
        vals.append(m[r, c])
        off.append(start)
        start += m.shape[0]
    return kernels.CSCParts(np.array(ptr, np.int64), np.concatenate(idx), np.concatenate(vals),
                            np.array(off, np.int64), np.ones(len(net.layers), np.int64))


def dense_blocks(net, as_dense, dtype):
    """forward_vector's dense blocks where flagged, two per layer (the multi-block path), rows
    not padded (stride = width)."""
    blocks = [(np.ascontiguousarray(layer.weight[a:b].T), a, b - a)
              for layer, d in zip(net.layers, as_dense) if d
              for a, b in ((0, layer.n_out // 2), (layer.n_out // 2, layer.n_out))]
    widths = np.array([k for _, _, k in blocks], np.int64)
    return kernels.DenseBlocks(np.concatenate([blk.ravel() for blk, _, _ in blocks] or [np.zeros(0)]).astype(dtype),
                               np.cumsum([0] + [blk.size for blk, _, _ in blocks])[:-1].astype(np.int64),
                               np.array([a for _, a, _ in blocks], np.int64), widths,
                               np.concatenate([[0], np.cumsum([2 * d for d in as_dense])]).astype(np.int64), widths)


# both index types and both dtypes in two pairs, not four: each pair is a cold compile of the kernel
@pytest.mark.parametrize("dtype, index_dtype", [(np.float32, np.uint16), (np.float64, np.int32)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_forward_vector_matches_naive(rng, dtype, index_dtype, density):
    """Every layer CSC, every layer dense blocks, and a mix."""
    net, shape, bias, x, expected = network_inputs(rng, density, dtype, 1)
    csc, n = csc_parts(net, index_dtype), len(net.layers)
    max_w = int(shape.widths[1:-1].max())
    for as_dense in ([False] * n, [True] * n, [l % 2 == 1 for l in range(n)]):
        out = np.full(shape.widths[-1], np.nan, dtype)  # must be fully overwritten
        act = np.full(int(shape.widths[:-1].max()), -1, np.int64)
        dense = dense_blocks(net, as_dense, dtype)
        pack, *views = kernels.flatten_vector(shape, csc, dense, bias)
        for got, want in zip(views, (shape, csc, dense, bias)):  # the pack holds exactly what it was given
            for a, b in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
                np.testing.assert_array_equal(a, b)
        assert views[2].values.ctypes.data % 64 == 0, "dense blocks stay on cache lines"
        kernels.forward_vector(*pack, x[0], act, np.empty(max_w, dtype), np.empty(max_w, dtype), out)
        assert_forward_close(out, expected[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("density", [0.0, 0.5, 1.0])
def test_dense_forward_vector_matches_naive(rng, dtype, density):
    net, shape, bias, x, expected = network_inputs(rng, density, dtype, 1)
    weights = [np.ascontiguousarray(layer.weight.T).ravel() for layer in net.layers]
    dense = kernels.DenseWeights(np.concatenate(weights), np.cumsum([0] + [w.size for w in weights[:-1]]))
    max_w = int(shape.widths[1:-1].max())
    out = np.full(shape.widths[-1], np.nan, dtype)
    kernels.dense_forward_vector(kernels.flatten_dense_vector(shape, dense), dense.weight_t, bias, x[0],
                                 np.empty(max_w, dtype), np.empty(max_w, dtype), out)
    assert_forward_close(out, expected[0])


def block_csr(net, n_blocks, index_dtype):
    """csr_forward_batch's pack, written out directly: layer l's inputs cut into n_blocks[l]
    contiguous blocks, each a CSR over all of the layer's rows, indices relative to the layer."""
    ptr, idx, vals, blk_off, row = [0], [], [], [], 0
    for layer, k in zip(net.layers, n_blocks):
        w = layer.weight
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
    return kernels.BlockedCSR(np.array(ptr, np.int64), np.array(idx, index_dtype), np.array(vals, w.dtype),
                              np.array(blk_off, np.int64), np.array(n_blocks, np.int64))


def tile_major(x, lanes):
    return np.ascontiguousarray(x.reshape(-1, lanes, x.shape[1]).transpose(0, 2, 1))


# two pairs of (dtype, index type), as for forward_vector: each pair is a cold compile of every variant
@pytest.mark.parametrize("dtype, index_dtype", [(np.float32, np.uint16), (np.float64, np.int32)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("lanes", kernels.LANES)
@pytest.mark.parametrize("n_tiles, n_threads", [(1, 2), (3, 2), (5, 1), (4, 2)])
def test_csr_forward_batch_matches_naive(rng, dtype, index_dtype, density, lanes, n_tiles, n_threads):
    """Every compiled tile width, both thread splits (by rows: fewer than two
    tiles per thread; by tiles), and input blocks from one per layer to one per input (many hold
    no kept weight)."""
    n_batch = n_tiles * lanes
    net, shape, bias, x, expected = network_inputs(rng, density, dtype, n_batch)
    max_w = int(shape.widths[1:-1].max())
    buf = [np.empty((n_tiles, max_w, lanes), dtype) for _ in range(2)]
    for n_blocks in ([1] * len(net.layers), [min(3, layer.n_in) for layer in net.layers],
                     [layer.n_in for layer in net.layers]):
        out = np.full((n_tiles, shape.widths[-1], lanes), np.nan, dtype)  # must be fully overwritten
        kernels.csr_forward_batch(shape, block_csr(net, n_blocks, index_dtype), bias, tile_major(x, lanes), *buf, out,
                                  n_threads)
        assert_forward_close(out.transpose(0, 2, 1).reshape(n_batch, -1), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_forward_batch_variants_agree_bit_for_bit(rng, dtype):
    """Every tile width rounds the same way: a sample's result does not depend on the tile it
    ran in or on the instruction set the width was chosen for."""
    net, shape, bias, x, expected = network_inputs(rng, 0.3, dtype, 128)
    csr = block_csr(net, [min(2, layer.n_in) for layer in net.layers], np.uint16)
    max_w = int(shape.widths[1:-1].max())
    results = []
    for lanes in kernels.LANES:
        n_tiles = 128 // lanes
        out = np.empty((n_tiles, shape.widths[-1], lanes), dtype)
        kernels.csr_forward_batch(shape, csr, bias, tile_major(x, lanes), np.empty((n_tiles, max_w, lanes), dtype),
                                  np.empty((n_tiles, max_w, lanes), dtype), out, 2)
        results.append(out.transpose(0, 2, 1).reshape(128, -1))
    assert_forward_close(results[0], expected)
    for got in results[1:]:
        np.testing.assert_array_equal(got, results[0])


@pytest.mark.parametrize("lanes", [12, 4, 128])
def test_csr_forward_batch_rejects_other_tile_widths(rng, lanes):
    net, shape, bias, x, _ = network_inputs(rng, 0.5, np.float32, lanes)
    buf = np.empty((1, int(shape.widths[1:-1].max()), lanes), np.float32)
    out = np.empty((1, shape.widths[-1], lanes), np.float32)
    with pytest.raises(ValueError, match="LANES"):
        kernels.csr_forward_batch(shape, block_csr(net, [1] * len(net.layers), np.uint16), bias, tile_major(x, lanes),
                                  buf, buf.copy(), out, 2)


# --- instruction sets: detection, the tile widths, the override ---

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


@pytest.mark.parametrize("vector_bits", [128, 256, 512])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_widths_fit_the_register_file(vector_bits, dtype):
    lanes = simd.register_lanes(dtype, vector_bits)
    assert lanes == vector_bits // (8 * np.dtype(dtype).itemsize)
    widths = kernels.tile_widths(dtype, vector_bits)
    assert widths and widths == tuple(t for t in kernels.LANES if t <= kernels.ACC_REGISTERS * lanes)
    assert set(widths) <= set(kernels.LANES)


def test_tile_widths_per_instruction_set():
    assert kernels.tile_widths(np.float32, 512) == kernels.tile_widths(np.float32, 256) == (8, 16, 32, 64)
    assert kernels.tile_widths(np.float64, 256) == kernels.tile_widths(np.float32, 128) == (8, 16, 32)
    assert kernels.tile_widths(np.float64, 128) == (8, 16)


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_vector_bits_override_is_read_at_import():
    probe = "from sparsenet import kernels; print(kernels.VECTOR_BITS, kernels.tile_widths('float32'))"
    assert _python(probe, SPARSENET_VECTOR_BITS="128").stdout.split()[0] == "128"
    bad = _python(probe, SPARSENET_VECTOR_BITS="384")
    assert bad.returncode != 0 and "SPARSENET_VECTOR_BITS must be 128, 256 or 512, found '384'" in bad.stderr


# float32 weights, uint16 indices: the signature test_cached_batched_kernel_... compiles first
_CACHED_RUN = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import naive
from conftest import random_net
from sparsenet import kernels, prune
from sparsenet.formats.fused import FusedSparseForward, tile_lanes
from sparsenet.testing import assert_forward_close
rng = np.random.default_rng(0)
masked = prune(random_net(rng, (30, 20, 5)), "weight", 0.5)
x = rng.random((64, 30)).astype(np.float32)
assert_forward_close(FusedSparseForward.build(masked)(x), naive.forward(masked, x))
tile = tile_lanes(64)
print(json.dumps({{"bits": kernels.VECTOR_BITS, "tile": tile,
                   "hits": sum(kernels.csr_forward_batch.stats.cache_hits.values())}}))
"""


def test_cached_batched_kernel_serves_every_vector_width(rng):
    """numba's cache of csr_forward_batch is keyed on the CPU, not on VECTOR_BITS: processes
    with other overrides load the code this one compiled (or loaded), NamedTuple arguments
    included, and run their own tile width of it correctly."""
    from conftest import random_net

    masked = prune(random_net(rng, (30, 20, 5)), "weight", 0.5)
    assert_forward_close(convert(masked, "sparse")(np.zeros((64, 30), np.float32)), np.zeros((64, 5), np.float32))
    variants = []
    for bits in ("512", "256", "128"):
        run = _python(_CACHED_RUN.format(tests=os.path.dirname(__file__)), SPARSENET_VECTOR_BITS=bits)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout.splitlines()[-1])
        assert got["bits"] == int(bits) and got["hits"] > 0, got  # loaded from the cache, not compiled
        variants.append(got["tile"])
    assert variants == [64, 64, 32]


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
