"""CSR arrays built from masks, shared by the CSR formats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Layer


@dataclass(frozen=True)
class CSRLayer:
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    bias: np.ndarray | None  # (n_out, 1): broadcasts over the feature-major batch
    activation: str
    n_in: int

    @property
    def n_out(self) -> int:
        return self.indptr.shape[0] - 1


def to_csr_layer(layer: Layer, keep: np.ndarray, keep_bias: np.ndarray | None) -> CSRLayer:
    """Build CSR arrays from the mask, so nnz == keep.sum() even if a kept weight is 0.0.

    Indices are int32 when they fit (scipy's rule), which halves index memory and shows in ``in_memory_bytes``.
    """
    rows, cols = np.nonzero(keep)  # row-major order: rows already sorted, columns sorted per row
    index_dtype = np.int32 if max(rows.size, layer.n_in) < 2**31 else np.int64
    indptr = np.searchsorted(rows, np.arange(layer.n_out + 1)).astype(index_dtype)
    bias = None if layer.bias is None else np.where(keep_bias, layer.bias, 0).astype(layer.bias.dtype)[:, None]
    return CSRLayer(indptr, cols.astype(index_dtype), np.ascontiguousarray(layer.weight[rows, cols]),
                    bias, layer.activation, layer.n_in)


def csr_layers(masked) -> tuple[CSRLayer, ...]:
    return tuple(to_csr_layer(layer, w_keep, b_keep) for layer, w_keep, b_keep
                 in zip(masked.net.layers, masked.masks.weight, masked.masks.bias))
