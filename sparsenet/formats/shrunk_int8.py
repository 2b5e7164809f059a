"""``shrunk_int8``: the ``shrunk`` format's smaller dense matrices, in int8 with one scale per unit.

The network is quantized first (weight-only, :mod:`sparsenet.quantize`: each unit's scale from
its kept weights), then the dead units are deleted exactly as ``shrunk`` does
(:func:`sparsenet.formats.shrunk.live_units`; their constant outputs folded into the next
layer's float bias). What is left runs as ``dense_int8`` does: batch 1 one compiled call over
int8 rows, larger batches BLAS on the widened matrices. Checked against :meth:`reference`, the float64
dequantized network (shrinking changes no output of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..model import MaskedNetwork
from ..quantize import QuantizedNetwork, quantize
from .dense_int8 import DenseInt8Forward, Int8Layer, pack_layers
from .shrunk import folded_biases, live_units
from .sparse_int8 import check_weight_only


@dataclass(frozen=True)
class ShrunkInt8Forward(DenseInt8Forward):
    name: ClassVar[str] = "shrunk_int8"
    kind: ClassVar[str] = "structured"
    pruning: ClassVar[str] = "structured"
    saved_as: ClassVar[str] = "compact_int8"  # the int8 compact file (sparsenet.export_int8) loads into it
    summary: ClassVar[str] = ("pruned units deleted, the smaller matrices in int8 (one scale per unit); batch 1 "
                              "one compiled call, larger batches BLAS on the widened matrices")
    style: ClassVar[tuple[str, str]] = ("tab:pink", "d")

    @classmethod
    def build(cls, masked: MaskedNetwork) -> ShrunkInt8Forward:
        return cls.build_quantized(quantize(masked))

    @classmethod
    def build_quantized(cls, qnet: QuantizedNetwork) -> ShrunkInt8Forward:
        check_weight_only(qnet, cls.name, cls.activations)
        deq = qnet.dequantized()  # the masks and the dequantized weights the dead units' constants fold through
        live = live_units(deq)
        cols = np.arange(qnet.widths[0])
        layers = []
        for l, (layer, b) in enumerate(zip(qnet.layers, folded_biases(deq, live))):
            rows = live[l]
            q = layer.q[np.ix_(rows, cols)]
            layers.append(Int8Layer(np.ascontiguousarray(q.T), layer.scale[rows].copy(),
                                    None if b is None else b[rows].copy(), layer.activation,
                                    int(layer.keep[np.ix_(rows, cols)].sum())))
            cols = rows
        widths = (qnet.widths[0],) + tuple(int(r.size) for r in live)
        packed_layers, packed = pack_layers(layers, widths)
        return cls(packed_layers, widths, packed, qnet)
