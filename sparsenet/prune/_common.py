"""Helpers shared by the pruning methods."""

from __future__ import annotations

import numpy as np

from ..model import Network


def keep_all(net: Network) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Fresh all-True masks (weights and biases) for ``net``: the starting point of every method."""
    weight = [np.ones(layer.weight.shape, dtype=bool) for layer in net.layers]
    bias = [None if layer.bias is None else np.ones(layer.weight.shape[0], dtype=bool) for layer in net.layers]
    return weight, bias


def n_to_remove(sparsity: float, size: int) -> int:
    """``round(sparsity * size)``, but never all of them: a layer always keeps one entry."""
    return min(int(round(sparsity * size)), size - 1)
