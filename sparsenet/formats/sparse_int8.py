"""``sparse_int8``: the ``sparse`` format's packs and loops with int8 weights and per-unit scales.

Weight-only int8 (:mod:`sparsenet.quantize`): activations stay float, each kept weight is one
byte next to its 16-bit index (3 bytes instead of 6), widened to float in registers
(:mod:`sparsenet.kernels.int8`). Batch 1 runs CSC or dense blocks per layer as ``sparse`` does
(same PARALLEL_*NNZ rules, hidden units in the same order; dense blocks from a lower density,
DENSE_DENSITY below), larger batches the same CSR input blocks on SIMD tiles. Outputs are
checked against the format's own :meth:`~SparseInt8Forward.reference`, the float64 dequantized
network.

Measured on the 784-1000-1000-500-200-10 Fashion-MNIST MLP (2-core AVX2 EPYC shared with
other jobs at load 5-6, 1 numba thread, interleaved medians of real test images, 2026-12-02):
batch 1 1.93x faster than ``sparse`` at sparsity 0.5 and 1.84x at 0.8 (dense-block layers: a
quarter of the bytes, four inputs per pass), 1.03x at 0.9 and 0.82x at 0.95 (10th percentiles
1.33x and 1.05x: both formats run CSC there since DENSE_DENSITY (0.2 on AVX2), and a cached scatter is
bound by its loads and stores, not by bytes); batches of 64 and 1024 0.78-1.02x (the same FMAs,
one int8 load and table broadcast more per kept weight). Two threads on that loaded machine
measured thread wake-ups, not kernels (medians of milliseconds at batch 1); not quoted.

Built from a MaskedNetwork (``convert(masked, "sparse_int8")`` quantizes at build), or from a
:class:`~sparsenet.quantize.QuantizedNetwork` with :meth:`SparseInt8Forward.build_quantized`,
e.g. one read from an int8 compact file (:func:`sparsenet.export_int8.load_quantized`) without
quantizing again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .. import kernels
from ..kernels.int8 import flatten_int8_vector, int8_csr_forward_batch, int8_forward_vector
from ..model import MaskedNetwork
from ..quantize import QuantizedNetwork, quantize
from ..sizes import kept_bytes
from ..validation import check_batch
from . import fused
from .fused import FusedSparseForward

# A batch-1 layer keeping at least this fraction of its weights runs as int8 dense blocks, per
# register width (fused.DENSE_DENSITY's rule for float). An int8 dense row is a quarter of a
# float row's bytes and its pass takes four inputs, while a CSC scatter costs what float's does
# (its loads and stores, not its bytes), so the crossover sits lower than float's. Measured on
# Zen 4 (AVX-512, 2 threads, trained Fashion-MNIST MLP, cycling over 64 test images, builds
# interleaved, medians against float ``sparse``): with float's 0.125 at sparsity 0.88 / 0.9 / 0.92
# int8 ran 51.7 / 46.1 / 39.9 us (CSC), with 0.05 32.0 / 33.4 / 33.1 us (dense blocks; 1.58 /
# 1.32 / 1.12x faster than float ``sparse``, 1.50x at 0.9 in a second run); at 0.94 dense
# blocks tie CSC (30.9 against 32.0 us), at 0.95 they lose (34.0 against 30.2). 256 and 128
# bits: not measured; float's 0.2 divided by the 1.84x int8 dense blocks gained over float ones
# on AVX2 Zen 3 (at sparsity 0.8, 2026-12-02).
DENSE_DENSITY = {128: 0.1, 256: 0.1, 512: 0.06}


_MODE_RUNS = {"weights": "weight-only int8 (float activations)", "static": "static int8 activations"}
_MODE_FIX = {"weights": "quantize(masked) without mode='static' (a static network runs in format "
                        "'sparse_int8_static': SparseInt8StaticForward.build_quantized, or "
                        "export_int8.load_sparse_int8_static for a file)",
             "static": "quantize(masked, 'static', x_train[:300]) (or use 'sparse_int8' for weight-only int8)"}


def check_quantized(qnet: QuantizedNetwork, fmt: str, activations: frozenset[str], mode: str = "weights") -> None:
    """TypeError/NotImplementedError unless ``qnet`` is a float32 QuantizedNetwork of ``mode``
    (``quantize``'s) whose activations ``fmt`` runs."""
    if not isinstance(qnet, QuantizedNetwork):
        raise TypeError(f"{fmt}.build_quantized needs a QuantizedNetwork (from sparsenet.quantize.quantize), "
                        f"found {type(qnet).__name__}")
    if qnet.mode != mode:
        raise NotImplementedError(f"format {fmt!r} runs {_MODE_RUNS[mode]}; this network was quantized with "
                                  f"mode={qnet.mode!r}: {_MODE_FIX[mode]}")
    if qnet.dtype != np.float32:
        # int8 weights are for speed and size: float64 activations would give back the bandwidth
        # int8 saves, and every float64 kernel variant costs a minute of numba compile more.
        raise NotImplementedError(f"format {fmt!r} runs float32 activations over int8 weights; this network is "
                                  f"{qnet.dtype}: cast its layers' weights and biases to float32 before pruning "
                                  "(or use a float format, e.g. 'sparse')")
    for i, layer in enumerate(qnet.layers):
        if layer.activation not in activations:
            raise NotImplementedError(f"format {fmt!r} runs activations {sorted(activations)}; layer {i} is "
                                      f"{layer.activation!r}")


def check_weight_only(qnet: QuantizedNetwork, fmt: str, activations: frozenset[str]) -> None:
    """:func:`check_quantized` for the weight-only formats."""
    check_quantized(qnet, fmt, activations, "weights")


@dataclass(frozen=True, kw_only=True)
class SparseInt8Forward(FusedSparseForward):
    name: ClassVar[str] = "sparse_int8"
    kind: ClassVar[str] = "sparse"
    quantized: ClassVar[bool] = True
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32)})  # float activations over int8
    saved_as: ClassVar[str] = "compact_int8"  # the int8 compact file (sparsenet.export_int8) loads into it
    summary: ClassVar[str] = ("the sparse format with int8 weights (one scale per unit, float activations): "
                              "1 byte per kept weight, widened to float in registers")
    style: ClassVar[tuple[str, str]] = ("tab:olive", "X")
    operating_points: ClassVar[bool] = True
    scale: np.ndarray  # per-unit weight scales, the order of bias (batched pack)
    scale1: np.ndarray  # the same in the order of bias1 (batch-1 pack)
    widen: np.ndarray  # widen[q + 128] = float(q), the kernels' int8 -> float table
    qnet: QuantizedNetwork = field(repr=False, compare=False)  # what reference() runs
    ints1: np.ndarray | None = None  # batch 1's shape and pointers for int8_forward_vector (flatten_int8_vector)

    @classmethod
    def build(cls, masked: MaskedNetwork, vector_bits: int | None = None) -> SparseInt8Forward:
        """Quantize ``masked`` (weight-only, :func:`sparsenet.quantize.quantize`) and pack it."""
        return cls.build_quantized(quantize(masked), vector_bits)

    @classmethod
    def build_quantized(cls, qnet: QuantizedNetwork, vector_bits: int | None = None) -> SparseInt8Forward:
        """The format for an already quantized network (weight-only), tiled for ``vector_bits``."""
        check_weight_only(qnet, cls.name, cls.activations)
        vector_bits = kernels.VECTOR_BITS if vector_bits is None else vector_bits
        if vector_bits not in (128, 256, 512):
            raise ValueError(f"vector_bits must be 128, 256 or 512, found {vector_bits!r}")
        dtype = qnet.dtype
        widths = np.array(qnet.widths, dtype=np.int64)
        index_dtype = np.uint16 if widths.max() <= np.iinfo(np.uint16).max + 1 else np.int32
        weights = [layer.q for layer in qnet.layers]
        keeps = [layer.keep for layer in qnet.layers]
        biases = [np.zeros(layer.n_out, dtype) if layer.bias is None else layer.bias for layer in qnet.layers]
        scales = [layer.scale for layer in qnet.layers]
        n_threads = numba.get_num_threads()
        widest = max(kernels.tile_widths(dtype, vector_bits))
        col_blocks = np.array([fused.input_blocks(keep, dtype.itemsize, widest) for keep in keeps], np.int64)
        w1, k1, b1 = fused._batch1_order(weights, keeps, biases)
        _, _, s1 = fused._batch1_order(weights, keeps, scales)
        as_dense = [keep.mean() >= DENSE_DENSITY[vector_bits] for keep in k1]
        parts = fused._csc_parts(k1, n_threads)
        parts[as_dense] = 1
        csc_keeps = [np.zeros_like(keep) if d else keep for keep, d in zip(k1, as_dense)]
        csr = fused._pack([(w[:, c0:c1], keep[:, c0:c1], c0, k == 0)
                           for w, keep, n in zip(weights, keeps, col_blocks)
                           for k in range(n)
                           for c0, c1 in [(k * w.shape[1] // n, (k + 1) * w.shape[1] // n)]], index_dtype, np.int8)
        csc = fused._pack([(w[r0:r1].T, keep[r0:r1].T, r0, k == 0)
                           for w, keep, n in zip(w1, csc_keeps, parts)
                           for k in range(n)
                           for r0, r1 in [(k * w.shape[0] // n, (k + 1) * w.shape[0] // n)]], index_dtype, np.int8)
        shape = kernels.NetworkShape(widths, np.array([layer.activation == "relu" for layer in qnet.layers], np.bool_),
                                     np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64))
        csc1 = kernels.CSCParts(*csc, parts)
        dense1 = fused._dense_blocks(w1, as_dense, n_threads, np.int8)
        return cls(
            shape=shape,
            csr=kernels.BlockedCSR(*csr, col_blocks),
            csc=csc1,
            dense=dense1,
            ints1=flatten_int8_vector(shape, csc1, dense1),
            bias=np.concatenate(biases).astype(dtype),
            bias1=np.concatenate(b1).astype(dtype),
            vector_bits=vector_bits,
            scale=np.concatenate(scales).astype(dtype),
            scale1=np.concatenate(s1).astype(dtype),
            widen=np.arange(-128, 128).astype(dtype),
            qnet=qnet,
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        act, a, b, n_in, n_out, dtype = self._call_scratch()
        x = check_batch(x, n_in=n_in, dtype=dtype)
        n_batch = x.shape[0]
        if n_batch == 1:
            out = np.empty((1, n_out), dtype=dtype)
            int8_forward_vector(self.ints1, self.csc.rows, self.csc.data, self.dense.values, self.scale1, self.bias1,
                                self.widen, x[0] if x.flags.c_contiguous else np.ascontiguousarray(x[0]), act, a, b,
                                out[0])
            return out
        tile = fused.tile_lanes(n_batch, x.dtype, self.vector_bits)
        n_tiles = -(-n_batch // tile)
        src, a, b, out = self._buffers(n_tiles, tile, x.dtype)
        fused.fill_tiles(src, x)
        int8_csr_forward_batch(self.shape, self.csr, self.scale, self.bias, self.widen, src, a, b, out,
                               numba.get_num_threads())
        y = out.transpose(0, 2, 1).reshape(n_tiles * tile, n_out)[:n_batch]
        return y.copy() if np.may_share_memory(y, out) else y

    def reference(self, x: np.ndarray) -> np.ndarray:
        """What this format's output is checked against: the dequantized network in float64, in x's dtype."""
        x = check_batch(x, n_in=int(self.shape.widths[0]), dtype=self.bias.dtype)
        return self.qnet.reference(x).astype(x.dtype)

    @property
    def in_memory_bytes(self) -> int:
        """Both packs (CSR for batches, CSC or dense blocks for batch 1), scales and biases; not
        the QuantizedNetwork kept for :meth:`reference`."""
        return kept_bytes((self.shape, self.csr, self.csc, self.dense, self.bias, self.bias1, self.scale,
                           self.scale1, self.widen))
