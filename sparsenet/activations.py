"""Activation functions by name, applied in place (every caller owns its buffer)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def relu(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0, out=h)


def linear(h: np.ndarray) -> np.ndarray:
    return h


def softmax(h: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis of a (n_batch, n_out) array."""
    h -= h.max(axis=-1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=-1, keepdims=True)
    return h


# Forward passes return logits: the output layer's "softmax" is applied by whoever needs
# probabilities (argmax for accuracy does not), so formats treat it as linear. That is only
# right for the output layer; check_network refuses softmax on a hidden layer.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear,
    "relu": relu,
    "softmax": linear,
}

# Unit pruning deletes a unit, which is exact only when act(0) == 0 for a hidden layer.
ZERO_PRESERVING = frozenset({"linear", "relu"})
