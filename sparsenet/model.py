"""The objects every stage hands to the next: plain arrays in frozen dataclasses.

A :class:`Network` is a sequence of layers of registered kinds (:mod:`sparsenet.layers`):
``dense``, whose :class:`Layer` computes ``y = activation(x @ weight.T + bias)`` with ``weight``
``(n_out, n_in)``, and the spatial kinds ``conv2d`` (weight ``(C_out, kh, kw, C_in)``),
``depthwise_conv2d`` (``(C, kh, kw)``) and ``global_avg_pool`` (no weights) on NHWC activations
that travel flattened, so that widths chain for every kind. Each kind's module documents its
weight orientation once; a ``conv2d`` layer's ``residual_from`` adds an earlier output (the
inverted residual blocks of MobileNetV2), the one edge besides the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import Layer
from .validation import check_network

__all__ = ["Layer", "MaskedNetwork", "Masks", "Network"]


@dataclass(frozen=True)
class Network:
    """A stack of layers whose widths chain; checked when built."""

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        check_network(self)

    @property
    def widths(self) -> tuple[int, ...]:
        """``(n_in, n_out of layer 0, ..., n_out of the last layer)``, e.g. (784, 1000, ..., 10)."""
        return (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].weight.dtype

    @property
    def layer_kinds(self) -> frozenset[str]:
        """The kinds of layer this network is made of (keys of :data:`sparsenet.layers.LAYER_KINDS`)."""
        return frozenset(layer.kind for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(n_in,)`` for an MLP, ``(H, W, C)`` for a network that starts spatial
        (formats take it flattened, C order)."""
        return tuple(getattr(self.layers[0], "input_shape", (self.layers[0].n_in,)))

    @property
    def n_weights(self) -> int:
        return sum(layer.weight.size for layer in self.layers)


@dataclass(frozen=True)
class Masks:
    """Which weights (and bias entries) survive pruning; ``True`` means kept."""

    weight: tuple[np.ndarray, ...]  # bool, same shape as each Layer.weight
    bias: tuple[np.ndarray | None, ...]  # bool (n_out,) or None where the layer has no bias


@dataclass(frozen=True)
class MaskedNetwork:
    """A network plus the masks one pruning run produced.

    ``sparsity`` is what was asked for; :meth:`achieved_sparsity` is what the masks hold,
    measured over the layers that were eligible for pruning (``pruned_layers``).
    """

    net: Network
    masks: Masks
    method: str
    sparsity: float
    scope: str = "layer"
    pruned_layers: tuple[int, ...] = ()

    def masked_weights(self) -> tuple[np.ndarray, ...]:
        """Weights with pruned entries set to exactly 0 (fresh arrays)."""
        return tuple(np.where(keep, layer.weight, 0).astype(layer.weight.dtype)
                     for layer, keep in zip(self.net.layers, self.masks.weight))

    def masked_biases(self) -> tuple[np.ndarray | None, ...]:
        return tuple(None if layer.bias is None else np.where(keep, layer.bias, 0).astype(layer.bias.dtype)
                     for layer, keep in zip(self.net.layers, self.masks.bias))

    def layer_sparsity(self) -> tuple[float, ...]:
        """Fraction of removed weights in every layer (0.0 for layers that were not pruned)."""
        return tuple(1.0 - float(keep.sum()) / keep.size if keep.size else 0.0 for keep in self.masks.weight)

    def achieved_sparsity(self) -> float:
        """``1 - kept / total`` over the weight matrices that pruning was allowed to touch."""
        idx = self.pruned_layers or tuple(range(len(self.masks.weight)))
        total = sum(self.masks.weight[i].size for i in idx)
        kept = sum(int(self.masks.weight[i].sum()) for i in idx)
        return 1.0 - kept / total

    def overall_sparsity(self) -> float:
        """``1 - kept / total`` over every weight matrix, logits layer included."""
        total = sum(keep.size for keep in self.masks.weight)
        return 1.0 - sum(int(keep.sum()) for keep in self.masks.weight) / total
