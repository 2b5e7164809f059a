"""``tflite_int8``: the reference path users know, TensorFlow Lite's full-integer post-training
quantization of the pruned Keras model, run by the LiteRT interpreter with XNNPACK.

Converter: ``tf.lite.TFLiteConverter`` of the installed TensorFlow (2.21) with a representative
dataset (:func:`sparsenet.formats.engines.tflite.tflite_model_bytes`, ``quantize="int8"``):
int8 weights (symmetric, one scale per output unit), int8 activations (one scale and zero point
per tensor, calibrated on the representative dataset), int32 biases, **float32 in and out** (the
graph is QUANTIZE, one int8 FULLY_CONNECTED per layer with ReLU folded into its clamp,
DEQUANTIZE). Interpreter: ``ai_edge_litert.interpreter.Interpreter`` (LiteRT) with its default
XNNPACK delegate, ``num_threads`` pinned to numba's thread count at build.

Calibration: :meth:`TFLiteInt8Forward.build` takes ``calibration_x``, a few hundred training
samples (:data:`CALIBRATION_SAMPLES`); what the accuracy records must pass. ``convert(masked,
"tflite_int8")`` has no data and calibrates on :data:`CALIBRATION_SAMPLES` seeded uniform [0, 1)
inputs instead (:func:`stand_in_calibration`): the same graph and the same latency, fit for
timing and the correctness gate, not for accuracy (the activation ranges are the stand-in's).

Correctness: :meth:`TFLiteInt8Forward.reference` is a float64 simulation of TFLite's int8
arithmetic on the flatbuffer's own tensors and quantization parameters (read through the
builtin-kernel interpreter at build): quantize the input, exact integer dot products, requantize
with round-to-nearest, clamp, dequantize. TFLite's kernels round the requantization in fixed
point (XNNPACK and the builtin kernels differ from each other by one step too), so outputs agree
within :data:`TOLERANCE_STEPS` output quantization steps (:func:`assert_int8_close`), not
float32 rounding: that is this format's documented tolerance.

Cost: the conversion takes 2-3 s plus TensorFlow's import (about 10 s on a shared 2-core
machine), so the converted flatbuffer is cached on disk per masked network and calibration set
(``<cache root>/tflite/<key>.tflite``, :mod:`sparsenet.cache`; the key hashes the weights, masks,
biases, activations, the calibration samples and the TensorFlow version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from ...model import MaskedNetwork
from ...validation import check_batch
from .base import kept_weights
from .tflite import TFLiteForward, cached_conversion, tflite_model_bytes

CALIBRATION_SAMPLES = 300  # the representative dataset: "a few hundred" (TFLite's guide: ~100-500)
TOLERANCE_STEPS = 2  # |tflite - reference| <= steps * output scale (+ float32 rounding); measured: <= 1

__all__ = ["CALIBRATION_SAMPLES", "TOLERANCE_STEPS", "Int8FullyConnected", "TFLiteInt8Forward",
           "assert_int8_close", "stand_in_calibration", "tflite_int8_bytes"]


class Int8FullyConnected(NamedTuple):
    """One int8 FULLY_CONNECTED op as the flatbuffer holds it (TFLite's quantization spec)."""

    weight: np.ndarray  # int8 (n_out, n_in), zero point 0
    weight_scale: np.ndarray  # float64 (n_out,) or (1,)
    bias: np.ndarray | None  # int32 (n_out,), scale input_scale * weight_scale, zero point 0
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    relu: bool


def stand_in_calibration(n_in: int, n_samples: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """Seeded uniform [0, 1) samples: the calibration of a build without training samples."""
    return np.random.default_rng(seed).random((n_samples, n_in), dtype=np.float32)


def _check_calibration(x, n_in: int) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"calibration_x must be a numpy array of shape (n_samples, {n_in}), found {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n_in or x.shape[0] < 1:
        raise ValueError(f"calibration_x must have shape (n_samples, {n_in}) with n_samples >= 1 (a few hundred "
                         f"training samples), found {x.shape}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"calibration_x must hold numbers, found dtype {x.dtype}")
    x = np.ascontiguousarray(x, np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"calibration_x holds {int(x.size - np.isfinite(x).sum())} NaN/inf values; "
                         "clean or drop those samples")
    return x


def tflite_int8_bytes(masked: MaskedNetwork, calibration_x: np.ndarray, cache_dir=None) -> bytes:
    """The full-integer TFLite flatbuffer of ``masked`` calibrated on ``calibration_x``, converted
    once per (network, calibration set) and then read from the cache (see the module docstring)."""
    calibration_x = _check_calibration(calibration_x, masked.net.widths[0])
    extra = f"{calibration_x.shape}".encode() + calibration_x.tobytes()
    return cached_conversion(masked, "tflite-int8", lambda: tflite_model_bytes(masked, "int8", calibration_x),
                             extra, cache_dir)


def _int8_ops(model: bytes) -> tuple[Int8FullyConnected, ...]:
    """The FULLY_CONNECTED ops of a QUANTIZE, FULLY_CONNECTED..., DEQUANTIZE flatbuffer, read
    through the builtin-kernel interpreter (no delegate: the constant tensors stay readable)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ops = it._get_ops_details()  # LiteRT's op list (private, but the only reader of the graph it ships)
    names = [op["op_name"] for op in ops]
    if len(names) < 3 or names[0] != "QUANTIZE" or names[-1] != "DEQUANTIZE" or \
            set(names[1:-1]) != {"FULLY_CONNECTED"}:
        raise NotImplementedError(f"the TFLite int8 converter produced ops {names}; tflite_int8 reads "
                                  "QUANTIZE, FULLY_CONNECTED..., DEQUANTIZE (float in and out)")
    details = {d["index"]: d for d in it.get_tensor_details()}

    def quant(index):
        q = details[index]["quantization_parameters"]
        return np.asarray(q["scales"], np.float64), np.asarray(q["zero_points"], np.int64)

    layers = []
    for op in ops[1:-1]:
        x_idx, w_idx, b_idx = (list(op["inputs"]) + [-1])[:3]
        (s_x,), (z_x,) = quant(x_idx)
        (s_y,), (z_y,) = quant(op["outputs"][0])
        s_w, z_w = quant(w_idx)
        if (z_w != 0).any():
            raise NotImplementedError("int8 weights with a non-zero zero point (TFLite's spec is symmetric)")
        weight = it.get_tensor(w_idx)
        bias = None if b_idx < 0 else it.get_tensor(b_idx).astype(np.int64)
        # ReLU is folded into the output clamp: its lower bound is the zero point of 0.0
        layers.append(Int8FullyConnected(weight, s_w, bias, float(s_x), int(z_x), float(s_y), int(z_y), False))
    return tuple(layers)


def simulate(layers: tuple[Int8FullyConnected, ...], relu: tuple[bool, ...], x: np.ndarray) -> np.ndarray:
    """Float64 logits of TFLite's int8 arithmetic (the module docstring's reference)."""
    first = layers[0]
    h = np.clip(np.rint(x.astype(np.float64) / first.input_scale) + first.input_zero_point, -128, 127)
    for layer, is_relu in zip(layers, relu):
        acc = (h - layer.input_zero_point) @ layer.weight.astype(np.float64).T  # exact: |acc| < 2**53
        if layer.bias is not None:
            acc += layer.bias
        y = np.rint(acc * (layer.input_scale * layer.weight_scale / layer.output_scale)) + layer.output_zero_point
        h = np.clip(y, layer.output_zero_point if is_relu else -128, 127)
    last = layers[-1]
    return (h - last.output_zero_point) * last.output_scale


def assert_int8_close(actual: np.ndarray, expected: np.ndarray, output_scale: float,
                      steps: int = TOLERANCE_STEPS) -> None:
    """AssertionError unless shapes and dtypes match and every value is within ``steps`` output
    quantization steps (plus float32 rounding) of ``expected``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype}, expected {expected.dtype}"
    bound = steps * output_scale * (1 + 1e-5) + 1e-6 * np.abs(expected)
    err = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert err.size == 0 or (err <= bound).all(), (
        f"tflite int8 output off by {err[worst]:.4g} at {worst}, more than {steps} output steps "
        f"({steps} x {output_scale:.4g})")


@dataclass(eq=False)
class TFLiteInt8Forward(TFLiteForward):
    """The LiteRT interpreter (XNNPACK) on the full-integer flatbuffer; float32 in, float32 logits
    out. ``in_memory_bytes`` is the flatbuffer's size (int8 weights, int32 biases, the graph)."""

    name: ClassVar[str] = "tflite_int8"
    quantized: ClassVar[bool] = True
    # int8 x int8 products summed in int32 (the other int8 formats widen their weights to float)
    integer_math: ClassVar[bool] = True
    saved_as: ClassVar[str] = "tflite_int8"
    # MLPs only: the reference (simulate) and the graph reader (_int8_ops) know FULLY_CONNECTED only
    layer_kinds: ClassVar[frozenset[str]] = frozenset({"dense"})
    activations: ClassVar[frozenset[str]] = frozenset({"relu", "linear", "softmax"})
    summary: ClassVar[str] = ("TensorFlow Lite full-integer int8 (post-training, representative dataset; float "
                              "in/out): LiteRT interpreter with XNNPACK, converted by tf.lite.TFLiteConverter")
    style: ClassVar[tuple[str, str]] = ("sienna", "8")
    tolerance_steps: ClassVar[int] = TOLERANCE_STEPS
    ops: tuple[Int8FullyConnected, ...] = ()
    relu: tuple[bool, ...] = ()
    calibration: str = "stand-in"

    @classmethod
    def build(cls, masked: MaskedNetwork, calibration_x: np.ndarray | None = None,
              cache_dir=None) -> TFLiteInt8Forward:
        """Convert (or read from the cache) and load. ``calibration_x``: training samples for the
        representative dataset; None calibrates on :func:`stand_in_calibration` (see the module
        docstring: fine for timing, not for accuracy)."""
        threads = cls.check_buildable(masked)
        acts = [layer.activation for layer in masked.net.layers]
        bad = [(i, a) for i, a in enumerate(acts) if a not in cls.activations or (a == "softmax" and i < len(acts) - 1)]
        if bad:
            raise NotImplementedError(f"format {cls.name!r} runs relu and linear layers (softmax on the output); "
                                      f"layer {bad[0][0]} is {bad[0][1]!r}")
        n_in = masked.net.widths[0]
        source = "training samples"
        if calibration_x is None:
            calibration_x, source = stand_in_calibration(n_in), "stand-in"
        model = tflite_int8_bytes(masked, calibration_x, cache_dir)
        forward = cls.from_bytes(model, n_in, threads, kept_weights(masked))
        forward.ops = _int8_ops(model)
        forward.relu = tuple(a == "relu" for a in acts)
        forward.calibration = f"{source} ({len(calibration_x)})"
        return forward

    def reference(self, x: np.ndarray) -> np.ndarray:
        """What this format's output is checked against (:func:`assert_int8_close`): TFLite's int8
        arithmetic simulated in float64 on the flatbuffer's tensors, in float32."""
        check_batch(x, n_in=self.n_in, dtype=np.dtype(np.float32))
        return simulate(self.ops, self.relu, x).astype(np.float32)

    @property
    def output_scale(self) -> float:
        return self.ops[-1].output_scale

    def assert_close(self, actual: np.ndarray, expected: np.ndarray) -> None:
        """The correctness gate with this format's int8 tolerance (:data:`TOLERANCE_STEPS` output steps)."""
        assert_int8_close(actual, expected, self.output_scale, self.tolerance_steps)
