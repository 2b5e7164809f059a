"""``sparse``: sparsenet's fastest sparse format, one compiled call per forward pass.

Batch 1 runs :func:`~sparsenet.kernels.csc_forward_vector` (column-major weights, zero inputs
skipped); larger batches run :func:`~sparsenet.kernels.csr_forward_batch` (row-parallel CSR on
feature-major activations). Both keep every layer in flat arrays with 16-bit indices when a
layer is narrower than 65,536 units, which cuts index traffic in half against int32.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .. import kernels
from .._validation import check_batch
from ..model import MaskedNetwork

# Samples per tile of the batched kernel. Measured on the 784-1000-1000-500-200-10 network
# (2 threads, Zen 5): 128 beat 16/32/64/256/1024 at batch 1024 and sparsity 0.5-0.99; longer
# tiles keep the vectorized inner loop busy, shorter ones fit the cache better.
TILE = 128


@dataclass(frozen=True)
class PackedLayers:
    """Every layer's kept weights in one compressed matrix (CSR by rows or CSC by columns)."""

    ptr: np.ndarray  # int64: indptr (CSR) or colptr (CSC), absolute offsets
    index: np.ndarray  # uint16|int32: input index (CSR) or output index (CSC) within the layer
    data: np.ndarray
    off: np.ndarray  # int64[n_layers]: first row (CSR) / column (CSC) of each layer in ptr

    @property
    def nbytes(self) -> int:
        return self.ptr.nbytes + self.index.nbytes + self.data.nbytes


def _pack(weights, keeps, by_rows: bool, index_dtype) -> PackedLayers:
    ptrs, idx, vals, off, start, nnz = [], [], [], [], 0, 0
    for w, keep in zip(weights, keeps):
        if not by_rows:
            w, keep = w.T, keep.T
        rows, cols = np.nonzero(keep)
        counts = np.bincount(rows, minlength=keep.shape[0])
        ptrs.append(nnz + np.cumsum(counts))
        idx.append(cols.astype(index_dtype))
        vals.append(w[rows, cols])
        off.append(start)
        start += keep.shape[0]
        nnz += rows.size
    ptr = np.concatenate([[0]] + ptrs).astype(np.int64)
    dtype = weights[0].dtype
    return PackedLayers(ptr, np.concatenate(idx).astype(index_dtype), np.concatenate(vals).astype(dtype),
                        np.array(off, dtype=np.int64))


@dataclass(frozen=True)
class FusedSparseForward:
    name: ClassVar[str] = "sparse"
    csr: PackedLayers
    csc: PackedLayers
    bias: np.ndarray
    bias_off: np.ndarray
    widths: np.ndarray
    relu: np.ndarray
    _scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def build(cls, masked: MaskedNetwork) -> FusedSparseForward:
        net = masked.net
        for i, layer in enumerate(net.layers[:-1]):
            if layer.activation not in ("relu", "linear"):
                raise NotImplementedError(f"the sparse format fuses ReLU/linear only; layer {i} is "
                                          f"{layer.activation!r}")
        widths = np.array(net.widths, dtype=np.int64)
        index_dtype = np.uint16 if widths.max() <= np.iinfo(np.uint16).max + 1 else np.int32
        weights, keeps = masked.masked_weights(), masked.masks.weight
        biases = [np.zeros(layer.n_out, net.dtype) if b is None else b for layer, b in
                  zip(net.layers, masked.masked_biases())]
        return cls(
            csr=_pack(weights, keeps, True, index_dtype),
            csc=_pack(weights, keeps, False, index_dtype),
            bias=np.concatenate(biases).astype(net.dtype),
            bias_off=np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64),
            widths=widths,
            relu=np.array([layer.activation == "relu" for layer in net.layers], dtype=np.bool_),
        )

    def _buffers(self, n_tiles: int, tile: int, dtype) -> tuple[np.ndarray, np.ndarray]:
        """Per-thread scratch reused across calls: fresh 8 MB buffers would page-fault every call."""
        shape = (n_tiles, int(self.widths[1:-1].max(initial=1)), tile)
        cached = getattr(self._scratch, "buffers", None)
        if cached is None or cached[0].shape != shape or cached[0].dtype != dtype:
            cached = (np.empty(shape, dtype), np.empty(shape, dtype))
            self._scratch.buffers = cached
        return cached

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, n_in=int(self.widths[0]), dtype=self.csr.data.dtype)
        n_batch, n_out = x.shape[0], int(self.widths[-1])
        if n_batch == 1:
            a, b = self._buffers(1, 1, x.dtype)
            out = np.empty(n_out, dtype=x.dtype)
            kernels.csc_forward_vector(self.csc.ptr, self.csc.index, self.csc.data, self.bias, self.bias_off,
                                       self.csc.off, self.widths, self.relu, np.ascontiguousarray(x[0]),
                                       a.reshape(-1), b.reshape(-1), out)
            return out[None, :]
        tile = min(TILE, n_batch)
        n_tiles = -(-n_batch // tile)
        tiled = np.zeros((n_tiles * tile, x.shape[1]), dtype=x.dtype) if n_batch % tile else None
        if tiled is not None:  # pad the last tile with zero samples
            tiled[:n_batch] = x
        src = (x if tiled is None else tiled).reshape(n_tiles, tile, -1).transpose(0, 2, 1)
        a, b = self._buffers(n_tiles, tile, x.dtype)
        out = np.empty((n_tiles, n_out, tile), dtype=x.dtype)
        kernels.csr_forward_batch(self.csr.ptr, self.csr.index, self.csr.data, self.bias, self.bias_off,
                                  self.csr.off, self.widths, self.relu, np.ascontiguousarray(src), a, b, out,
                                  n_tiles >= 2 * numba.get_num_threads())
        return out.transpose(0, 2, 1).reshape(n_tiles * tile, n_out)[:n_batch]

    @property
    def nnz(self) -> int:
        return int(self.csr.data.size)

    @property
    def nbytes(self) -> int:
        """Both copies it holds: CSR for batches, CSC for batch 1 (a deployment needing one halves this)."""
        return self.csr.nbytes + self.csc.nbytes
