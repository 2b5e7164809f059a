"""Whole-network sparse forward passes in one compiled call (sparsenet's fastest kernels).

All layers of a network are packed into flat arrays, so one call runs every layer with bias
and ReLU fused in, and no Python runs between layers. A kernel takes named bundles of arrays
(``typing.NamedTuple``; numba reads their fields by name), then the input, scratch and output
arrays, all allocated by the caller: kernels allocate nothing. Every array is C-contiguous.

Every kernel: the network's shape, and the biases in the unit order of the weights it gets::

    NetworkShape  widths   int64[n_layers + 1]  layer l maps widths[l] inputs to widths[l + 1] outputs
                  relu     bool[n_layers]       ReLU after layer l (otherwise linear: logits)
                  bias_off int64[n_layers]      layer l's outputs start at bias_off[l] (= sum(widths[1:l + 1]))
    bias          float32|float64[sum(widths[1:])]  every layer's bias back to back (zeros where none)

Batched, ``csr_forward_batch(shape, csr, bias, x, buf_a, buf_b, out, n_threads)``: CSR,
rows are output units, each layer's inputs cut into blocks::

    BlockedCSR    indptr   int64[sum(n_blocks * n_out) + 1]  row r owns indptr[r]:indptr[r + 1] (absolute)
                  indices  uint16|int32[nnz]  input index within the layer (not within the block)
                  data     float[nnz]
                  blk_off  int64[n_layers]    first row of layer l; its input block k holds rows
                                              blk_off[l] + k * n_out ... + n_out - 1
                  n_blocks int64[n_layers]    input blocks of layer l (contiguous input ranges, in order)
    x             float[n_tiles, n_in, T]     tile-major: sample t*T + b at [t, :, b]; T in LANES
    buf_a, buf_b  float[n_tiles, max_width, T]  scratch, overwritten
    out           float[n_tiles, n_out, T]    overwritten

Batch 1, ``forward_vector(ints, rows, vals, x, act, buf_a, buf_b, out)``: per layer either CSC
(columns are input units) or dense blocks, described by these NamedTuples (and the network's shape
and bias) but handed over packed into three arrays by ``flatten_vector(shape, csc, dense, bias)``
(``unflatten_vector`` gives the NamedTuples back as views)::

    CSCParts      colptr   int64[sum(parts * n_in) + 1]  column c owns colptr[c]:colptr[c + 1] (absolute)
                  rows     uint16|int32[nnz]  output index within the layer
                  data     float[nnz]
                  col_off  int64[n_layers]    first column of layer l
                  parts    int64[n_layers]    row blocks of layer l, each packed as its own CSC
    DenseBlocks   values   float[...]         blocks back to back, block p row-major (n_in, stride[p]),
                                              of which the first width[p] columns are used
                  off, r0, width, stride  int64[n_blocks]  where block p starts, its first output,
                                              its width, elements from one input's row to the next
                  part0    int64[n_layers + 1]  layer l's blocks are part0[l]:part0[l + 1] (none: CSC)
    x float[n_in]; act int64[max(widths[:-1])] scratch; buf_a, buf_b float[max_width]; out float[n_out]

Batch 1, dense (the shrunk format), ``dense_forward_vector(ints, weight_t, bias, x, buf_a, buf_b, out)``,
with ``ints = flatten_dense_vector(shape, dense)`` of these::

    DenseWeights  weight_t float[sum(n_in * n_out)]  layer l's (n_in, n_out) matrix, row-major, from w_off[l]
                  w_off    int64[n_layers]

The batch-1 kernels walk only the inputs that are non-zero: ReLU outputs and blank
pixels are exact zeros, and their weights cannot change the result (IEEE: 0 * finite = 0;
a NaN or inf weight behind a zero input is skipped, the one place these kernels differ from
dense arithmetic). Callers (sparsenet.formats.fused) validate; nothing here checks shapes.
"""

from typing import NamedTuple

import numba
import numpy as np

from .simd import VECTOR_BITS, at, register_lanes, vfma, vload, vrelu, vsplat, vstore


class NetworkShape(NamedTuple):
    """Layer widths, activations and where each layer's outputs start (see the module docstring)."""

    widths: np.ndarray
    relu: np.ndarray
    bias_off: np.ndarray


class BlockedCSR(NamedTuple):
    """csr_forward_batch's weights: every layer's CSR, cut by input blocks."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    blk_off: np.ndarray
    n_blocks: np.ndarray


class CSCParts(NamedTuple):
    """forward_vector's sparse layers: every layer's CSC, cut by output rows into parts."""

    colptr: np.ndarray
    rows: np.ndarray
    data: np.ndarray
    col_off: np.ndarray
    parts: np.ndarray


class DenseBlocks(NamedTuple):
    """forward_vector's dense layers: (n_in, stride) row-major blocks of output columns."""

    values: np.ndarray
    off: np.ndarray
    r0: np.ndarray
    width: np.ndarray
    part0: np.ndarray
    stride: np.ndarray


class DenseWeights(NamedTuple):
    """dense_forward_vector's weights: every layer's transposed matrix, back to back."""

    weight_t: np.ndarray
    w_off: np.ndarray


# Tile widths (samples per tile) the batched kernel is compiled for, on every instruction set.
LANES = (8, 16, 32, 64)
# Vector registers a row's accumulator may take: half of the 16 that SSE and AVX2 have (AVX-512
# and NEON: 32), leaving the rest for the broadcast weights, LLVM's temporaries and, where an FMA
# cannot read memory (NEON), the loaded rows. On AVX2 a 64-lane tile with two accumulators took
# all 16 ymm registers and spilled to the stack in its inner loop.
ACC_REGISTERS = 8

# "contract" lets LLVM fuse multiply-add; no "reassoc" (it would vectorize gathers, which are
# slower than scalar loads on the AMD cores this was tuned on) and no "nnan"/"ninf".
_FASTMATH = {"contract"}


def tile_widths(dtype, vector_bits: int = VECTOR_BITS) -> tuple[int, ...]:
    """The LANES whose accumulator fits ACC_REGISTERS registers of ``vector_bits``: 8-64 lanes,
    except float64 on 256-bit registers (8-32) and everything on 128-bit ones (8-32, float64 8-16)."""
    return tuple(t for t in LANES if t // register_lanes(dtype, vector_bits) <= ACC_REGISTERS)


@numba.njit(inline="always")
def _row(csr, r, src, so, dst, do, b0, first, last, relu, lanes):
    """dst.flat[do:do + lanes] (+)= sum_p data[p] * src.flat[so + indices[p] * lanes:][:lanes] for row r.

    The accumulator is a SIMD value (:mod:`.simd`), in registers for the whole row: each kept
    weight costs one broadcast and ``lanes / register_lanes`` fused multiply-adds with a memory
    operand, in the order of the row's weights. A sample's result therefore does not depend on
    the tile width or the instruction set. ``first``: start from the bias, else from what an
    earlier input block left in dst; ``last``: apply ReLU.

    One chain, not several: two accumulators taking alternate weights (to hide the FMA latency)
    and one accumulator running the even and then the odd weights were both slower on every
    machine measured. Zen 4 EPYC (AVX-512, 2 cores, 784-1000-1000-500-200-10 MLP, weight
    pruning, sparsity 0.5-0.99, interleaved in one process, 2026-12-06): the even/odd chains in
    one accumulator ran batch 8-1024 1.15-1.7x faster than two alternating accumulators (float32,
    float64, int8 weights), and this single chain 0-14% faster again (batch 32: 1.05-1.15x).
    Zen 3 EPYC (AVX2): one accumulator 1.2-1.45x faster than two at batch 16-32.
    """
    indices, data = csr.indices, csr.data
    if first:
        a0 = vsplat(b0, lanes)
    else:
        a0 = vload(dst, do, lanes)
    for q in range(csr.indptr[r], csr.indptr[r + 1]):
        a0 = vfma(a0, at(data, q), vload(src, so + at(indices, q) * lanes, lanes))
    if relu and last:
        a0 = vrelu(a0)
    vstore(dst, do, a0)


@numba.njit(inline="always")
def _rows(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, lanes):
    """Rows i0:i1 of one layer for one tile, input block by input block: a block's slice of
    src stays in L1 while every row takes its weights from it."""
    for k in range(n_blk):
        base = blk0 + k * n_out
        for i in range(i0, i1):
            _row(csr, base + i, src, so, dst, do + i * lanes, bias[b0 + i], k == 0, k == n_blk - 1, relu, lanes)


@numba.njit(nogil=True, fastmath=_FASTMATH)
def _rows_any(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, lanes):
    """_rows with the tile width turned into a literal: one compiled copy per LANES width.

    Not inlined: both of csr_forward_batch's thread splits call this one copy, so each width
    is compiled once (a call per tile and layer costs nothing next to a layer's rows)."""
    if lanes == 64:
        _rows(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 64)
    elif lanes == 32:
        _rows(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 32)
    elif lanes == 16:
        _rows(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 16)
    else:
        _rows(csr, bias, b0, blk0, n_blk, n_out, i0, i1, src, so, dst, do, relu, 8)


@numba.njit(inline="always")
def _layer_buffers(l, n_layers, x, buf_a, buf_b, out):
    """(src, dst) of layer l: x -> a -> b -> a ... -> out."""
    src = x if l == 0 else (buf_a if l % 2 == 1 else buf_b)
    if l == n_layers - 1:
        dst = out
    elif l % 2 == 0:
        dst = buf_a
    else:
        dst = buf_b
    return src, dst


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def csr_forward_batch(shape, csr, bias, x, buf_a, buf_b, out, n_threads):
    """out = network(x) for a batch in tile-major layout; see the module docstring for the arrays.

    The tile width T = x.shape[2] must be one of LANES (any gives the same result). With at least two
    tiles per thread (``n_threads``: numba's thread count, passed in because asking for it in
    compiled code defeats numba's on-disk cache) threads take whole tiles through every layer,
    with no barrier between layers; otherwise each layer's rows are split into one range per
    thread, one tile at a time.
    """
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    n_tiles, lanes = x.shape[0], x.shape[2]
    if not (lanes == 8 or lanes == 16 or lanes == 32 or lanes == 64):
        raise ValueError("csr_forward_batch: the tile width x.shape[2] must be one of LANES (8, 16, 32, 64)")
    if n_tiles >= 2 * n_threads:
        for t in numba.prange(n_tiles):  # tile t writes only [t]: no races
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                n_out = widths[l + 1]
                _rows_any(csr, bias, bias_off[l], csr.blk_off[l], csr.n_blocks[l], n_out, 0, n_out, src,
                          t * src.shape[1] * lanes, dst, t * dst.shape[1] * lanes, relu[l], lanes)
    else:
        n_chunks = max(1, n_threads)
        for t in range(n_tiles):
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                n_out = widths[l + 1]
                for c in numba.prange(n_chunks):  # chunk c writes only its rows of [t]: no races
                    _rows_any(csr, bias, bias_off[l], csr.blk_off[l], csr.n_blocks[l], n_out,
                              c * n_out // n_chunks, (c + 1) * n_out // n_chunks, src, t * src.shape[1] * lanes,
                              dst, t * dst.shape[1] * lanes, relu[l], lanes)
    return out


@numba.njit(inline="always")
def _active(src, n_in, act):
    """act[:n] = the j < n_in with src[j] != 0, in order; returns n.

    Branch-free (every j is written, the count advances by the comparison): the zero pattern
    of ReLU activations changes with every input, so a per-input ``if`` mispredicts. Measured
    on Fashion-MNIST weights cycling over 64 test images (one process, old against new):
    sparsity 0.8/0.9/0.95/0.99 took 47/49/36/18 us with the ``if`` and 46/44/31/16 us with
    this list."""
    n = 0
    for j in range(n_in):
        act[n] = j
        n += src[j] != 0
    return n


@numba.njit(inline="always")
def _csc_part(csc, bias, b0, c0, act, n_act, r0, r1, relu, src, dst):
    """dst[r0:r1] = act(W[r0:r1] @ src + b) from a CSC pack holding only rows r0:r1; only the
    columns of the n_act active inputs act[:n_act] are read."""
    colptr, rows, data = csc.colptr, csc.rows, csc.data
    for i in range(r0, r1):
        dst[i] = bias[b0 + i]
    for q in range(n_act):
        j = act[q]
        v = src[j]
        # unsigned positions: with signed ones numba wraps every index for negative values, six more
        # instructions per kept weight (1.3-1.5x slower, one 1000x1000 layer at density 0.01-0.1)
        for p in range(np.uint64(colptr[c0 + j]), np.uint64(colptr[c0 + j + 1])):
            dst[rows[p]] += v * data[p]
    if relu:
        for i in range(r0, r1):
            if dst[i] < 0:
                dst[i] = 0


@numba.njit(inline="always")
def _dense_part(dense, p, n_in, bias, b0, act, n_act, relu, src, dst):
    """dst[r0:r0 + width] = act(src @ w + b) for dense block p, an (n_in, width) matrix, reading
    the rows of the active inputs act[:n_act] only.

    Indexed from 0 through one view per block (not per weight): the inner loop is a plain
    vectorized axpy over contiguous outputs.
    """
    r0, width, stride, start = dense.r0[p], dense.width[p], dense.stride[p], dense.off[p]
    w = dense.values[start:start + n_in * stride].reshape((n_in, stride))
    d = dst[r0:r0 + width]
    for i in range(width):
        d[i] = bias[b0 + r0 + i]
    for q in range(n_act):
        j = act[q]
        v = src[j]
        for i in range(width):
            d[i] += v * w[j, i]
    if relu:
        for i in range(width):
            if d[i] < 0:
                d[i] = 0


@numba.njit(inline="always")
def _forward_vector(shape, csc, dense, bias, x, act, buf_a, buf_b, out):
    """out = network(x) for one sample, skipping every zero input of every layer.

    A layer runs one of two ways. Dense blocks (``dense.part0[l] < dense.part0[l + 1]``):
    block ``p`` is a row-major ``(n_in, dense.stride[p])`` matrix at ``dense.values[dense.off[p]:]``
    holding outputs ``dense.r0[p]`` onwards, zeros included; each non-zero input adds one
    vectorized row. Otherwise CSC: output rows cut into ``csc.parts[l]`` contiguous blocks, each
    packed as its own CSC (block k of layer l owns columns ``csc.col_off[l] + k * n_in + j``);
    each non-zero input scatters its kept weights (scalar). With one block a layer runs
    serially (no thread start-up for small layers); with more, blocks run in parallel and
    each writes only its own rows. ``act`` is scratch for the list of non-zero inputs.
    """
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, c0, b0, k_parts = widths[l], widths[l + 1], csc.col_off[l], bias_off[l], csc.parts[l]
        p0, n_dense = dense.part0[l], dense.part0[l + 1] - dense.part0[l]
        n_act = _active(src, n_in, act)
        if n_dense == 1:
            _dense_part(dense, p0, n_in, bias, b0, act, n_act, relu[l], src, dst)
        elif n_dense > 1:
            for k in numba.prange(n_dense):
                _dense_part(dense, p0 + k, n_in, bias, b0, act, n_act, relu[l], src, dst)
        elif k_parts == 1:
            _csc_part(csc, bias, b0, c0, act, n_act, 0, n_out, relu[l], src, dst)
        else:
            for k in numba.prange(k_parts):
                _csc_part(csc, bias, b0, c0 + k * n_in, act, n_act, k * n_out // k_parts,
                          (k + 1) * n_out // k_parts, relu[l], src, dst)
    return out


# forward_vector's ``ints``: a header, then these int64 arrays back to back. The header holds
# the bounds of the arrays in ``ints`` (_N_INTS + 1 positions), then where ``vals``' dense blocks
# start, where its bias starts and where it ends (``vals`` = CSC data, padding, dense blocks, bias).
_FLAT_INTS = ("widths", "relu", "bias_off", "colptr", "col_off", "parts", "off", "r0", "width", "part0", "stride")
_N_INTS = len(_FLAT_INTS)
_HEADER = _N_INTS + 1 + 3


def flatten_vector(shape: NetworkShape, csc: CSCParts, dense: DenseBlocks, bias: np.ndarray, align: int = 64):
    """forward_vector's arguments packed for :func:`forward_vector_flat`: ``((ints, rows, vals),
    shape, csc, dense, bias)``, the NamedTuples and the bias again as views of the three arrays (keep
    those, not the originals: nothing is stored twice). The dense blocks keep their ``align``-byte
    alignment (``vals`` is aligned and the CSC data before them padded to whole lines)."""
    parts = [shape.widths, shape.relu, shape.bias_off, csc.colptr, csc.col_off, csc.parts, dense.off, dense.r0,
             dense.width, dense.part0, dense.stride]
    dtype = csc.data.dtype
    per_line = align // dtype.itemsize
    n_data = -(-csc.data.size // per_line) * per_line
    v0, v1 = n_data, n_data + dense.values.size
    v2 = v1 + bias.size
    bounds = _HEADER + np.cumsum([0] + [p.size for p in parts])
    ints = np.concatenate([bounds, [v0, v1, v2]] + [np.asarray(p).astype(np.int64) for p in parts]).astype(np.int64)
    raw = np.zeros(v2 * dtype.itemsize + align, np.uint8)
    start = -raw.ctypes.data % align
    vals = raw[start:start + v2 * dtype.itemsize].view(dtype)
    vals[:csc.data.size] = csc.data
    vals[v0:v1] = dense.values
    vals[v1:v2] = bias
    rows = np.ascontiguousarray(csc.rows)
    return (ints, rows, vals), *unflatten_vector(ints, rows, vals)


def unflatten_vector(ints: np.ndarray, rows: np.ndarray, vals: np.ndarray):
    """``(shape, csc, dense, bias)`` of a flat pack, as views of it (the Python side of what
    forward_vector does in compiled code; ``shape.relu`` is int64 there)."""
    seg = [ints[ints[i]:ints[i + 1]] for i in range(_N_INTS)]
    v0, v1, v2 = (int(v) for v in ints[_N_INTS + 1:_N_INTS + 4])
    shape = NetworkShape(seg[0], seg[1], seg[2])
    csc = CSCParts(seg[3], rows, vals[:int(seg[3][-1])], seg[4], seg[5])
    dense = DenseBlocks(vals[v0:v1], seg[6], seg[7], seg[8], seg[9], seg[10])
    return shape, csc, dense, vals[v1:v2]


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def forward_vector(ints, rows, vals, x, act, buf_a, buf_b, out):
    """out = network(x) for one sample (see _forward_vector) on the pack of :func:`flatten_vector`.

    Three arrays instead of the 17 of its NamedTuples: numba types and unboxes every array of a
    NamedTuple argument on every call, and a call that did nothing took 10.7 us with those against
    3.1 us with 9 plain arrays (784-1000-1000-500-200-10 pack, 1 thread). Measured on that network
    (1 thread, interleaved): 1.11x faster at sparsity 0.9, 1.18x at 0.95, 1.35x at 0.99 (36 -> 27 us)."""
    h = _N_INTS + 1
    colptr = ints[ints[3]:ints[4]]
    shape = NetworkShape(ints[ints[0]:ints[1]], ints[ints[1]:ints[2]], ints[ints[2]:ints[3]])
    csc = CSCParts(colptr, rows, vals[:colptr[colptr.shape[0] - 1]], ints[ints[4]:ints[5]], ints[ints[5]:ints[6]])
    dense = DenseBlocks(vals[ints[h]:ints[h + 1]], ints[ints[6]:ints[7]], ints[ints[7]:ints[8]],
                        ints[ints[8]:ints[9]], ints[ints[9]:ints[10]], ints[ints[10]:ints[11]])
    return _forward_vector(shape, csc, dense, vals[ints[h + 1]:ints[h + 2]], x, act, buf_a, buf_b, out)


def flatten_dense_vector(shape: NetworkShape, dense: DenseWeights) -> np.ndarray:
    """dense_forward_vector's ``ints``: ``[n_layers, widths, relu, bias_off, w_off]`` as one int64 array."""
    return np.concatenate([[len(shape.relu)], shape.widths, shape.relu, shape.bias_off, dense.w_off]).astype(np.int64)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def dense_forward_vector(ints, weight_t, bias, x, buf_a, buf_b, out):
    """out = network(x) for one sample through dense matrices, skipping zero inputs.

    ``weight_t`` holds every layer's ``(n_in, n_out)`` matrix row-major, back to back, layer ``l``
    from ``w_off[l]``: input ``j``'s weights are contiguous, so each non-zero input adds one
    vectorized ``v * row`` to the outputs (no reduction, so no reassociation is needed to
    vectorize). Serial on purpose: the shrunk networks this runs are small enough that waking a
    second thread costs more than it saves. ``ints`` is :func:`flatten_dense_vector`'s: plain
    arrays, not NamedTuples, because numba unboxes each array of a NamedTuple on every call
    (see :func:`forward_vector`); at 80-95% unit sparsity the whole pass takes 5-9 us.
    """
    n = ints[0]
    shape = NetworkShape(ints[1:n + 2], ints[n + 2:2 * n + 2], ints[2 * n + 2:3 * n + 2])
    dense = DenseWeights(weight_t, ints[3 * n + 2:4 * n + 2])
    widths, relu, bias_off = shape.widths, shape.relu, shape.bias_off
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, b0, w0 = widths[l], widths[l + 1], bias_off[l], dense.w_off[l]
        w = dense.weight_t[w0:w0 + n_in * n_out].reshape((n_in, n_out))
        for i in range(n_out):
            dst[i] = bias[b0 + i]
        for j in range(n_in):  # a branch, not _active: on these small layers listing the
            v = src[j]         # active inputs first cost more than the mispredictions it saves
            if v != 0:         # (80% unit-pruned Fashion-MNIST: 11.1 against 8.3 us)
                for i in range(n_out):
                    dst[i] += v * w[j, i]
        if relu[l]:
            for i in range(n_out):
                if dst[i] < 0:
                    dst[i] = 0
    return out
