"""Activation functions by name, applied in place (every caller owns its buffer)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def relu(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0, out=h)


def relu6(h: np.ndarray) -> np.ndarray:
    """``min(max(h, 0), 6)``: MobileNetV2's activation (Keras ``ReLU(6.0)``, ONNX ``Clip(0, 6)``)."""
    return np.clip(h, 0, 6, out=h)


def linear(h: np.ndarray) -> np.ndarray:
    return h


def softmax(h: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis of a (n_batch, n_out) array."""
    h -= h.max(axis=-1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=-1, keepdims=True)
    return h


def tanh(h: np.ndarray) -> np.ndarray:
    return np.tanh(h, out=h)


def sigmoid(h: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-h))`` without overflow for large ``|h|`` (scipy's expit)."""
    return special.expit(h, out=h)


def gelu(h: np.ndarray) -> np.ndarray:
    """The exact GELU, ``h * Phi(h) = h / 2 * (1 + erf(h / sqrt(2)))``: Keras' ``gelu`` default
    (``approximate=False``), torch's ``nn.GELU()`` default and ONNX ``Gelu(approximate="none")``."""
    e = special.erf(h * np.asarray(1 / np.sqrt(2.0), h.dtype))
    e += 1
    e *= 0.5
    h *= e
    return h


def gelu_tanh(h: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation, ``h / 2 * (1 + tanh(sqrt(2/pi) * (h + 0.044715 h^3)))``: Keras
    ``gelu(approximate=True)``, torch ``GELU(approximate="tanh")``, ONNX ``Gelu(approximate="tanh")``."""
    t = h * h
    t *= 0.044715
    t += 1
    t *= h
    t *= np.asarray(_SQRT_2_OVER_PI, h.dtype)
    np.tanh(t, out=t)
    t += 1
    t *= 0.5
    h *= t
    return h


# Forward passes return logits: the output layer's "softmax" is applied by whoever needs
# probabilities (argmax for accuracy does not), so formats treat it as linear. That is only
# right for the output layer; check_network refuses softmax on a hidden layer.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "linear": linear,
    "relu": relu,
    "relu6": relu6,
    "sigmoid": sigmoid,
    "softmax": linear,
    "tanh": tanh,
}

# A deleted unit of any of these is exact: its constant output act(b_i) (sigmoid(0) = 0.5) is
# folded into the next layer's bias by sparsenet.formats.shrunk, so no act(0) == 0 rule remains.


def activate(name: str, h: np.ndarray) -> np.ndarray:
    """``ACTIVATIONS[name]`` on a copy of ``h`` (for callers that keep their input)."""
    return ACTIVATIONS[name](np.array(h, copy=True))
