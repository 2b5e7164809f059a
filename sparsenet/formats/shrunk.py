"""Physically shrunk dense layers: dead units are deleted, not multiplied by zero.

A unit (row ``i`` of layer ``l``) is dead when its whole weight row is pruned and its bias is
pruned or absent: its pre-activation is exactly 0 and, since unit pruning only touches layers
with act(0) == 0, so is its output. Deleting row ``i`` of layer ``l`` and column ``i`` of layer
``l + 1`` then changes no output. What is left is plain BLAS on smaller matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..activations import ZERO_PRESERVING
from ..model import MaskedNetwork
from .dense import DenseLayer, DenseLayersForward


def live_units(masked: MaskedNetwork) -> list[np.ndarray]:
    """Indices of the surviving output units of each layer (the logits layer keeps all)."""
    live = []
    last = len(masked.net.layers) - 1
    for l, (layer, keep, bkeep) in enumerate(zip(masked.net.layers, masked.masks.weight, masked.masks.bias)):
        alive = keep.any(axis=1)
        if bkeep is not None:
            alive |= bkeep
        if l == last or layer.activation not in ZERO_PRESERVING:
            alive[:] = True  # outputs are the logits; a unit with act(0) != 0 still emits a value
        live.append(np.flatnonzero(alive))
    return live


@dataclass(frozen=True)
class ShrunkDenseForward(DenseLayersForward):
    """Dense BLAS layers with the dead units (and the matching downstream inputs) removed."""

    name: ClassVar[str] = "shrunk"
    layers: tuple[DenseLayer, ...]
    widths: tuple[int, ...]  # surviving widths, input first: (784, 200, 200, 100, 40, 10) at 80% unit pruning

    @classmethod
    def build(cls, masked: MaskedNetwork) -> ShrunkDenseForward:
        live = live_units(masked)
        cols = np.arange(masked.net.layers[0].n_in)  # inputs of layer 0 are never removed
        layers = []
        for l, (layer, w, b) in enumerate(zip(masked.net.layers, masked.masked_weights(), masked.masked_biases())):
            rows = live[l]
            small = w[np.ix_(rows, cols)]
            keep = masked.masks.weight[l][np.ix_(rows, cols)]
            layers.append(DenseLayer(np.ascontiguousarray(small.T), None if b is None else b[rows].copy(),
                                     layer.activation, int(keep.sum())))
            cols = rows
        widths = (masked.net.layers[0].n_in,) + tuple(int(r.size) for r in live)
        return cls(tuple(layers), widths)
