"""``sparse_int8_static``: int8 weights and static int8 activations, summed in integers.

The static mode of :mod:`sparsenet.quantize` run as it is defined: every layer's input rounded
to its int8 grid, int8 x int8 products summed exactly in int32 (``vpdpbusd`` on AVX-512 VNNI,
portable integer code elsewhere: :mod:`sparsenet.kernels.int8_static`), one float scale, the
bias and ReLU per unit, then the next grid. Kept weights are stored in groups of four
consecutive inputs (one 32-bit word and one 16-bit group index per group holding any kept
weight), the unit an integer dot-product instruction takes; batches run tiles of 16, 32 or 64
samples. Batch 1 runs a second copy, every layer dense (zeros stored, 1 byte a weight) against
all of the input's bytes, 64 per instruction: measured on Zen 4 (2 threads, trained
Fashion-MNIST MLP, 64 test images cycled, interleaved) 48 / 38 / 35 / 38 us at sparsity 0.5 / 0.9 /
0.95 / 0.99, where one padded 16-sample tile took 274 / 97 / 73 / 47 us (the committed run).

Calibration: :meth:`SparseInt8StaticForward.build` takes ``calibration_x``, a few hundred
training samples (what the accuracy records pass). ``convert(masked, "sparse_int8_static")``
has no data and calibrates on :data:`CALIBRATION_SAMPLES` seeded uniform [0, 1) inputs
(:func:`sparsenet.formats.engines.tflite_int8.stand_in_calibration`, as ``tflite_int8`` does):
the same kernel and the same speed, not the accuracy of real activation ranges.

Correctness: :meth:`SparseInt8StaticForward.reference` is the float64 static network
(:meth:`sparsenet.quantize.QuantizedNetwork.reference`). The integer sums are exact; the
scaling runs in float32, so a value within float32 rounding of a rounding boundary of the next
grid can land one step to the other side. Where the scales are powers of two (the tests build
such networks) nothing rounds and the output equals the reference bit for bit; on real
networks a few hidden values move by one step, and the documented tolerance is
:func:`assert_static_close`: every output within :data:`TOLERANCE` of the output's largest
magnitude.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .. import kernels
from ..kernels.int8_static import buffer_groups, flatten_static, static_forward_batch, static_forward_vector
from ..model import MaskedNetwork
from ..quantize import QuantizedNetwork, quantize
from ..sizes import kept_bytes
from ..validation import check_batch
from .base import FormatDefaults
from .fused import aligned_empty, tile_lanes
from .sparse_int8 import check_quantized

CALIBRATION_SAMPLES = 300
# A row's int32 sum of up to 254 * 127 per input stays below 2**31 for this many inputs.
MAX_INPUTS = (2 ** 31 - 1) // (254 * 127)
TOLERANCE = 0.02  # |output - reference| <= TOLERANCE * max |reference| (see the module docstring)
TILE_WIDTHS = (16, 32, 64)
# The kernel's input blocks (as fused.L1_BLOCK_BYTES for float): measured below, see input_blocks.
L1_BLOCK_BYTES = 32 * 1024
MIN_BLOCK_GROUPS = 32
_SCRATCH_SHAPES = 3

__all__ = ["CALIBRATION_SAMPLES", "MAX_INPUTS", "TOLERANCE", "SparseInt8StaticForward", "assert_static_close"]


def assert_static_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = TOLERANCE) -> None:
    """AssertionError unless ``actual`` matches ``expected`` (the static reference) within
    ``tolerance`` of the reference's largest magnitude, shapes and dtypes equal."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(f"shape/dtype {actual.shape} {actual.dtype} against {expected.shape} {expected.dtype}")
    if not np.isfinite(actual).all():
        raise AssertionError("output holds NaN/inf")
    peak = float(np.abs(expected).max(initial=0.0))
    worst = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    if worst > tolerance * peak + 1e-6:
        raise AssertionError(f"max |output - reference| = {worst:.3g}, above {tolerance} x {peak:.3g}")


def _words(q: np.ndarray) -> np.ndarray:
    """int32 (n_out, ceil(n_in / 4)): byte k of word g is q[:, 4g + k] (0 past n_in)."""
    n_out, n_in = q.shape
    padded = np.zeros((n_out, -(-n_in // 4) * 4), np.int8)
    padded[:, :n_in] = q
    return padded.view("<i4").astype(np.int32)


def input_blocks(words: np.ndarray) -> int:
    """How many blocks of input groups the kernel cuts a layer into: each block's activations
    (4 * 64 bytes a group for a 64-sample tile) fit L1_BLOCK_BYTES, unless a block would keep
    fewer than MIN_BLOCK_GROUPS groups per row on average (each block costs a store and a load
    of the row's partial sums)."""
    n_out, n_groups = words.shape
    kept = int(np.count_nonzero(words))
    if kept == 0:
        return 1
    by_l1 = -(-n_groups // (L1_BLOCK_BYTES // (4 * max(TILE_WIDTHS))))
    return max(1, min(by_l1, kept // (n_out * MIN_BLOCK_GROUPS)))


def _pack_layer(words: np.ndarray, n_blocks: int, index_dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row lengths, groups, words) of one layer, block by block (rows of block 0, then of block 1...)."""
    n_out, n_groups = words.shape
    lengths, groups, kept = [], [], []
    for k in range(n_blocks):
        c0, c1 = k * n_groups // n_blocks, (k + 1) * n_groups // n_blocks
        rows, cols = np.nonzero(words[:, c0:c1])
        lengths.append(np.bincount(rows, minlength=n_out))
        groups.append((cols + c0).astype(index_dtype))
        kept.append(words[rows, cols + c0])
    return np.concatenate(lengths), np.concatenate(groups), np.concatenate(kept).astype(np.int32)


@dataclass(frozen=True, kw_only=True)
class SparseInt8StaticForward(FormatDefaults):
    name: ClassVar[str] = "sparse_int8_static"
    kind: ClassVar[str] = "sparse"
    quantized: ClassVar[bool] = True
    integer_math: ClassVar[bool] = True
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32)})
    activations: ClassVar[frozenset[str]] = frozenset({"relu", "linear", "softmax"})
    summary: ClassVar[str] = ("int8 weights and static int8 activations (calibrated per layer): groups of 4 kept "
                              "inputs, int8 x int8 summed in int32 (AVX-512 VNNI vpdpbusd where the CPU has it)")
    style: ClassVar[tuple[str, str]] = ("darkgoldenrod", "p")
    operating_points: ClassVar[bool] = True
    saved_as: ClassVar[str] = "compact_int8"
    ints: np.ndarray  # flatten_static's
    gptr: np.ndarray
    groups: np.ndarray
    words: np.ndarray
    mult: np.ndarray  # per row: weight scale x input step (float32)
    bias: np.ndarray  # per row (float32)
    corr: np.ndarray  # per row: input offset x the row's weight sum (int32)
    inv: np.ndarray  # per layer: 1 / input step (float32)
    dwords: np.ndarray  # batch 1: every layer's words dense (zeros stored), rows padded to 16 words
    w_off: np.ndarray  # batch 1: each layer's first word in dwords
    n_pad: np.ndarray  # batch 1: words per row of each layer
    widths: tuple[int, ...]
    vector_bits: int
    qnet: QuantizedNetwork = field(repr=False, compare=False)
    calibration: str = "stand-in"
    portable: bool = False  # True: the portable dot product even where VNNI exists (tests)
    _scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def build(cls, masked: MaskedNetwork, calibration_x: np.ndarray | None = None,
              vector_bits: int | None = None) -> SparseInt8StaticForward:
        """Quantize ``masked`` in static mode, calibrated on ``calibration_x`` (training samples;
        None: the stand-in, see the module docstring), and pack it."""
        from .engines.tflite_int8 import stand_in_calibration

        source = "training samples"
        if calibration_x is None:
            calibration_x, source = stand_in_calibration(masked.net.widths[0], CALIBRATION_SAMPLES), "stand-in"
        forward = cls.build_quantized(quantize(masked, "static", calibration_x), vector_bits)
        return forward.with_calibration(f"{source} ({len(calibration_x)})")

    def with_calibration(self, calibration: str) -> SparseInt8StaticForward:
        from dataclasses import replace
        return replace(self, calibration=calibration, _scratch=threading.local())

    @classmethod
    def build_quantized(cls, qnet: QuantizedNetwork, vector_bits: int | None = None, portable: bool = False,
                        blocks: int | None = None) -> SparseInt8StaticForward:
        """The format for a static-mode QuantizedNetwork (e.g. read from an int8 compact file).
        ``portable``: the portable dot product even where VNNI exists; ``blocks``: this many input
        blocks per layer (at most one per group) instead of :func:`input_blocks`' (both for tests)."""
        check_quantized(qnet, cls.name, cls.activations, "static")
        last = len(qnet.layers) - 1
        for i, layer in enumerate(qnet.layers):
            if layer.activation == "softmax" and i < last:
                raise NotImplementedError(f"format {cls.name!r} runs relu and linear layers (softmax on the output);"
                                          f" layer {i} is {layer.activation!r}")
            if layer.n_in > MAX_INPUTS:
                raise NotImplementedError(f"format {cls.name!r} sums at most {MAX_INPUTS} inputs per unit in int32; "
                                          f"layer {i} has {layer.n_in}")
        vector_bits = kernels.VECTOR_BITS if vector_bits is None else vector_bits
        if vector_bits not in (128, 256, 512):
            raise ValueError(f"vector_bits must be 128, 256 or 512, found {vector_bits!r}")
        widths = qnet.widths
        index_dtype = np.uint16 if max(-(-w // 4) for w in widths) <= 65536 else np.int32
        lengths, groups, words, mult, bias, corr, off, n_blocks, dense = [], [], [], [], [], [], [], [], []
        for i, layer in enumerate(qnet.layers):
            signed = i == 0 or qnet.layers[i - 1].activation != "relu"
            off.append(128 if signed else 0)
            packed = _words(layer.q)
            rows = np.zeros((layer.n_out, -(-packed.shape[1] // 16) * 16), np.int32)
            rows[:, :packed.shape[1]] = packed
            dense.append(rows)
            n_blocks.append(input_blocks(packed) if blocks is None else min(blocks, packed.shape[1]))
            n, g, w = _pack_layer(packed, n_blocks[-1], index_dtype)
            lengths.append(n)
            groups.append(g)
            words.append(w)
            mult.append((layer.scale.astype(np.float64) * layer.input_scale).astype(np.float32))
            bias.append(np.zeros(layer.n_out, np.float32) if layer.bias is None else layer.bias.astype(np.float32))
            corr.append((off[-1] * layer.q.astype(np.int64).sum(axis=1)).astype(np.int32))
        row_off = np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64)
        blk_off = np.concatenate([[0], np.cumsum(np.multiply(n_blocks, widths[1:]))[:-1]]).astype(np.int64)
        relu = [layer.activation == "relu" for layer in qnet.layers]
        return cls(ints=flatten_static(widths, relu, row_off, off, blk_off, n_blocks),
                   gptr=np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64),
                   groups=np.concatenate(groups).astype(index_dtype), words=np.concatenate(words),
                   mult=np.concatenate(mult), bias=np.concatenate(bias), corr=np.concatenate(corr),
                   inv=np.array([1.0 / layer.input_scale for layer in qnet.layers], np.float32),
                   dwords=np.concatenate([d.ravel() for d in dense]),
                   w_off=np.concatenate([[0], np.cumsum([d.size for d in dense])[:-1]]).astype(np.int64),
                   n_pad=np.array([d.shape[1] for d in dense], np.int64),
                   widths=tuple(int(w) for w in widths), vector_bits=vector_bits, qnet=qnet, portable=portable)

    def _buffers(self, n_tiles: int, tile: int):
        key = (n_tiles, tile)
        kept = self._scratch.__dict__.setdefault("buffers", {})
        if key not in kept:
            if len(kept) >= _SCRATCH_SHAPES:
                del kept[next(iter(kept))]
            g_in, g_hidden = buffer_groups(self.widths)
            kept[key] = (aligned_empty(n_tiles * g_in * tile * 4, np.uint8),
                         aligned_empty(n_tiles * g_hidden * tile * 4, np.uint8),
                         aligned_empty(n_tiles * g_hidden * tile * 4, np.uint8),
                         aligned_empty(n_tiles * max(self.widths[1:]) * tile * 4, np.uint8),
                         aligned_empty((n_tiles, self.widths[-1], tile), np.float32))
        return kept[key]

    def _vector_buffers(self):
        """Batch 1's three byte buffers (input, two hidden), zeroed once (bytes past a layer's width meet zero
        words)."""
        kept = self._scratch.__dict__
        if "vector" not in kept:
            n = int(self.n_pad.max()) * 4
            kept["vector"] = tuple(np.zeros(n, np.uint8) for _ in range(3))
        return kept["vector"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, n_in=self.widths[0], dtype=np.dtype(np.float32))
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        if np.isnan(x.sum()) and np.isnan(x).any():  # one pass; the second only where the sum says so
            raise ValueError(f"input holds {int(np.isnan(x).sum())} NaN values: an int8 grid has no NaN (the float "
                             "formats return NaN for them); clean or drop those samples")
        n_batch = x.shape[0]
        if n_batch == 1:
            u_in, u_a, u_b = self._vector_buffers()
            out = np.empty((1, self.widths[-1]), np.float32)
            static_forward_vector(self.ints, self.dwords, self.w_off, self.n_pad, self.mult, self.bias, self.corr,
                                  self.inv, x[0], u_in, u_a, u_b, out[0], numba.get_num_threads(), self.portable)
            return out
        tile = tile_lanes(n_batch, np.float32, self.vector_bits, widths=TILE_WIDTHS)
        n_tiles = -(-n_batch // tile)
        xq, a, b, part, out = self._buffers(n_tiles, tile)
        static_forward_batch(self.ints, self.gptr, self.groups, self.words, self.mult, self.bias, self.corr,
                             self.inv, x, xq, a, b, part, out, numba.get_num_threads(), self.portable)
        y = out.transpose(0, 2, 1).reshape(n_tiles * tile, self.widths[-1])[:n_batch]
        return y.copy() if np.may_share_memory(y, out) else y

    def reference(self, x: np.ndarray) -> np.ndarray:
        """What this format's output is checked against: the float64 static network, in float32."""
        x = check_batch(x, n_in=self.widths[0], dtype=np.dtype(np.float32))
        return self.qnet.reference(x).astype(np.float32)

    def assert_close(self, actual: np.ndarray, expected: np.ndarray) -> None:
        """The correctness gate with this format's tolerance (:func:`assert_static_close`)."""
        assert_static_close(actual, expected)

    @property
    def nnz(self) -> int:
        return self.qnet.nnz

    @property
    def in_memory_bytes(self) -> int:
        """The packed groups, words and per-row/per-layer constants; not the QuantizedNetwork
        kept for :meth:`reference`."""
        return kept_bytes((self.ints, self.gptr, self.groups, self.words, self.mult, self.bias, self.corr, self.inv,
                           self.dwords, self.w_off, self.n_pad))
