"""Whole-network forward passes over 4x1 weight blocks (the ``sparse_block`` format).

A block is BLOCK = 4 consecutive output units (a group) at one input: four weights that read the
same input value. The unstructured kernels (:mod:`.fused`) load one input row, a tile of T
samples, per kept weight; here one load feeds four rows' multiply-adds, and at batch 1 one
active input adds a 4-wide vector where the unstructured CSC kernel scatters four scalars.
Blocks are stored whole: weights the mask removed inside a kept block are stored as zeros, so
this pays only where the pruning kept whole blocks (:func:`sparsenet.prune.block.block_masks`).

Every layer's outputs are padded to whole groups (``4 * n_groups``: the padded units get bias 0
and no weights, so they hold 0 and the next layer never reads them). The arrays::

    BlockShape  widths   int64[n_layers + 1]   layer l maps widths[l] inputs to widths[l + 1] outputs
                relu     bool[n_layers]
                g_off    int64[n_layers + 1]   layer l's groups are g_off[l]:g_off[l + 1] (absolute)
    bias        float[4 * g_off[-1]]           group g's four biases at 4 * g (zeros where none or padded)
    BlockCSR    gptr     int64[g_off[-1] + 1]  group g owns blocks gptr[g]:gptr[g + 1], inputs ascending
                cols     uint16|int32[n_blocks]  the block's input within its layer
                vals     float[4 * n_blocks]   the block's four weights (rows 4g ... 4g + 3)
    BlockCSC    cptr     int64[sum(widths[:-1]) + 1]  input c of layer l (column c_off[l] + c) owns
                                               blocks cptr[...]:cptr[... + 1], groups ascending
                groups   uint16|int32[n_blocks]  the block's group within its layer
                vals     float[4 * n_blocks]
                c_off    int64[n_layers]

Batched, ``block_forward_batch(shape, csr, bias, x, buf_a, buf_b, out, n_threads)``: tile-major
``x`` ``(n_tiles, n_in, T)``, ``buf_a``/``buf_b`` ``(n_tiles, max padded width, T)``, ``out``
``(n_tiles, 4 * n_groups of the last layer, T)``; T one of BLOCK_LANES. Each row is summed in
input order, starting from its bias, whatever T is.

Batch 1, ``block_forward_vector(ints, groups, vals, bias, x, act, buf_a, buf_b, out)`` with
``ints = flatten_block_vector(shape, csc)`` and the CSC's ``groups`` and ``vals``: only the non-zero
inputs' columns are walked (as :func:`.fused.forward_vector` does); every row is summed in
input order too, so batch 1 and batched results agree to rounding of the fused multiply-add.
"""

from typing import NamedTuple

import numba
import numpy as np

from .fused import _FASTMATH, _active, _layer_buffers
from .simd import VECTOR_BITS, at, register_lanes, vfma, vload, vrelu, vsplat, vstore

BLOCK = 4
_B64 = np.uint64(BLOCK)  # for positions held unsigned: numba turns int64 * uint64 into a float
# Tile widths the batched kernel is compiled for. Four accumulators of T lanes must fit half the
# register file (kernels.fused.ACC_REGISTERS): T = 2 registers' lanes, 16 float32 on AVX2 (4 x 2
# ymm = 8 independent FMA chains, what 2 FMA units of 4-cycle latency need), 32 on AVX-512.
BLOCK_LANES = (8, 16, 32)


class BlockShape(NamedTuple):
    widths: np.ndarray
    relu: np.ndarray
    g_off: np.ndarray


class BlockCSR(NamedTuple):
    gptr: np.ndarray
    cols: np.ndarray
    vals: np.ndarray


class BlockCSC(NamedTuple):
    cptr: np.ndarray
    groups: np.ndarray
    vals: np.ndarray
    c_off: np.ndarray


def block_lanes(dtype, vector_bits: int = VECTOR_BITS) -> tuple[int, ...]:
    """The BLOCK_LANES whose four accumulators fit 8 registers of ``vector_bits``: float32 8-16 on
    AVX2, 8-32 on AVX-512, 8 on SSE2/NEON (where one register holds 4)."""
    r = register_lanes(dtype, vector_bits)
    return tuple(t for t in BLOCK_LANES if BLOCK * max(1, t // r) <= 8) or (BLOCK_LANES[0],)


@numba.njit(inline="always")
def _group(csr, g, bias, src, so, dst, do, relu, lanes):
    """Rows 4g ... 4g + 3 (one group) for one tile: dst.flat[do + k * lanes:][:lanes] for k < 4."""
    b = BLOCK * g
    a0 = vsplat(bias[b], lanes)
    a1 = vsplat(bias[b + 1], lanes)
    a2 = vsplat(bias[b + 2], lanes)
    a3 = vsplat(bias[b + 3], lanes)
    cols, vals = csr.cols, csr.vals
    for p in range(np.uint64(csr.gptr[g]), np.uint64(csr.gptr[g + 1])):
        xv = vload(src, so + at(cols, p) * lanes, lanes)
        q = _B64 * p
        a0 = vfma(a0, at(vals, q), xv)
        a1 = vfma(a1, at(vals, q + 1), xv)
        a2 = vfma(a2, at(vals, q + 2), xv)
        a3 = vfma(a3, at(vals, q + 3), xv)
    if relu:
        a0, a1, a2, a3 = vrelu(a0), vrelu(a1), vrelu(a2), vrelu(a3)
    vstore(dst, do, a0)
    vstore(dst, do + lanes, a1)
    vstore(dst, do + 2 * lanes, a2)
    vstore(dst, do + 3 * lanes, a3)


@numba.njit(inline="always")
def _groups(csr, bias, g0, i0, i1, src, so, dst, do, relu, lanes):
    for i in range(i0, i1):
        _group(csr, g0 + i, bias, src, so, dst, do + i * BLOCK * lanes, relu, lanes)


@numba.njit(nogil=True, fastmath=_FASTMATH)
def _groups_any(csr, bias, g0, i0, i1, src, so, dst, do, relu, lanes):
    """_groups with ``lanes`` turned into a literal: one compiled copy per BLOCK_LANES width."""
    if lanes == 32:
        _groups(csr, bias, g0, i0, i1, src, so, dst, do, relu, 32)
    elif lanes == 16:
        _groups(csr, bias, g0, i0, i1, src, so, dst, do, relu, 16)
    else:
        _groups(csr, bias, g0, i0, i1, src, so, dst, do, relu, 8)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def block_forward_batch(shape, csr, bias, x, buf_a, buf_b, out, n_threads):
    """out = network(x) for a batch in tile-major layout (see the module docstring). With at
    least one tile per thread, threads take whole tiles through every layer (no barrier between
    layers); otherwise each layer's groups are split into one range per thread, one tile at a
    time."""
    widths, relu, g_off = shape.widths, shape.relu, shape.g_off
    n_layers = widths.shape[0] - 1
    n_tiles, lanes = x.shape[0], x.shape[2]
    if lanes != 8 and lanes != 16 and lanes != 32:
        raise ValueError("block_forward_batch: the tile width x.shape[2] must be one of BLOCK_LANES")
    if n_tiles >= n_threads:
        for t in numba.prange(n_tiles):  # tile t writes only [t]: no races
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                _groups_any(csr, bias, g_off[l], 0, g_off[l + 1] - g_off[l], src, t * src.shape[1] * lanes, dst,
                            t * dst.shape[1] * lanes, relu[l], lanes)
    else:
        n_chunks = max(1, n_threads)
        for t in range(n_tiles):
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                n_g = g_off[l + 1] - g_off[l]
                for c in numba.prange(n_chunks):  # chunk c writes only its groups of [t]: no races
                    _groups_any(csr, bias, g_off[l], c * n_g // n_chunks, (c + 1) * n_g // n_chunks, src,
                                t * src.shape[1] * lanes, dst, t * dst.shape[1] * lanes, relu[l], lanes)
    return out


def flatten_block_vector(shape: BlockShape, csc: BlockCSC) -> np.ndarray:
    """block_forward_vector's ``ints``: a header of 6 bounds, then ``widths, relu, g_off, cptr,
    c_off`` back to back as int64. Plain arrays, not NamedTuples: numba unboxes every array of a
    NamedTuple argument on every call (several microseconds; see :func:`.fused.forward_vector`)."""
    parts = [shape.widths, shape.relu, shape.g_off, csc.cptr, csc.c_off]
    bounds = 6 + np.cumsum([0] + [np.asarray(p).size for p in parts])
    return np.concatenate([bounds] + [np.asarray(p).astype(np.int64) for p in parts]).astype(np.int64)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def block_forward_vector(ints, groups, vals, bias, x, act, buf_a, buf_b, out):
    """out = network(x) for one sample, on ``ints = flatten_block_vector(shape, csc)`` and the
    CSC's ``groups`` and ``vals``: each non-zero input adds, for every block in its column, the
    block's four weights times the input to four consecutive outputs (one 4-lane vector).
    Serial: at batch 1 a layer's work is a few microseconds, about what waking a thread costs."""
    widths, relu, g_off = ints[ints[0]:ints[1]], ints[ints[1]:ints[2]], ints[ints[2]:ints[3]]
    cptr, c_off = ints[ints[3]:ints[4]], ints[ints[4]:ints[5]]
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_pad, c0, b0 = widths[l], BLOCK * (g_off[l + 1] - g_off[l]), c_off[l], BLOCK * g_off[l]
        for i in range(n_pad):
            dst[i] = bias[b0 + i]
        n_act = _active(src, n_in, act)
        for q in range(n_act):
            j = act[q]
            v = src[j]
            for p in range(np.uint64(cptr[c0 + j]), np.uint64(cptr[c0 + j + 1])):
                d = _B64 * np.uint64(at(groups, p))
                vstore(dst, d, vfma(vload(dst, d, BLOCK), v, vload(vals, _B64 * p, BLOCK)))
        if relu[l]:
            for i in range(n_pad):
                if dst[i] < 0:
                    dst[i] = 0
    return out
