"""Post-training int8 quantization of a pruned network (dense layers), and what it costs in accuracy.

Weights: symmetric int8 with one scale per output unit (a row of ``Layer.weight``)::

    scale[i] = max_j |w[i, j]| / 127 over the unit's *kept* weights   (1.0 if it keeps none, or all are 0)
    q[i, j]  = clip(rint(w[i, j] / scale[i]), -127, 127) where kept, else exactly 0

so a pruned weight stays exactly zero, -128 is never used (the grid is symmetric) and the
largest kept weight of each unit is represented exactly. Biases stay float (the network's
dtype), masked as in the float network.

Two modes (:data:`MODES`):

``"weights"`` (weight-only)
    activations stay float; a layer computes ``act(scale * (q @ x) + bias)``. What the int8
    formats (``dense_int8``, ``sparse_int8``, ``shrunk_int8``) run.
``"static"`` (static int8 activations)
    additionally, every layer's input is rounded to a symmetric int8 grid with one scale per
    layer, ``x_q = clip(rint(x / a), -127, 127) * a``, so that ``q @ x_q`` is an integer dot
    product (int32 accumulation in an integer kernel). ``a`` is calibrated on a few hundred
    samples (:data:`MIN_CALIBRATION_SAMPLES` at least): layer by layer, each on the inputs the
    already-quantized layers before it produce, ``a = max|x| / 127`` (``calibration="max"``) or
    ``a = percentile(|x|, p) / 127`` (``calibration=p``, e.g. 99.99, clipping outliers). A layer
    whose calibration inputs are all zero gets ``a = 1``. Only the reference and the accuracy
    functions run this mode today (see :meth:`QuantizedNetwork.reference`); the formats refuse it.

:meth:`QuantizedNetwork.reference` is the float64 forward of the dequantized network
(``q * scale``, and in static mode the rounded activations): what every int8 format is checked
against. A format computes the same function in float32 and differs from the reference by
float32 rounding only, so the float formats' tolerance applies unchanged
(:func:`sparsenet.testing.assert_forward_close`: rtol 1e-4, atol 1e-4 times the output's
magnitude). :func:`int8_accuracy` gives test accuracy of the quantized network next to the float one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS
from .model import Layer, MaskedNetwork, Masks, Network
from .validation import check_choice

QMAX = 127  # symmetric int8 grid: -127..127
MODES = ("weights", "static")
MIN_CALIBRATION_SAMPLES = 100

__all__ = ["MIN_CALIBRATION_SAMPLES", "MODES", "QMAX", "QuantizedLayer", "QuantizedNetwork", "int8_accuracy",
           "quantize", "quantize_weights"]


@dataclass(frozen=True)
class QuantizedLayer:
    """One dense layer in int8: ``act(scale * (q @ x) + bias)`` (``q`` is ``(n_out, n_in)`` like ``Layer.weight``)."""

    q: np.ndarray  # int8 (n_out, n_in), pruned entries 0
    scale: np.ndarray  # (n_out,) the network's float dtype, > 0
    bias: np.ndarray | None  # (n_out,) masked, the network's float dtype
    keep: np.ndarray  # bool (n_out, n_in): the pruning mask (a kept weight may quantize to 0)
    bias_keep: np.ndarray | None
    activation: str
    input_scale: float | None = None  # static mode: the int8 step of this layer's input

    @property
    def n_in(self) -> int:
        return self.q.shape[1]

    @property
    def n_out(self) -> int:
        return self.q.shape[0]

    def dequantized(self) -> np.ndarray:
        """``q * scale`` in float64 (n_out, n_in)."""
        return self.q.astype(np.float64) * self.scale.astype(np.float64)[:, None]


@dataclass(frozen=True)
class QuantizedNetwork:
    """An int8 network: the layers, the mode and the pruning run it came from."""

    layers: tuple[QuantizedLayer, ...]
    mode: str
    dtype: np.dtype
    method: str
    sparsity: float
    scope: str = "layer"
    pruned_layers: tuple[int, ...] = ()
    calibration: str | None = None  # static mode: "max" or "percentile=<p>"

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)

    @property
    def nnz(self) -> int:
        return sum(int(layer.keep.sum()) for layer in self.layers)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Float64 logits ``(n_batch, n_out)`` of the dequantized network (see the module docstring)."""
        x = _check_input(x, self.widths[0], "reference")
        h = np.asarray(x, np.float64)
        for layer in self.layers:
            if self.mode == "static":
                h = _round_to_grid(h, layer.input_scale)
            h = h @ layer.dequantized().T
            if layer.bias is not None:
                h += layer.bias.astype(np.float64)
            h = ACTIVATIONS[layer.activation](h)
        return h

    def dequantized(self) -> MaskedNetwork:
        """The weight-only dequantized network as a float :class:`~sparsenet.MaskedNetwork` (same
        masks; ``q * scale`` rounded to the network's dtype), e.g. to run a float format on it."""
        layers = tuple(Layer(layer.dequantized().astype(self.dtype), layer.bias, layer.activation)
                       for layer in self.layers)
        masks = Masks(tuple(layer.keep for layer in self.layers), tuple(layer.bias_keep for layer in self.layers))
        return MaskedNetwork(Network(layers), masks, self.method, self.sparsity, self.scope, self.pruned_layers)


def quantize_weights(weight: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q int8, scale)`` of one ``(n_out, n_in)`` weight matrix under its mask (rule in the module docstring)."""
    w = np.where(keep, weight, 0).astype(np.float64)
    peak = np.abs(w).max(axis=1, initial=0.0)
    scale = np.where(peak > 0, peak / QMAX, 1.0).astype(weight.dtype)
    q = np.clip(np.rint(w / scale.astype(np.float64)[:, None]), -QMAX, QMAX).astype(np.int8)
    q[~keep] = 0
    return q, scale


def quantize(masked: MaskedNetwork, mode: str = "weights", calibration_x: np.ndarray | None = None,
             calibration: str | float = "max") -> QuantizedNetwork:
    """Post-training int8 quantization of ``masked`` (see the module docstring).

    Parameters
    ----------
    masked
        The pruned float network (from :func:`sparsenet.prune`).
    mode
        ``"weights"`` (weight-only int8, float activations) or ``"static"`` (int8 activations too).
    calibration_x
        Static mode only: ``(n_samples, n_in)`` training samples, at least
        :data:`MIN_CALIBRATION_SAMPLES` (a few hundred is plenty), no NaN/inf.
    calibration
        Static mode only: ``"max"`` (the scale covers the largest |activation| seen) or a
        percentile in (0, 100], e.g. 99.99 (activations above it saturate at +-127).
    """
    check_choice("quantization mode", mode, MODES)
    if not isinstance(masked, MaskedNetwork):
        raise TypeError(f"quantize needs a MaskedNetwork (from sparsenet.prune), found {type(masked).__name__}")
    net = masked.net
    unsupported = sorted(net.layer_kinds - {"dense"})
    if unsupported:
        raise NotImplementedError(f"int8 quantization covers dense layers only; this network also has {unsupported}")
    layers = []
    for layer, keep, bkeep, b in zip(net.layers, masked.masks.weight, masked.masks.bias, masked.masked_biases()):
        q, scale = quantize_weights(layer.weight, keep)
        layers.append(QuantizedLayer(q, scale, b, keep, bkeep, layer.activation))
    qnet = QuantizedNetwork(tuple(layers), "weights", np.dtype(net.dtype), masked.method, masked.sparsity,
                            masked.scope, tuple(masked.pruned_layers))
    if mode == "weights":
        if calibration_x is not None:
            raise ValueError("calibration_x is for mode='static' (weight-only quantization needs no data); "
                             "pass mode='static' or drop calibration_x")
        return qnet
    return _calibrate(qnet, calibration_x, calibration)


def _calibrate(qnet: QuantizedNetwork, x, calibration) -> QuantizedNetwork:
    """The static-mode network: per-layer input scales, each from the calibration inputs that the
    already-quantized layers before it produce."""
    if x is None:
        raise ValueError(f"mode='static' needs calibration_x: at least {MIN_CALIBRATION_SAMPLES} training samples "
                         f"of shape (n_samples, {qnet.widths[0]}), e.g. dataset.x_train[:500]")
    x = _check_input(x, qnet.widths[0], "calibration_x")
    if x.shape[0] < MIN_CALIBRATION_SAMPLES:
        raise ValueError(f"calibration_x has {x.shape[0]} samples; static quantization needs at least "
                         f"{MIN_CALIBRATION_SAMPLES} (a few hundred training samples, e.g. x_train[:500])")
    if isinstance(calibration, str):
        check_choice("calibration rule", calibration, ("max",))
        rule, percentile = "max", None
    else:
        percentile = float(calibration)
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"calibration percentile must be in (0, 100], found {calibration!r} (or use 'max')")
        rule = f"percentile={percentile:g}"
    h, layers = np.asarray(x, np.float64), []
    for layer in qnet.layers:
        mag = np.abs(h)
        peak = float(mag.max(initial=0.0)) if percentile is None else float(np.percentile(mag, percentile))
        step = peak / QMAX if peak > 0 else 1.0
        layers.append(QuantizedLayer(layer.q, layer.scale, layer.bias, layer.keep, layer.bias_keep, layer.activation,
                                     step))
        h = _round_to_grid(h, step) @ layer.dequantized().T
        if layer.bias is not None:
            h += layer.bias.astype(np.float64)
        h = ACTIVATIONS[layer.activation](h)
    return QuantizedNetwork(tuple(layers), "static", qnet.dtype, qnet.method, qnet.sparsity, qnet.scope,
                            qnet.pruned_layers, rule)


def _round_to_grid(h: np.ndarray, step: float) -> np.ndarray:
    return np.clip(np.rint(h / step), -QMAX, QMAX) * step


def _check_input(x, n_in: int, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array of shape (n_samples, {n_in}), found {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"{what} must have shape (n_samples, {n_in}), found {x.shape}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{what} must hold numbers, found dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(x.size - np.isfinite(x).sum())
        raise ValueError(f"{what} holds {bad} NaN/inf values; clean or drop those samples")
    return x


def int8_accuracy(masked: MaskedNetwork, x_test: np.ndarray, y_test: np.ndarray,
                  calibration_x: np.ndarray | None = None, calibration: str | float = "max",
                  chunk: int = 2000) -> dict[str, float]:
    """Test accuracy of ``masked`` in float and in int8, side by side.

    Returns ``{"float": a, "int8_weights": a_w}`` plus ``"int8_static": a_s`` where
    ``calibration_x`` (training samples) is given. Accuracy is the fraction of ``x_test`` whose
    argmax logit equals ``y_test`` (as bench's accuracy tables); the float network runs the
    ``dense`` format, the int8 ones :meth:`QuantizedNetwork.reference` (which every int8 format
    matches within float32 rounding).
    """
    from .formats import convert

    x_test = _check_input(x_test, masked.net.widths[0], "x_test")
    y_test = np.asarray(y_test)
    if y_test.shape != (x_test.shape[0],):
        raise ValueError(f"y_test must have shape ({x_test.shape[0]},) (one label per x_test row), "
                         f"found {y_test.shape}")
    x_test = x_test.astype(masked.net.dtype, copy=False)
    runs = {"float": convert(masked, "dense"), "int8_weights": quantize(masked).reference}
    if calibration_x is not None:
        runs["int8_static"] = quantize(masked, "static", calibration_x, calibration).reference
    return {name: sum(int((fn(x_test[i:i + chunk]).argmax(axis=1) == y_test[i:i + chunk]).sum())
                      for i in range(0, len(x_test), chunk)) / len(x_test)
            for name, fn in runs.items()}
