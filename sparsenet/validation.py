"""Input checks shared by every module and by bench/, with one message style: what was found, what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .layers import kind_of

if TYPE_CHECKING:  # pragma: no cover
    from .model import Network

# the keys of sparsenet.activations.ACTIVATIONS (tests/test_validation.py checks they agree)
ACTIVATION_NAMES = ("gelu", "gelu_tanh", "linear", "relu", "relu6", "sigmoid", "softmax", "tanh")


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Raise ``ValueError`` naming the unknown ``value`` of ``kind`` and the valid choices."""
    choices = sorted(choices)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {choices}")
    return value


def check_sparsity(sparsity: float) -> float:
    """A sparsity is a fraction of weights to remove: a finite float in [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise TypeError(f"sparsity must be a number in [0, 1), found {sparsity!r}") from None
    if not (0.0 <= value < 1.0):  # also rejects NaN
        hint = " (give a fraction: 0.9 means 90%)" if 1.0 <= value <= 100.0 else ""
        raise ValueError(f"sparsity must be in [0, 1), found {sparsity!r}{hint}")
    return value


def check_network(net: Network) -> None:
    """Layers chain (flat sizes, and (H, W, C) shapes between spatial layers), arrays are float
    weights of the kind's rank without NaN/inf, activations are known, softmax is only the output
    layer's, and every residual add reads an earlier output of the same shape."""
    if len(net.layers) == 0:
        raise ValueError("a Network needs at least one layer, found 0")
    for i, layer in enumerate(net.layers):
        try:
            kind = kind_of(layer)
        except ValueError as exc:
            raise ValueError(f"layer {i}: {exc}") from None
        w, b = layer.weight, layer.bias
        if not isinstance(w, np.ndarray) or w.ndim != kind.weight_ndim:
            raise ValueError(f"layer {i}: a {kind.name} weight must be a {kind.weight_ndim}-D array "
                             f"({kind.summary}), found {type(w).__name__} with shape {getattr(w, 'shape', None)}")
        if w.dtype not in (np.float32, np.float64):
            raise TypeError(f"layer {i}: weight dtype must be float32 or float64, found {w.dtype}")
        if w.shape[0] == 0 or (kind.pruning != "never" and w.size == 0):
            raise ValueError(f"layer {i}: weight has an empty dimension, shape {w.shape}")
        if hasattr(kind, "check"):
            try:
                kind.check(layer)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"layer {i} ({kind.name}): {exc}") from None
        if not np.isfinite(w).all():
            bad = int(np.size(w) - np.isfinite(w).sum())
            raise ValueError(f"layer {i}: weight holds {bad} NaN/inf values; "
                             "the network is corrupt or training diverged")
        if b is not None:
            if not isinstance(b, np.ndarray) or b.shape != (w.shape[0],):
                raise ValueError(f"layer {i}: bias must have shape ({w.shape[0]},) to match weight "
                                 f"{w.shape}, found {getattr(b, 'shape', None)}")
            if b.dtype != w.dtype:
                raise TypeError(f"layer {i}: bias dtype {b.dtype} differs from weight dtype {w.dtype}")
            if not np.isfinite(b).all():
                raise ValueError(f"layer {i}: bias holds NaN/inf values")
        if layer.activation not in ACTIVATION_NAMES:
            raise ValueError(f"layer {i}: unknown activation {layer.activation!r}; "
                             f"choose one of {sorted(ACTIVATION_NAMES)}")
        if layer.activation == "softmax" and i < len(net.layers) - 1:
            # every format treats softmax as linear (forward passes return logits): a hidden
            # softmax would silently be computed as linear, so refuse it
            raise ValueError(f"layer {i}: softmax is only supported as the output layer's activation "
                             f"(forward passes return logits), found it on a hidden layer (the output "
                             f"layer is {len(net.layers) - 1}); use another activation there, e.g. 'relu'")
        if i > 0 and net.layers[i - 1].n_out != layer.n_in:
            raise ValueError(f"layer {i}: expects {layer.n_in} inputs but layer {i - 1} "
                             f"has {net.layers[i - 1].n_out} outputs")
        before = getattr(net.layers[i - 1], "output_shape", None) if i else None
        here = getattr(layer, "input_shape", None)
        if before is not None and here is not None and len(before) == 3 and tuple(before) != tuple(here):
            raise ValueError(f"layer {i}: expects input of shape {tuple(here)} (H, W, C) but layer {i - 1} "
                             f"outputs {tuple(before)}")
        _check_residual(net, i, layer)
        if w.dtype != net.layers[0].weight.dtype:
            raise TypeError(f"layer {i}: dtype {w.dtype} differs from layer 0 ({net.layers[0].weight.dtype})")


def _check_residual(net: Network, i: int, layer) -> None:
    r = getattr(layer, "residual_from", None)
    if r is None:
        return
    if not isinstance(r, int | np.integer) or not -1 <= r < i:
        raise ValueError(f"layer {i}: residual_from must be an earlier layer's index or -1 (the network "
                         f"input), found {r!r}")
    if r == -1:
        first = net.layers[0]
        source, shape = "the network input", getattr(first, "input_shape", (first.n_in,))
    else:
        source, shape = f"layer {r}", getattr(net.layers[r], "output_shape", (net.layers[r].n_out,))
    if tuple(shape) != tuple(layer.output_shape):
        raise ValueError(f"layer {i}: residual_from={r} adds {source} of shape {tuple(shape)} to an output "
                         f"of shape {tuple(layer.output_shape)}; the shapes must be equal")


def check_batch(x: np.ndarray, n_in: int, dtype: np.dtype) -> np.ndarray:
    """An input batch is a 2-D ``(n_batch, n_in)`` array of the network's float dtype.

    Returns ``x`` unchanged (no copy, no cast): a silent float64 -> float32 cast would hide a
    caller's mistake and cost time inside a benchmark.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"input must be a numpy array of shape (n_batch, {n_in}), found {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"input must have shape (n_batch, {n_in}), found {x.shape}")
    if x.dtype != dtype:
        raise TypeError(f"input dtype must be {np.dtype(dtype)} (the network's dtype), found {x.dtype}; "
                        f"convert with x.astype(np.{np.dtype(dtype)})")
    return x
