"""The depthwise convolution kind: every channel convolved with its own ``kh x kw`` kernel.

Weight orientation: ``DepthwiseConv2D.weight`` is ``(C, kh, kw)`` (depth multiplier 1, the only
one supported); channel ``c`` is a unit whose ``kh * kw`` weights are ``weight[c]``. Keras stores
``(kh, kw, C, 1)``; the importer transposes once.
``y[n, p, q, c] = sum_{i,j} x_pad[n, p*s + i, q*s + j, c] * weight[c, i, j]``.
NHWC, flattened between layers, explicit pads: :mod:`sparsenet.layers._spatial`.

A depthwise kernel has 9 weights per channel and carries a large share of MobileNetV2's
accuracy for a small share of its weights, so pruning skips it unless asked
(``prune(..., include_depthwise=True)``): ``pruning = "optional"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._spatial import check_geometry, output_hw, padded


@dataclass(frozen=True)
class DepthwiseConv2D:
    """A depthwise 2-D convolution (one kernel per channel) over NHWC activations."""

    kind: ClassVar[str] = "depthwise_conv2d"
    weight: np.ndarray  # (C, kh, kw)
    bias: np.ndarray | None  # (C,) or None
    activation: str
    input_hw: tuple[int, int]
    stride: int = 1
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_hw", tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, "pads", tuple(int(v) for v in self.pads))

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return int(self.weight.shape[1]), int(self.weight.shape[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.input_hw, int(self.weight.shape[0]))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (*output_hw(self.input_hw, self.kernel_hw, self.stride, self.pads), int(self.weight.shape[0]))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def n_units(self) -> int:
        return int(self.weight.shape[0])


class DepthwiseConv2DKind:
    """What the rest of the library asks of a depthwise convolution."""

    name: ClassVar[str] = "depthwise_conv2d"
    layer: ClassVar[type] = DepthwiseConv2D
    summary: ClassVar[str] = "depthwise 2-D convolution, weight (C, kh, kw), NHWC: a unit is a channel"
    weight_ndim: ClassVar[int] = 3
    pruning: ClassVar[str] = "optional"

    @staticmethod
    def unit_weights(weight: np.ndarray) -> np.ndarray:
        """``(C, kh * kw)``: row ``c`` holds channel ``c``'s kernel."""
        return weight.reshape(weight.shape[0], -1)

    @staticmethod
    def check(layer: DepthwiseConv2D) -> None:
        check_geometry(layer, layer.kernel_hw)

    @staticmethod
    def preactivation(layer: DepthwiseConv2D, x: np.ndarray, weight: np.ndarray | None = None,
                      bias: np.ndarray | None = None) -> np.ndarray:
        """The float64 reference, one output position at a time. ``x`` (n_batch, n_in) flattened NHWC."""
        w = (layer.weight if weight is None else weight).astype(np.float64)
        b = layer.bias if bias is None else bias
        xp = padded(np.asarray(x, np.float64).reshape(-1, *layer.input_shape), layer.pads)
        (kh, kw), s = layer.kernel_hw, layer.stride
        ho, wo, c = layer.output_shape
        out = np.zeros((xp.shape[0], ho, wo, c))
        for p in range(ho):
            for q in range(wo):
                out[:, p, q, :] = np.einsum("nijc,cij->nc", xp[:, p * s:p * s + kh, q * s:q * s + kw, :], w)
        if b is not None:
            out += b.astype(np.float64)
        return out.reshape(out.shape[0], -1)
