"""Layer kinds by name: what a network is made of, and what the rest of the library asks of each.

A network is a sequence of layers of registered kinds. Every layer object has ``kind`` (a key
of :data:`LAYER_KINDS`), ``weight`` (output units on axis 0), ``bias`` (``(n_out,)`` or None),
``activation``, ``n_in`` and ``n_out``. The kind itself (one module each) documents the weight
orientation and answers for pruners, formats and tests:

- ``unit_weights(weight)``: the weights as ``(n_units, fan_in)``, a view, so that a structured
  pruner ranks and masks units of any kind alike;
- ``preactivation(layer, x, weight=None, bias=None)``: the float64 reference computation, ``x``
  ``(n_batch, n_in)`` to ``(n_batch, n_out)`` (spatial kinds flatten NHWC, :mod:`._spatial`);
- ``weight_ndim``: the rank of ``weight``; ``check(layer)`` (optional): ValueError naming a bad
  field the generic checks cannot see (strides, padding);
- ``pruning``: ``"default"`` (pruned unless excluded), ``"optional"`` (only when asked, e.g.
  depthwise kernels) or ``"never"`` (no weights: pooling).

Spatial layers also have ``input_shape``/``output_shape`` (H, W, C), checked to chain; a
``conv2d`` layer may add an earlier layer's output (``residual_from``, see :mod:`.conv2d`).

Formats say which kinds they run (``Forward.layer_kinds``); :func:`sparsenet.convert` refuses a
network with any other kind, naming it. A new kind (a convolution, say) is one module here plus
one line in :data:`LAYER_KINDS`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from .conv2d import Conv2D, Conv2DKind
from .dense import DenseKind, Layer
from .depthwise import DepthwiseConv2D, DepthwiseConv2DKind
from .pooling import GlobalAvgPool, GlobalAvgPoolKind


class LayerKind(Protocol):
    name: ClassVar[str]
    layer: ClassVar[type]
    summary: ClassVar[str]
    weight_ndim: ClassVar[int]
    pruning: ClassVar[str]

    @staticmethod
    def unit_weights(weight: np.ndarray) -> np.ndarray: ...

    @staticmethod
    def preactivation(layer, x: np.ndarray, weight: np.ndarray | None = None,
                      bias: np.ndarray | None = None) -> np.ndarray: ...


LAYER_KINDS: dict[str, type[LayerKind]] = {
    kind.name: kind for kind in (DenseKind, Conv2DKind, DepthwiseConv2DKind, GlobalAvgPoolKind)}
SPATIAL_KINDS = frozenset({"conv2d", "depthwise_conv2d", "global_avg_pool"})  # NHWC input


def kind_of(layer) -> type[LayerKind]:
    """The registered kind of ``layer``; ValueError naming an unregistered one."""
    kind = getattr(layer, "kind", None)
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r} ({type(layer).__name__}); "
                         f"registered kinds: {sorted(LAYER_KINDS)}")
    return LAYER_KINDS[kind]


__all__ = ["LAYER_KINDS", "SPATIAL_KINDS", "Conv2D", "DepthwiseConv2D", "GlobalAvgPool", "Layer", "LayerKind",
           "kind_of"]
