"""The convolution layer kind: ``y = activation(conv(x, weight) + bias) [+ output of layer r]``.

Weight orientation: ``Conv2D.weight`` is ``(C_out, kh, kw, C_in)``, so output channel ``o``
(a unit) owns the contiguous block ``weight[o]`` and unit pruning (filter pruning) is a mask of
whole ``weight[o]`` blocks. Keras stores ``(kh, kw, C_in, C_out)``; the importer transposes once.
It is a cross-correlation (no kernel flip), as in every framework:
``y[n, p, q, o] = sum_{i,j,c} x_pad[n, p*s + i, q*s + j, c] * weight[o, i, j, c]``.
Activations are NHWC and flattened between layers (:mod:`sparsenet.layers._spatial`). A 1x1
kernel with stride 1 is a matrix product over every spatial position (MobileNetV2's pointwise
expand/project layers).

Residual adds (MobileNetV2's inverted residual blocks): ``residual_from=r`` adds the output of
layer ``r`` (``-1``: the network's input) to this layer's output, after its activation; ``r``
must be an earlier layer with this layer's output shape. It is the one graph edge a
:class:`sparsenet.Network` holds besides the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._spatial import check_geometry, output_hw, padded


@dataclass(frozen=True)
class Conv2D:
    """A 2-D convolution over NHWC activations with explicit zero padding."""

    kind: ClassVar[str] = "conv2d"
    weight: np.ndarray  # (C_out, kh, kw, C_in)
    bias: np.ndarray | None  # (C_out,) or None
    activation: str
    input_hw: tuple[int, int]  # (height, width) of the input
    stride: int = 1
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # zeros (top, bottom, left, right); see same_pads
    residual_from: int | None = None  # add this layer's output (-1: the network input) after the activation

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_hw", tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, "pads", tuple(int(v) for v in self.pads))

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return int(self.weight.shape[1]), int(self.weight.shape[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.input_hw, int(self.weight.shape[3]))

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


class Conv2DKind:
    """What the rest of the library asks of a convolution (see :class:`sparsenet.layers.LayerKind`)."""

    name: ClassVar[str] = "conv2d"
    layer: ClassVar[type] = Conv2D
    summary: ClassVar[str] = "2-D convolution, weight (C_out, kh, kw, C_in), NHWC: a unit is an output channel"
    weight_ndim: ClassVar[int] = 4
    pruning: ClassVar[str] = "default"

    @staticmethod
    def unit_weights(weight: np.ndarray) -> np.ndarray:
        """``(C_out, kh * kw * C_in)``: row ``o`` holds every weight of output channel ``o`` (a view of
        a C-contiguous weight)."""
        return weight.reshape(weight.shape[0], -1)

    @staticmethod
    def check(layer: Conv2D) -> None:
        check_geometry(layer, layer.kernel_hw)

    @staticmethod
    def preactivation(layer: Conv2D, x: np.ndarray, weight: np.ndarray | None = None,
                      bias: np.ndarray | None = None) -> np.ndarray:
        """The float64 reference: one output position at a time, straight from the definition.
        ``x`` is ``(n_batch, n_in)`` (flattened NHWC); returns ``(n_batch, n_out)``."""
        w = (layer.weight if weight is None else weight).astype(np.float64)
        b = layer.bias if bias is None else bias
        xp = padded(np.asarray(x, np.float64).reshape(-1, *layer.input_shape), layer.pads)
        (kh, kw), s = layer.kernel_hw, layer.stride
        ho, wo, co = layer.output_shape
        out = np.zeros((xp.shape[0], ho, wo, co))
        for p in range(ho):
            for q in range(wo):
                out[:, p, q, :] = np.einsum("nijc,oijc->no", xp[:, p * s:p * s + kh, q * s:q * s + kw, :], w)
        if b is not None:
            out += b.astype(np.float64)
        return out.reshape(out.shape[0], -1)
