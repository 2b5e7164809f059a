"""Physically shrunk dense layers: dead units are deleted, not multiplied by zero.

A hidden unit (row ``i`` of layer ``l``) is dead when its whole weight row is pruned: its
pre-activation is the constant ``b_i`` (its bias if kept, else 0) and its output the constant
``act(b_i)``, which is 0 for ReLU without a bias but not for sigmoid (0.5) or a kept bias.
Deleting row ``i`` of layer ``l`` and column ``i`` of layer ``l + 1`` after folding that
constant into the next layer's bias (``bias[l + 1] += weight[l + 1][:, i] * act(b_i)``,
creating the bias where the layer had none) changes no output, for any elementwise activation.
What is left is plain BLAS on smaller matrices, except at
batch 1: there one compiled call runs every layer (:func:`sparsenet.kernels.dense_forward_vector`),
because five BLAS calls plus their numpy glue cost more than the arithmetic of a shrunk
network (80% of units removed: 14.9 us through numpy, measured here).

Every layer kind runs: a network with spatial layers gets
:class:`~.shrunk_conv.ShrunkConvForward`, which deletes pruned output channels of
convolutions (and the depthwise channels and downstream inputs that go with them) by the
channel rules in :mod:`sparsenet.formats.shrunk_conv`, then runs the smaller network with the
``dense`` format's conv path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from .. import kernels
from ..activations import activate
from ..layers import LAYER_KINDS
from ..model import MaskedNetwork
from ..validation import check_batch
from .dense import DenseLayer, DenseLayersForward, dense_forward


def live_units(masked: MaskedNetwork) -> list[np.ndarray]:
    """Indices of the surviving output units of each layer: a hidden unit survives while it keeps
    a weight (the logits layer keeps all; a layer with every unit dead keeps its first, so that
    no layer has width 0)."""
    live = []
    last = len(masked.net.layers) - 1
    for l, keep in enumerate(masked.masks.weight):
        alive = keep.any(axis=1)
        if l == last:
            alive[:] = True  # outputs are the logits
        elif not alive.any():
            alive[0] = True
        live.append(np.flatnonzero(alive))
    return live


def folded_biases(masked: MaskedNetwork, live: list[np.ndarray]) -> list[np.ndarray | None]:
    """The masked biases, each layer's plus the constant outputs ``act(b_i)`` of the previous
    layer's dead units through their (masked) outgoing weights, summed in float64."""
    weights, biases = masked.masked_weights(), list(masked.masked_biases())
    for l, layer in enumerate(masked.net.layers[:-1]):
        dead = np.setdiff1d(np.arange(layer.n_out), live[l])
        if dead.size == 0:
            continue
        pre = np.zeros(dead.size) if biases[l] is None else biases[l][dead].astype(np.float64)
        const = activate(layer.activation, pre)
        if not const.any():
            continue
        carried = weights[l + 1][:, dead].astype(np.float64) @ const
        if biases[l + 1] is not None:
            carried += biases[l + 1]
        biases[l + 1] = carried.astype(masked.net.dtype)
    return biases


class Batch1Arrays(NamedTuple):
    """The arguments of :func:`sparsenet.kernels.dense_forward_vector` that belong to the network
    (``ints``: its shape and layer offsets, :func:`sparsenet.kernels.flatten_dense_vector`)."""

    ints: np.ndarray
    weight_t: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ShrunkDenseForward(DenseLayersForward):
    """Dense BLAS layers with the dead units (and the matching downstream inputs) removed."""

    name: ClassVar[str] = "shrunk"
    kind: ClassVar[str] = "structured"
    pruning: ClassVar[str] = "structured"
    saved_as: ClassVar[str] = "shrunk"
    summary: ClassVar[str] = ("pruned units (conv: channels) deleted, BLAS on the smaller matrices (MLP batch 1: "
                              "one compiled call)")
    style: ClassVar[tuple[str, str]] = ("tab:red", "D")
    operating_points: ClassVar[bool] = True
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    layers: tuple[DenseLayer, ...]
    widths: tuple[int, ...]  # surviving widths, input first: (784, 200, 200, 100, 40, 10) at 80% unit pruning
    packed: Batch1Arrays | None = None  # the batch-1 kernel's arrays; None where it cannot run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        first = self.layers[0].weight_t
        check_batch(x, n_in=first.shape[0], dtype=first.dtype)
        if x.shape[0] != 1 or self.packed is None:
            return dense_forward(self.layers, x)
        width = max(self.widths[1:-1], default=1)
        a, b = np.empty(width, x.dtype), np.empty(width, x.dtype)
        out = np.empty(self.widths[-1], x.dtype)
        packed = self.packed
        kernels.dense_forward_vector(packed.ints, packed.weight_t, packed.bias, np.ascontiguousarray(x[0]), a, b, out)
        return out[None, :]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> ShrunkDenseForward:
        if masked.net.layer_kinds != {"dense"}:
            from .shrunk_conv import ShrunkConvForward

            return ShrunkConvForward.build(masked)
        live = live_units(masked)
        cols = np.arange(masked.net.layers[0].n_in)  # inputs of layer 0 are never removed
        layers = []
        for l, (layer, w, b) in enumerate(zip(masked.net.layers, masked.masked_weights(), folded_biases(masked, live))):
            rows = live[l]
            small = w[np.ix_(rows, cols)]
            keep = masked.masks.weight[l][np.ix_(rows, cols)]
            layers.append(DenseLayer(np.ascontiguousarray(small.T), None if b is None else b[rows].copy(),
                                     layer.activation, int(keep.sum())))
            cols = rows
        widths = (masked.net.layers[0].n_in,) + tuple(int(r.size) for r in live)
        layers, packed = _pack(layers, widths)
        return cls(layers, widths, packed)


def _pack(layers: list[DenseLayer], widths: tuple[int, ...]):
    """``(layers, arrays)``: every ``weight_t`` moved into one flat array (the layers keep
    C-contiguous views of it, so nothing is stored twice) plus the other arrays of
    kernels.dense_forward_vector; arrays is None unless every layer is ReLU/linear (the output
    layer's softmax is linear here, as in every format: forward passes return logits)."""
    if any(layer.activation not in ("relu", "linear", "softmax") for layer in layers):
        return tuple(layers), None
    dtype = layers[0].weight_t.dtype
    sizes = [layer.weight_t.size for layer in layers]
    w_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = np.concatenate([layer.weight_t.ravel() for layer in layers])
    layers = tuple(dataclasses.replace(layer, weight_t=flat[w_off[l]:w_off[l + 1]].reshape(layer.weight_t.shape))
                   for l, layer in enumerate(layers))
    biases = [np.zeros(layer.weight_t.shape[1], dtype) if layer.bias is None else layer.bias for layer in layers]
    shape = kernels.NetworkShape(np.array(widths, dtype=np.int64),
                                 np.array([layer.activation == "relu" for layer in layers], dtype=np.bool_),
                                 np.concatenate([[0], np.cumsum(widths[1:-1])]).astype(np.int64))
    ints = kernels.flatten_dense_vector(shape, kernels.DenseWeights(flat, w_off[:-1]))
    return layers, Batch1Arrays(ints, flat, np.concatenate(biases).astype(dtype))
