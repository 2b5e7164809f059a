"""Slow, obviously correct references. Never imported by sparsenet/."""

from __future__ import annotations

import math

import numpy as np

from sparsenet import MaskedNetwork, Masks


def forward(masked, x: np.ndarray) -> np.ndarray:
    """Masked dense forward in float64 with explicit loops over units; returns x's dtype."""
    h = x.astype(np.float64)
    for layer, keep, bkeep in zip(masked.net.layers, masked.masks.weight, masked.masks.bias):
        out = np.zeros((h.shape[0], layer.n_out))
        for i in range(layer.n_out):
            w = np.where(keep[i], layer.weight[i].astype(np.float64), 0.0)
            out[:, i] = h @ w
            if layer.bias is not None and bkeep[i]:
                out[:, i] += layer.bias[i]
        h = activate(layer.activation, out)
    return h.astype(x.dtype)


def activate(name: str, h: np.ndarray) -> np.ndarray:
    """An activation of a float64 array, element by element from its textbook formula
    (softmax: identity, forward passes return logits)."""
    if name in ("linear", "softmax"):
        return h
    f = {
        "relu": lambda v: max(v, 0.0),
        "relu6": lambda v: min(max(v, 0.0), 6.0),
        "tanh": math.tanh,
        "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)),
        "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
        "gelu_tanh": lambda v: 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3))),
    }[name]
    return np.vectorize(f, otypes=[np.float64])(h)


def forward_net(net, x: np.ndarray) -> np.ndarray:
    """:func:`forward` of a plain Network (every weight and bias kept); float64 ``x`` gives
    float64 logits."""
    keep = Masks(tuple(np.ones(layer.weight.shape, bool) for layer in net.layers),
                 tuple(None if layer.bias is None else np.ones(layer.n_out, bool) for layer in net.layers))
    return forward(MaskedNetwork(net, keep, "weight", 0.0), x)


def csr_matmul(indptr, indices, data, x):
    """A @ x with a triple loop over rows, stored entries and batch columns."""
    out = np.zeros((len(indptr) - 1, x.shape[1]), dtype=np.float64)
    for i in range(len(indptr) - 1):
        for p in range(indptr[i], indptr[i + 1]):
            for b in range(x.shape[1]):
                out[i, b] += float(data[p]) * float(x[indices[p], b])
    return out


def magnitude_keep(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Global magnitude pruning by sorting a Python list of (|w|, layer, flat index)."""
    entries = sorted((abs(float(v)), l, j) for l, w in enumerate(weights) for j, v in enumerate(w.ravel()))
    keep = [np.ones(w.size, dtype=bool) for w in weights]
    for _, l, j in entries[:int(round(sparsity * len(entries)))]:
        keep[l][j] = False
    return [k.reshape(w.shape) for k, w in zip(keep, weights)]


def forward_kinds(masked, x: np.ndarray) -> np.ndarray:
    """Masked forward of a network of any layer kinds in float64: each kind's own reference
    ``preactivation`` (one output position at a time for the spatial kinds), the textbook
    activation, then the residual add of ``residual_from``; returns x's dtype."""
    from sparsenet.layers import kind_of

    h = x.astype(np.float64)
    outputs = {-1: h}
    for i, (layer, w, b) in enumerate(zip(masked.net.layers, masked.masked_weights(), masked.masked_biases())):
        h = activate(layer.activation, kind_of(layer).preactivation(layer, h, w, b))
        if getattr(layer, "residual_from", None) is not None:
            h = h + outputs[layer.residual_from]
        outputs[i] = h
    return h.astype(x.dtype)
