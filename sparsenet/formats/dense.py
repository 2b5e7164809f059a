"""Masked dense layers through numpy/BLAS: zeros stored, the baseline every format is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..activations import ACTIVATIONS
from ..layers import LAYER_KINDS
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults


@dataclass(frozen=True)
class DenseLayer:
    weight_t: np.ndarray  # (n_in, n_out), C-contiguous: h @ weight_t is one GEMM/GEMV call
    bias: np.ndarray | None
    activation: str
    nnz: int


def dense_forward(layers, x: np.ndarray) -> np.ndarray:
    """Run ``x`` (n_batch, n_in) through layers with a ``weight_t``: the shared BLAS loop."""
    h = x
    for layer in layers:
        h = h @ layer.weight_t
        if layer.bias is not None:
            h += layer.bias
        h = ACTIVATIONS[layer.activation](h)
    return h


class DenseLayersForward(FormatDefaults):
    """Shared by the BLAS formats: call and nnz over ``self.layers`` of DenseLayer."""

    layers: tuple[DenseLayer, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        first = self.layers[0].weight_t
        check_batch(x, n_in=first.shape[0], dtype=first.dtype)
        return dense_forward(self.layers, x)

    @property
    def nnz(self) -> int:
        return sum(layer.nnz for layer in self.layers)


@dataclass(frozen=True)
class DenseForward(DenseLayersForward):
    """Pruned weights stay in full dense matrices: what a framework does without sparse kernels.

    Every layer kind runs: a network with spatial layers gets :class:`~.dense_conv.DenseConvForward`.
    """

    name: ClassVar[str] = "dense"
    kind: ClassVar[str] = "baseline"
    saved_as: ClassVar[str] = "dense"
    summary: ClassVar[str] = "zeros kept, numpy/BLAS: the baseline every format is compared with"
    style: ClassVar[tuple[str, str]] = ("black", "")
    operating_points: ClassVar[bool] = True
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    layers: tuple[DenseLayer, ...]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> DenseForward:
        if masked.net.layer_kinds != {"dense"}:
            from .dense_conv import DenseConvForward

            return DenseConvForward.build(masked)
        return cls(tuple(
            DenseLayer(np.ascontiguousarray(w.T), b, layer.activation, int(keep.sum()))
            for layer, w, b, keep in zip(masked.net.layers, masked.masked_weights(),
                                         masked.masked_biases(), masked.masks.weight)
        ))
