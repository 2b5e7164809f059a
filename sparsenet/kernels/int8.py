"""Whole-network forward passes over int8 weights (weight-only quantization), in one compiled call.

The same packs and loops as :mod:`sparsenet.kernels.fused` (read its docstring for the array
bundles), with the weights' ``data``/``values``/``weight_t`` arrays int8 and one more array,
``scale``, holding every output unit's weight scale in the biases' order::

    scale  float32[sum(widths[1:])]   unit i of layer l: scale[bias_off[l] + i]
    widen  float32[256]               widen[q + 128] = float(q): see below
    layer l: dst[i] = act(scale[i] * sum_j q[i, j] * src[j] + bias[i])

An int8 weight is widened to the activations' float type in registers, and multiplied-added in
float: rows of dense blocks 8 at a time (``vpmovsxbd`` + ``vcvtdq2ps`` on AVX2), four inputs per
pass; the tiled kernel's single weights by a load from the 256-entry table ``widen``, which
stays in L1 and folds into ``vbroadcastss``. A scalar ``cvtsi2ss`` there writes only the low
lane of its register, and LLVM merged it into a live accumulator: a false dependency that
chained every weight's FMAs to the previous weight's. The CSC scatter (batch 1) has no such
accumulator and converts with ``cvtsi2ss``, a load less than the table. The sum over a unit's
weights is scaled once, then the bias added and ReLU applied, so results differ from the
float64 dequantized reference (:meth:`sparsenet.quantize.QuantizedNetwork.reference`) by float
rounding only. What int8 buys is traffic: a weight is 1 byte instead of 4 (with a 16-bit index, 3 bytes
instead of 6 per kept weight in the sparse packs).

``int8_forward_vector(ints, rows, cdata, dvalues, scale, bias, widen, x, act, buf_a, buf_b, out)``
    batch 1, sparse pack (CSC layers and dense-block layers) flattened by
    ``flatten_int8_vector(shape, csc, dense)``, zero inputs skipped.
``int8_csr_forward_batch(shape, csr, scale, bias, widen, x, buf_a, buf_b, out, n_threads)``
    batched, tile-major ``x`` (n_tiles, n_in, T), T one of ``fused.LANES``.
``int8_dense_forward_vector(shape, dense, scale, bias, x, buf_a, buf_b, out)``
    batch 1, dense int8 matrices (n_in, n_out) back to back, zero inputs skipped, serial.

Callers (sparsenet.formats.*_int8) validate; nothing here checks shapes.
"""

import numba
import numpy as np

from .fused import _FASTMATH, CSCParts, DenseBlocks, NetworkShape, _active, _layer_buffers
from .simd import at, vfma, vload, vrelu, vsplat, vstore, vzeros

__all__ = ["flatten_int8_vector", "int8_csr_forward_batch", "int8_dense_forward_vector", "int8_forward_vector"]


@numba.njit(inline="always")
def _finish(d, n, scale, bias, b0, relu):
    """d[i] = act(scale[b0 + i] * d[i] + bias[b0 + i]) for i < n."""
    for i in range(n):
        d[i] = d[i] * scale[b0 + i] + bias[b0 + i]
    if relu:
        for i in range(n):
            if d[i] < 0:
                d[i] = 0


@numba.njit(inline="always")
def _csc_part(csc, scale, bias, widen, b0, c0, act, n_act, r0, r1, relu, src, dst):
    """dst[r0:r1] for a CSC pack holding rows r0:r1 (fused._csc_part with int8 data; float32 dst)."""
    colptr, rows, data = csc.colptr, csc.rows, csc.data
    for i in range(r0, r1):
        dst[i] = 0
    for q in range(n_act):
        j = act[q]
        v = src[j]
        # unsigned positions: with signed ones numba wraps every index for negative values
        # (fused._csc_part). The weight is converted by vcvtsi2ss, not the table: one load less
        # per kept weight in a loop bound by its loads and stores (1.1-1.15x; the scatter has no
        # accumulator in a register for the conversion's merge to chain on, unlike _row)
        for p in range(np.uint64(colptr[c0 + j]), np.uint64(colptr[c0 + j + 1])):
            dst[rows[p]] += v * numba.float32(data[p])
    _finish(dst[r0:r1], r1 - r0, scale, bias, b0 + r0, relu)


@numba.njit(inline="always")
def _axpy4(d, w, j0, j1, j2, j3, v0, v1, v2, v3, n):
    """d[:n] += v0 * w[j0] + ... + v3 * w[j3] (int8 rows widened in registers): four inputs per
    pass over the outputs, so each output is loaded and stored once per four inputs, and summed
    in order (d + v0 w0) + v1 w1 ... so that every term is one FMA."""
    w0, w1, w2, w3 = w[j0], w[j1], w[j2], w[j3]
    for i in range(n):
        d[i] = (((d[i] + v0 * w0[i]) + v1 * w1[i]) + v2 * w2[i]) + v3 * w3[i]


@numba.njit(inline="always")
def _axpy1(d, w, j, v, n):
    wj = w[j]
    for i in range(n):
        d[i] += v * wj[i]


@numba.njit(inline="always")
def _dense_part(dense, p, n_in, scale, bias, b0, act, n_act, relu, src, dst):
    """Dense block p (n_in, width) of int8 weights, the active inputs' rows only, four per pass."""
    r0, width, stride, start = dense.r0[p], dense.width[p], dense.stride[p], dense.off[p]
    w = dense.values[start:start + n_in * stride].reshape((n_in, stride))
    d = dst[r0:r0 + width]
    for i in range(width):
        d[i] = 0
    q = 0
    while q + 4 <= n_act:
        j0, j1, j2, j3 = act[q], act[q + 1], act[q + 2], act[q + 3]
        _axpy4(d, w, j0, j1, j2, j3, src[j0], src[j1], src[j2], src[j3], width)
        q += 4
    while q < n_act:
        _axpy1(d, w, act[q], src[act[q]], width)
        q += 1
    _finish(d, width, scale, bias, b0 + r0, relu)


# int8_forward_vector's ``ints``: 12 bounds, then these int64 arrays back to back
_FLAT_INTS8 = ("widths", "relu", "bias_off", "colptr", "col_off", "parts", "off", "r0", "width", "part0", "stride")


def flatten_int8_vector(shape, csc, dense) -> np.ndarray:
    """int8_forward_vector's ``ints``: the network's shape, the CSC's pointers and the dense blocks'
    bookkeeping as one int64 array (numba unboxes every array of a NamedTuple argument on every
    call, several microseconds at batch 1; see :func:`sparsenet.kernels.forward_vector`)."""
    parts = [shape.widths, shape.relu, shape.bias_off, csc.colptr, csc.col_off, csc.parts, dense.off, dense.r0,
             dense.width, dense.part0, dense.stride]
    bounds = len(parts) + 1 + np.cumsum([0] + [np.asarray(p).size for p in parts])
    return np.concatenate([bounds] + [np.asarray(p).astype(np.int64) for p in parts]).astype(np.int64)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def int8_forward_vector(ints, rows, cdata, dvalues, scale, bias, widen, x, act, buf_a, buf_b, out):
    """out = network(x) for one sample; layer by layer CSC or dense blocks as in
    :func:`sparsenet.kernels.forward_vector`, int8 weights, per-unit scales. ``ints`` is
    :func:`flatten_int8_vector`'s; ``rows``/``cdata`` the CSC's rows and int8 values, ``dvalues``
    the dense blocks' int8 values: plain arrays, so a call unboxes 12 arrays instead of 20."""
    shape = NetworkShape(ints[ints[0]:ints[1]], ints[ints[1]:ints[2]], ints[ints[2]:ints[3]])
    csc = CSCParts(ints[ints[3]:ints[4]], rows, cdata, ints[ints[4]:ints[5]], ints[ints[5]:ints[6]])
    dense = DenseBlocks(dvalues, ints[ints[6]:ints[7]], ints[ints[7]:ints[8]], ints[ints[8]:ints[9]],
                        ints[ints[9]:ints[10]], ints[ints[10]:ints[11]])
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, c0, b0, k_parts = widths[l], widths[l + 1], csc.col_off[l], bias_off[l], csc.parts[l]
        p0, n_dense = dense.part0[l], dense.part0[l + 1] - dense.part0[l]
        n_act = _active(src, n_in, act)
        if n_dense == 1:
            _dense_part(dense, p0, n_in, scale, bias, b0, act, n_act, relu[l], src, dst)
        elif n_dense > 1:
            for k in numba.prange(n_dense):
                _dense_part(dense, p0 + k, n_in, scale, bias, b0, act, n_act, relu[l], src, dst)
        elif k_parts == 1:
            _csc_part(csc, scale, bias, widen, b0, c0, act, n_act, 0, n_out, relu[l], src, dst)
        else:
            for k in numba.prange(k_parts):
                _csc_part(csc, scale, bias, widen, b0, c0 + k * n_in, act, n_act, k * n_out // k_parts,
                          (k + 1) * n_out // k_parts, relu[l], src, dst)
    return out


@numba.njit(inline="always")
def _row(csr, widen, r, src, so, dst, do, s0, b0, first, last, relu, lanes):
    """fused._row for int8 data (one chain, in the row's order): the sum starts from zero (not
    the bias) in the first input block; the last block scales it, adds the bias (one FMA:
    bias + s0 * sum) and applies ReLU. Each weight is widened by the table ``widen`` (one
    broadcast load)."""
    indices, data = csr.indices, csr.data
    if first:
        a0 = vzeros(b0, lanes)
    else:
        a0 = vload(dst, do, lanes)
    for q in range(csr.indptr[r], csr.indptr[r + 1]):
        a0 = vfma(a0, at(widen, at(data, q) + 128), vload(src, so + at(indices, q) * lanes, lanes))
    if last:
        a0 = vfma(vsplat(b0, lanes), s0, a0)
        if relu:
            a0 = vrelu(a0)
    vstore(dst, do, a0)


@numba.njit(inline="always")
def _rows(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, lanes):
    for k in range(n_blk):
        base = blk0 + k * n_out
        for i in range(i0, i1):
            _row(csr, widen, base + i, src, so, dst, do + i * lanes, scale[b0 + i], bias[b0 + i], k == 0,
                 k == n_blk - 1, relu, lanes)


@numba.njit(nogil=True, fastmath=_FASTMATH)
def _rows_any(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, lanes):
    """_rows with the tile width as a literal, one compiled copy per fused.LANES width."""
    if lanes == 64:
        _rows(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 64)
    elif lanes == 32:
        _rows(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 32)
    elif lanes == 16:
        _rows(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 16)
    else:
        _rows(csr, scale, bias, widen, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 8)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def int8_csr_forward_batch(shape, csr, scale, bias, widen, x, buf_a, buf_b, out, n_threads):
    """out = network(x) for a tile-major batch (see :func:`sparsenet.kernels.csr_forward_batch`:
    same threading, same tiles), int8 weights, per-unit scales."""
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    n_tiles, lanes = x.shape[0], x.shape[2]
    if not (lanes == 8 or lanes == 16 or lanes == 32 or lanes == 64):
        raise ValueError("int8_csr_forward_batch: the tile width x.shape[2] must be one of LANES (8, 16, 32, 64)")
    if n_tiles >= 2 * n_threads:
        for t in numba.prange(n_tiles):  # tile t writes only [t]: no races
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                n_out = widths[l + 1]
                _rows_any(csr, scale, bias, widen, bias_off[l], csr.blk_off[l], csr.n_blocks[l], n_out, 0, n_out, src,
                          t * src.shape[1] * lanes, dst, t * dst.shape[1] * lanes, relu[l], lanes)
    else:
        n_chunks = max(1, n_threads)
        for t in range(n_tiles):
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                n_out = widths[l + 1]
                for c in numba.prange(n_chunks):  # chunk c writes only its rows of [t]: no races
                    _rows_any(csr, scale, bias, widen, bias_off[l], csr.blk_off[l], csr.n_blocks[l], n_out,
                              c * n_out // n_chunks, (c + 1) * n_out // n_chunks, src, t * src.shape[1] * lanes,
                              dst, t * dst.shape[1] * lanes, relu[l], lanes)
    return out


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def int8_dense_forward_vector(shape, dense, scale, bias, x, buf_a, buf_b, out):
    """out = network(x) for one sample through dense int8 matrices (``dense.weight_t`` int8,
    layer l's (n_in, n_out) row-major from ``dense.w_off[l]``), skipping zero inputs; four
    non-zero inputs per pass over the outputs."""
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, b0, w0 = widths[l], widths[l + 1], bias_off[l], dense.w_off[l]
        w = dense.weight_t[w0:w0 + n_in * n_out].reshape((n_in, n_out))
        d = dst[:n_out]
        for i in range(n_out):
            d[i] = 0
        n_pending, p0, p1, p2 = 0, 0, 0, 0  # non-zero inputs waiting for a pass of four
        for j in range(n_in):
            if src[j] != 0:
                if n_pending == 0:
                    p0 = j
                elif n_pending == 1:
                    p1 = j
                elif n_pending == 2:
                    p2 = j
                else:
                    _axpy4(d, w, p0, p1, p2, j, src[p0], src[p1], src[p2], src[j], n_out)
                    n_pending = -1
                n_pending += 1
        if n_pending > 0:
            _axpy1(d, w, p0, src[p0], n_out)
        if n_pending > 1:
            _axpy1(d, w, p1, src[p1], n_out)
        if n_pending > 2:
            _axpy1(d, w, p2, src[p2], n_out)
        _finish(d, n_out, scale, bias, b0, relu[l])
    return out
