"""``sparse``: sparsenet's fastest sparse format, one compiled call per forward pass.

Batch 1 runs :func:`~sparsenet.kernels.forward_vector` (zero inputs skipped; each layer either
column-major sparse weights or, where it keeps at least DENSE_DENSITY of its weights (a fraction
per register width), dense blocks; large layers split by rows across threads); larger batches run
:func:`~sparsenet.kernels.csr_forward_batch` (CSR cut into L1-sized input blocks, on tiles of
8-64 samples held in SIMD registers). Both keep every layer in flat arrays with 16-bit indices when a
layer is narrower than 65,536 units, which cuts index traffic in half against int32.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .. import kernels
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults

# The batched kernel's input blocks. Each kept weight reads one T-sample row of the layer's
# input; a block of inputs whose rows fit in L1 (48 KiB per core here) is finished by every
# output row before the next block starts, so those reads hit L1 instead of L2. Cutting costs
# one accumulator reload per row and block, so a block also gets at least MIN_BLOCK_NNZ kept
# weights per row on average. Measured on Fashion-MNIST weights (2 threads, 64-sample tiles):
# at sparsity 0.5, 128-input blocks ran batch 1024 1.3-1.4x faster than uncut layers (in one
# core's inner loop: 0.83 against 1.90 ns per kept weight); at 0.8 and 0.9, 160-320 inputs
# gained 10-25%; at 0.95 and above 128-input blocks lost, and the MIN_BLOCK_NNZ rule cuts
# those layers in two at most (0.95) or not at all (0.99).
L1_BLOCK_BYTES = 32 * 1024
MIN_BLOCK_NNZ = 32
# A batch-1 layer stored as dense blocks with at least PARALLEL_NNZ weights (zeros included) is
# split by rows across threads; one kept sparse (CSC) is split only from PARALLEL_CSC_NNZ kept
# weights. Waking the OpenMP threads costs several microseconds per layer. Measured on the
# Fashion-MNIST weights (2-core AVX-512 Xeon, 2 threads, quiet, 64 test images, interleaved):
# dense blocks split ran 65.8 against 92.9 us at sparsity 0.5 and 66.5 against 96.1 at 0.8 (the
# 1000x1000 layer, 1M stored weights); CSC split lost at every size we have, 62.5 against 59.5 us
# at 0.83 (170k kept weights in the largest layer), 38.4 against 34.0 at 0.9 (100k). Layers ten
# times larger than those are split on the expectation that their work then dwarfs the wake-up.
PARALLEL_NNZ = 100_000
PARALLEL_CSC_NNZ = 1_000_000
# A batch-1 layer keeping at least this fraction of its weights runs as dense blocks (zeros
# stored, each non-zero input one vectorized row) instead of CSC (kept weights only, scattered
# one at a time). Both cost in proportion to the non-zero inputs, so the crossover is a density,
# and it falls as the vectors widen (a dense row costs n_out / register lanes, a scatter the
# same per kept weight on any width): one per register width. Measured on the Fashion-MNIST
# weights (cycling over 64 test images, every layer one way or the other, interleaved). AVX2 EPYC
# (Zen 3, 1 thread, shared machine): at sparsity 0.7 dense blocks 129 against CSC 194 us, at 0.8
# 217 against 218, at 0.85 245 against 175, at 0.9 235 against 126. AVX-512 EPYC (Zen 4, 2
# threads, 2026-12-06), whole network with the threshold at 0.2 against 0.12: sparsity 0.85 79
# against 64 us and 68 against 54 (dense blocks 1.23-1.26x faster), 0.87 71 against 63, 0.88 60
# against 67 (CSC 1.11x faster), 0.9 equal. (Before the CSC loop's positions were unsigned, it
# lost down to density 0.075.) 128-bit vectors: not measured, AVX2's value kept.
DENSE_DENSITY = {128: 0.2, 256: 0.2, 512: 0.125}


# Scratch buffer sets (one per batch shape) each thread keeps per network.
_SCRATCH_SHAPES = 3


def _pack(blocks, index_dtype, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, index, data, off)``: compressed blocks concatenated (CSR by rows or CSC by columns).
    Each block is (values, keep, index_base, new_layer) with the compressed axis first;
    ``index_base`` is added to the stored indices; ``off`` records where each layer's first
    block starts."""
    ptr, idx, vals, off, start, nnz = [np.zeros(1, np.int64)], [], [], [], 0, 0
    for w, keep, base, new_layer in blocks:
        major, minor = np.nonzero(keep)
        ptr.append(nnz + np.cumsum(np.bincount(major, minlength=keep.shape[0])))
        idx.append((minor + base).astype(index_dtype))
        vals.append(w[major, minor])
        if new_layer:
            off.append(start)
        start += keep.shape[0]
        nnz += major.size
    return (np.concatenate(ptr).astype(np.int64), np.concatenate(idx).astype(index_dtype),
            np.concatenate(vals).astype(dtype), np.array(off, dtype=np.int64))


def aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
    """np.empty with its data at a multiple of ``align`` bytes. NumPy aligns large arrays to 16
    bytes only; the batched kernel's 64-byte vector loads then straddle two cache lines, which
    ran its inner loop 1.5-1.6x slower (measured on one core, 128 inputs x 64 samples, density
    0.1-0.9: 1.45-1.60 against 0.90-1.00 ns per kept weight)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + n].view(dtype).reshape(shape)


def fill_tiles(src: np.ndarray, x: np.ndarray) -> None:
    """Copy the batch ``x`` (n_batch, n_in) into the tile-major ``src`` (n_tiles, n_in, T): sample
    t * T + b at ``src[t, :, b]``, a last partial tile padded with zero samples."""
    n_batch, tile = x.shape[0], src.shape[2]
    full = n_batch // tile
    src[:full] = x[:full * tile].reshape(full, tile, x.shape[1]).transpose(0, 2, 1)
    if full < src.shape[0]:
        src[full] = 0
        src[full, :, :n_batch - full * tile] = x[full * tile:].T


def input_blocks(keep: np.ndarray, itemsize: int, lanes: int | None = None) -> int:
    """How many contiguous input blocks the batched kernel cuts a layer into (see L1_BLOCK_BYTES),
    for tiles of ``lanes`` samples (default: the widest this machine runs for that itemsize)."""
    if lanes is None:
        lanes = max(kernels.tile_widths(np.dtype(f"f{itemsize}")))
    n_in, nnz = keep.shape[1], int(keep.sum())
    if nnz == 0:
        return 1
    width = max(L1_BLOCK_BYTES // (lanes * itemsize), -(-MIN_BLOCK_NNZ * keep.size // nnz))
    return max(1, min(n_in, -(-n_in // width)))


def tile_lanes(n_batch: int, dtype=np.float32, vector_bits: int = kernels.VECTOR_BITS, n_threads: int = 1,
               widths: tuple[int, ...] | None = None) -> int:
    """Samples per tile for a batch, among the tile widths whose accumulators fit ``vector_bits``
    registers (``widths``, default :func:`sparsenet.kernels.tile_widths`): the widest unless
    padding the batch to whole tiles wastes more than a narrower one costs. A kept weight costs a
    fixed overhead (its index and a broadcast, about one register's FMA) plus T / R FMAs for R =
    one register's lanes (float32: 16 with AVX-512, 8 with AVX2), so cost ~ padded * (1 + R / T).

    With ``n_threads`` > 1, widths that give every thread a whole tile come first, where any
    does: a thread then takes its tile through every layer with no barrier (sparse_block's
    kernel; 1.7-1.9x faster at batch 64, sparsity 0.9-0.99, on a 2-core AVX-512 Xeon). The
    ``sparse`` format does not ask for it: there 32-lane tiles (two) ran batch 64 1.2-1.55x
    slower than one 64-lane tile split by rows, as a kept weight's fixed overhead then buys only
    two FMAs instead of four (same machine, interleaved, sparsity 0.5-0.95)."""
    r = kernels.register_lanes(dtype, vector_bits)
    return min(widths or kernels.tile_widths(dtype, vector_bits),
               key=lambda t: (-(-n_batch // t) < n_threads, -(-n_batch // t) * t * (1 + r / t), -t))


def _dense_blocks(weights, as_dense, n_threads: int, dtype) -> kernels.DenseBlocks:
    """forward_vector's dense blocks: the layers flagged ``as_dense``, transposed to (n_in, n_out)
    and cut by output rows, one block per thread where a layer has PARALLEL_NNZ weights or more.

    Every row of every block starts on a 64-byte boundary (rows padded with zeros, cuts at
    multiples of 16 outputs, the array aligned), like the batched kernel's buffers."""
    per_line = 64 // np.dtype(dtype).itemsize
    blocks, off, r0s, widths, part0, strides = [], [0], [], [], [0], []
    for w, dense in zip(weights, as_dense):
        n_out = w.shape[0]
        k = (n_threads if n_threads > 1 and w.size >= PARALLEL_NNZ else 1) if dense else 0
        inner = [min(n_out, -(-(q * n_out // k) // per_line) * per_line) for q in range(1, k)]  # line-aligned
        cuts = [0, *inner, n_out] if k else []
        for a, b in zip(cuts[:-1], cuts[1:]):
            stride = -(-(b - a) // per_line) * per_line
            block = np.zeros((w.shape[1], stride), dtype)
            block[:, :b - a] = w[a:b].T
            blocks.append(block.ravel())
            off.append(off[-1] + block.size)
            r0s.append(a)
            widths.append(b - a)
            strides.append(stride)
        part0.append(len(r0s))
    values = aligned_empty(off[-1], dtype)
    if blocks:
        np.concatenate(blocks, out=values)
    return kernels.DenseBlocks(values, np.array(off[:-1], np.int64), np.array(r0s, np.int64),
                               np.array(widths, np.int64), np.array(part0, np.int64), np.array(strides, np.int64))


def _batch1_order(weights, keeps, biases):
    """The network with each hidden layer's units reordered for the batch-1 kernel: by how many
    weights the next layer keeps on them (its CSC column lengths), longest first.

    Reordering hidden units (rows of one layer, columns of the next, together) does not change
    the function. With the active inputs' columns walked in this order, consecutive columns have
    similar lengths and the inner loop's exit is predicted: measured on Fashion-MNIST weights
    cycling over 64 test images, 34.8 -> 29.7 us at sparsity 0.95 and 17.9 -> 13.3 us at 0.99.
    (Sorting the batched kernel's rows by length did not help it, so its pack keeps the order.)
    """
    out_w, out_k, out_b, prev = [], [], [], np.arange(weights[0].shape[1])
    for l, (w, keep, b) in enumerate(zip(weights, keeps, biases)):
        last = l == len(weights) - 1
        order = np.arange(w.shape[0]) if last else np.argsort(-keeps[l + 1].sum(axis=0), kind="stable")
        out_w.append(w[order][:, prev])
        out_k.append(keep[order][:, prev])
        out_b.append(b[order])
        prev = order
    return out_w, out_k, out_b


def _csc_parts(keeps, n_threads: int) -> np.ndarray:
    """Row blocks per layer for the batch-1 kernel's CSC layers: one per thread where a layer has
    enough work to pay for waking the threads (PARALLEL_CSC_NNZ), else one."""
    return np.array([n_threads if n_threads > 1 and int(keep.sum()) >= PARALLEL_CSC_NNZ else 1
                     for keep in keeps], dtype=np.int64)


@dataclass(frozen=True)
class FusedSparseForward(FormatDefaults):
    name: ClassVar[str] = "sparse"
    kind: ClassVar[str] = "sparse"
    summary: ClassVar[str] = ("sparsenet's fastest: the whole network in one compiled call, 16-bit indices; batch "
                              "1 skips zero activations, larger batches run CSR on SIMD tiles held in registers")
    style: ClassVar[tuple[str, str]] = ("tab:brown", "P")
    operating_points: ClassVar[bool] = True
    # the kernels fuse ReLU (or nothing); the output layer's softmax is linear, as in every format
    activations: ClassVar[frozenset[str]] = frozenset({"relu", "linear", "softmax"})
    shape: kernels.NetworkShape
    csr: kernels.BlockedCSR  # batched: per layer, input block by input block
    csc: kernels.CSCParts  # batch 1, layers kept sparse (parts: row blocks, one per thread on large layers)
    dense: kernels.DenseBlocks  # batch 1, layers stored dense
    bias: np.ndarray
    bias1: np.ndarray  # bias for batch 1, whose pack (csc, dense) orders hidden units differently
    vector_bits: int  # register width its tiles are chosen for (input blocks at build, tile widths per call)
    flat1: tuple | None = None  # batch 1's pack as forward_vector takes it; csc, dense and bias1 are views of it
    _scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def build(cls, masked: MaskedNetwork, vector_bits: int | None = None) -> FusedSparseForward:
        """The format for ``masked``, tiled for ``vector_bits`` registers (default
        :data:`sparsenet.kernels.VECTOR_BITS`, this machine's; another width runs another
        instruction set's tiles here, with the same results)."""
        vector_bits = kernels.VECTOR_BITS if vector_bits is None else vector_bits
        if vector_bits not in (128, 256, 512):
            raise ValueError(f"vector_bits must be 128, 256 or 512, found {vector_bits!r}")
        net = masked.net
        for i, layer in enumerate(net.layers):  # the output layer too: a tanh there is no logit
            if layer.activation not in cls.activations:
                raise NotImplementedError(f"the sparse format fuses ReLU/linear only; layer {i} is "
                                          f"{layer.activation!r}")
        widths = np.array(net.widths, dtype=np.int64)
        index_dtype = np.uint16 if widths.max() <= np.iinfo(np.uint16).max + 1 else np.int32
        weights, keeps = masked.masked_weights(), masked.masks.weight
        n_threads = numba.get_num_threads()
        biases = [np.zeros(layer.n_out, net.dtype) if b is None else b for layer, b in
                  zip(net.layers, masked.masked_biases())]
        widest = max(kernels.tile_widths(net.dtype, vector_bits))
        col_blocks = np.array([input_blocks(keep, np.dtype(net.dtype).itemsize, widest) for keep in keeps], np.int64)
        w1, k1, b1 = _batch1_order(weights, keeps, biases)
        as_dense = [keep.mean() >= DENSE_DENSITY[vector_bits] for keep in k1]
        parts = _csc_parts(k1, n_threads)
        parts[as_dense] = 1
        csc_keeps = [np.zeros_like(keep) if d else keep for keep, d in zip(k1, as_dense)]
        csr = _pack([(w[:, c0:c1], keep[:, c0:c1], c0, k == 0)
                     for w, keep, n in zip(weights, keeps, col_blocks)
                     for k in range(n)
                     for c0, c1 in [(k * w.shape[1] // n, (k + 1) * w.shape[1] // n)]], index_dtype, net.dtype)
        csc = _pack([(w[r0:r1].T, keep[r0:r1].T, r0, k == 0)
                     for w, keep, n in zip(w1, csc_keeps, parts)
                     for k in range(n)
                     for r0, r1 in [(k * w.shape[0] // n, (k + 1) * w.shape[0] // n)]], index_dtype, net.dtype)
        shape = kernels.NetworkShape(widths, np.array([layer.activation == "relu" for layer in net.layers], np.bool_),
                                     np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64))
        flat1, _, csc1, dense1, bias1 = kernels.flatten_vector(
            shape, kernels.CSCParts(*csc, parts), _dense_blocks(w1, as_dense, n_threads, net.dtype),
            np.concatenate(b1).astype(net.dtype))
        return cls(
            shape=shape,
            csr=kernels.BlockedCSR(*csr, col_blocks),
            csc=csc1,
            dense=dense1,
            bias=np.concatenate(biases).astype(net.dtype),
            bias1=bias1,
            flat1=flat1,
            vector_bits=vector_bits,
        )

    def _buffers(self, n_tiles: int, tile: int, dtype) -> tuple[np.ndarray, ...]:
        """Per-thread scratch reused across calls (fresh 8 MB buffers would page-fault every call):
        the tile-major input, the two activation buffers and the output, 64-byte aligned. The
        last _SCRATCH_SHAPES shapes are kept, so alternating batch sizes do not reallocate."""
        key = (n_tiles, tile, np.dtype(dtype))
        kept = self._scratch.__dict__.setdefault("buffers", {})
        if key not in kept:
            if len(kept) >= _SCRATCH_SHAPES:
                del kept[next(iter(kept))]  # the oldest
            widths = self.shape.widths
            n_in, hidden, n_out = int(widths[0]), int(widths[1:-1].max(initial=1)), int(widths[-1])
            kept[key] = tuple(aligned_empty((n_tiles, n, tile), dtype) for n in (n_in, hidden, hidden, n_out))
        return kept[key]

    def _vector_scratch(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-thread scratch of the batch-1 kernel: the active-input list and the two activation
        buffers (64-byte aligned, like its dense blocks)."""
        key = np.dtype(dtype)
        kept = self._scratch.__dict__.setdefault("vector", {})
        if key not in kept:
            widths = self.shape.widths
            hidden = int(widths[1:-1].max(initial=1))
            kept[key] = (np.empty(int(widths[:-1].max()), np.int64), aligned_empty(hidden, dtype),
                         aligned_empty(hidden, dtype))
        return kept[key]

    def _call_scratch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, np.dtype]:
        """:meth:`_vector_scratch` for the network's dtype (the only one its calls accept), with n_in,
        n_out and that dtype as plain Python values: every call reads them, and numpy scalars
        cost a conversion each."""
        kept = self._scratch.__dict__
        call = kept.get("call")
        if call is None:
            dtype = self.bias.dtype  # the network's (csr.data is int8 in sparse_int8)
            call = kept["call"] = (*self._vector_scratch(dtype), int(self.shape.widths[0]),
                                   int(self.shape.widths[-1]), dtype)
        return call

    def __call__(self, x: np.ndarray) -> np.ndarray:
        act, a, b, n_in, n_out, dtype = self._call_scratch()
        x = check_batch(x, n_in=n_in, dtype=dtype)
        n_batch = x.shape[0]
        if n_batch == 1:
            out = np.empty((1, n_out), dtype=dtype)
            kernels.forward_vector(*self.flat1, x[0] if x.flags.c_contiguous else np.ascontiguousarray(x[0]), act, a,
                                   b, out[0])
            return out
        tile = tile_lanes(n_batch, x.dtype, self.vector_bits)
        n_tiles = -(-n_batch // tile)
        src, a, b, out = self._buffers(n_tiles, tile, x.dtype)
        fill_tiles(src, x)
        kernels.csr_forward_batch(self.shape, self.csr, self.bias, src, a, b, out,
                                  numba.get_num_threads())
        y = out.transpose(0, 2, 1).reshape(n_tiles * tile, n_out)[:n_batch]
        return y.copy() if np.may_share_memory(y, out) else y  # never hand out the scratch

    @property
    def nnz(self) -> int:
        return int(self.csr.data.size)
