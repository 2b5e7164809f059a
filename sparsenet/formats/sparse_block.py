"""``sparse_block``: the network as 4x1 weight blocks, for block-pruned networks.

Each layer's output units are grouped four by four; a group stores, for every input where any
of its four weights is kept, the four weights (zeros included) and one index. Batch 1 walks the
non-zero inputs and adds each block as one 4-lane vector; larger batches run
:func:`~sparsenet.kernels.block.block_forward_batch`, where one input row feeds four rows'
multiply-adds. It pays only where the pruning kept whole blocks (``pruning = "block"``: the
``block`` method); on unstructured masks most blocks hold one kept weight and three zeros.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from ..kernels import block as kb
from ..kernels.simd import VECTOR_BITS
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults
from .fused import aligned_empty, fill_tiles
from .fused import tile_lanes as fused_tile_lanes

_SCRATCH_SHAPES = 3


def _kept_blocks(keep: np.ndarray) -> np.ndarray:
    """``kept[g, c]``: whether group g (rows 4g ... 4g + 3) keeps any weight at input c."""
    n_out, n_in = keep.shape
    mask = np.zeros((-(-n_out // kb.BLOCK) * kb.BLOCK, n_in), bool)
    mask[:n_out] = keep
    return mask.reshape(-1, kb.BLOCK, n_in).any(axis=1)


def _blocks(w: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, values)`` of one layer: :func:`_kept_blocks`, and ``values[g, c]`` the group's four
    masked weights at input c (zeros where removed or padded)."""
    kept = _kept_blocks(keep)
    vals = np.zeros((kept.shape[0] * kb.BLOCK, w.shape[1]), w.dtype)
    vals[:w.shape[0]] = np.where(keep, w, 0)
    return kept, vals.reshape(kept.shape[0], kb.BLOCK, w.shape[1]).transpose(0, 2, 1)


def block_fill(masked: MaskedNetwork) -> float:
    """Kept weights per stored block weight: 1.0 where every kept block is whole (block pruning),
    about 0.3 for unstructured pruning at sparsity 0.9 (most blocks then hold one kept weight)."""
    stored = sum(int(_kept_blocks(keep).sum()) * kb.BLOCK for keep in masked.masks.weight)
    kept = sum(int(k.sum()) for k in masked.masks.weight)
    return kept / stored if stored else 1.0


def tile_lanes(n_batch: int, dtype, vector_bits: int = VECTOR_BITS, n_threads: int = 1) -> int:
    """Samples per tile, among :func:`~sparsenet.kernels.block.block_lanes`, by the rule of
    :func:`sparsenet.formats.fused.tile_lanes` (a whole tile per thread first, then the least
    padding cost)."""
    return fused_tile_lanes(n_batch, dtype, vector_bits, n_threads, kb.block_lanes(dtype, vector_bits))


@dataclass(frozen=True)
class SparseBlockForward(FormatDefaults):
    name: ClassVar[str] = "sparse_block"
    kind: ClassVar[str] = "sparse"
    summary: ClassVar[str] = ("4x1 weight blocks (4 output units, one input, one index): one input load feeds 4 "
                              "rows; pays only on block-pruned weights (method 'block')")
    style: ClassVar[tuple[str, str]] = ("crimson", "D")
    pruning: ClassVar[str] = "block"
    operating_points: ClassVar[bool] = True
    activations: ClassVar[frozenset[str]] = frozenset({"relu", "linear", "softmax"})
    shape: kb.BlockShape
    csr: kb.BlockCSR
    csc: kb.BlockCSC
    bias: np.ndarray  # padded per group, see sparsenet.kernels.block
    ints1: np.ndarray  # batch 1's shape and column pointers, flatten_block_vector
    n_kept: int
    vector_bits: int
    _scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def build(cls, masked: MaskedNetwork, vector_bits: int | None = None) -> SparseBlockForward:
        vector_bits = VECTOR_BITS if vector_bits is None else vector_bits
        if vector_bits not in (128, 256, 512):
            raise ValueError(f"vector_bits must be 128, 256 or 512, found {vector_bits!r}")
        net = masked.net
        for i, layer in enumerate(net.layers):
            if layer.activation not in cls.activations:
                raise NotImplementedError(f"the sparse_block format fuses ReLU/linear only; layer {i} is "
                                          f"{layer.activation!r}")
        widths = np.array(net.widths, dtype=np.int64)
        index_dtype = np.uint16 if widths.max() <= np.iinfo(np.uint16).max + 1 else np.int32
        gptr, cols, rvals, cptr, groups, cvals, bias, g_off, c_off = [[0]], [], [], [[0]], [], [], [], [0], [0]
        n_blocks = 0
        for w, keep, b in zip(masked.masked_weights(), masked.masks.weight, masked.masked_biases()):
            kept, vals = _blocks(w, keep)
            g, c = np.nonzero(kept)  # row-major: by group, inputs ascending
            gptr.append(n_blocks + np.cumsum(np.bincount(g, minlength=kept.shape[0])))
            cols.append(c.astype(index_dtype))
            rvals.append(vals[g, c].ravel())
            c2, g2 = np.nonzero(kept.T)  # by input, groups ascending
            cptr.append(n_blocks + np.cumsum(np.bincount(c2, minlength=kept.shape[1])))
            groups.append(g2.astype(index_dtype))
            cvals.append(vals[g2, c2].ravel())
            n_blocks += g.size
            padded = np.zeros(kept.shape[0] * kb.BLOCK, net.dtype)
            if b is not None:
                padded[:w.shape[0]] = b
            bias.append(padded)
            g_off.append(g_off[-1] + kept.shape[0])
            c_off.append(c_off[-1] + kept.shape[1])
        shape = kb.BlockShape(widths, np.array([layer.activation == "relu" for layer in net.layers], np.bool_),
                              np.array(g_off, np.int64))
        csc = kb.BlockCSC(np.concatenate(cptr).astype(np.int64), np.concatenate(groups).astype(index_dtype),
                          np.ascontiguousarray(np.concatenate(cvals), net.dtype), np.array(c_off[:-1], np.int64))
        return cls(shape=shape,
                   csr=kb.BlockCSR(np.concatenate(gptr).astype(np.int64), np.concatenate(cols).astype(index_dtype),
                                   np.ascontiguousarray(np.concatenate(rvals), net.dtype)),
                   csc=csc, bias=np.concatenate(bias), ints1=kb.flatten_block_vector(shape, csc),
                   n_kept=int(sum(int(k.sum()) for k in masked.masks.weight)), vector_bits=vector_bits)

    def _padded_widths(self) -> tuple[int, int, int]:
        """(n_in, widest padded hidden layer, padded n_out)."""
        g = np.diff(self.shape.g_off) * kb.BLOCK
        return int(self.shape.widths[0]), int(g[:-1].max(initial=1)), int(g[-1])

    def _buffers(self, n_tiles: int, tile: int, dtype) -> tuple[np.ndarray, ...]:
        """Per-thread tile-major scratch (input, two activation buffers, output), 64-byte aligned;
        the last _SCRATCH_SHAPES shapes are kept."""
        key = (n_tiles, tile, np.dtype(dtype))
        kept = self._scratch.__dict__.setdefault("buffers", {})
        if key not in kept:
            if len(kept) >= _SCRATCH_SHAPES:
                del kept[next(iter(kept))]
            n_in, hidden, n_out = self._padded_widths()
            kept[key] = tuple(aligned_empty((n_tiles, n, tile), dtype) for n in (n_in, hidden, hidden, n_out))
        return kept[key]

    def _vector_scratch(self, dtype) -> tuple[np.ndarray, ...]:
        kept = self._scratch.__dict__.setdefault("vector", {})
        key = np.dtype(dtype)
        if key not in kept:
            n_in, hidden, n_out = self._padded_widths()
            kept[key] = (np.empty(max(n_in, hidden), np.int64), aligned_empty(hidden, dtype),
                         aligned_empty(hidden, dtype), aligned_empty(n_out, dtype))
        return kept[key]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dtype = self.csr.vals.dtype
        n_in, n_out = int(self.shape.widths[0]), int(self.shape.widths[-1])
        x = check_batch(x, n_in=n_in, dtype=dtype)
        n_batch = x.shape[0]
        if n_batch == 1:
            act, a, b, out = self._vector_scratch(dtype)
            kb.block_forward_vector(self.ints1, self.csc.groups, self.csc.vals, self.bias, np.ascontiguousarray(x[0]),
                                    act, a, b, out)
            return out[None, :n_out].copy()
        tile = tile_lanes(n_batch, dtype, self.vector_bits, numba.get_num_threads())
        n_tiles = -(-n_batch // tile)
        src, a, b, out = self._buffers(n_tiles, tile, dtype)
        fill_tiles(src, x)
        kb.block_forward_batch(self.shape, self.csr, self.bias, src, a, b, out, numba.get_num_threads())
        return out[:, :n_out].transpose(0, 2, 1).reshape(n_tiles * tile, n_out)[:n_batch].copy()

    @property
    def nnz(self) -> int:
        return self.n_kept
