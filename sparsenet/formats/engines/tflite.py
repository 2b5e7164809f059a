"""TensorFlow Lite: the masked network converted by ``tf.lite.TFLiteConverter`` from a Keras model,
run by the LiteRT interpreter (``ai_edge_litert``) with its default XNNPACK delegate.

The LiteRT interpreter, not ``tf.lite.Interpreter``: TensorFlow 2.21 still ships the latter but
deprecates it in favour of LiteRT ("please use the LiteRT interpreter from the ai_edge_litert
package"), and LiteRT is what a Keras user deploys with now. The converter is still TensorFlow's.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...model import MaskedNetwork
from ...validation import check_batch
from .base import EngineDefaults, kept_weights, logit_activations

# Keras activation per sparsenet activation; gelu_tanh has no Keras name (a callable below).
_KERAS_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu",
                      "linear": None}


@contextlib.contextmanager
def _captured_output():
    """Run the block with its output captured: Python's ``sys.stdout``/``sys.stderr`` (the Keras
    export's prints) and the process's file descriptors 1 and 2 (TensorFlow's C++ logging) all go
    to one temporary file. If the block raises, what it printed is added to the exception's notes;
    otherwise it is dropped. Each conversion prints a page of "Saved artifact ... TensorSpec" lines
    and converter warnings, which drowned the report's progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, open(sink.fileno(), "w", closefd=False) as text:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        except BaseException as e:
            text.flush()
            sink.seek(0)
            said = sink.read().decode(errors="replace").strip()
            if said:
                e.add_note("TFLite converter output:\n" + said[-4000:])
            raise
        finally:
            text.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def tflite_model_bytes(masked: MaskedNetwork, quantize: str | None = None,
                       calibration_x: np.ndarray | None = None) -> bytes:
    """The TFLite flatbuffer of ``masked``: a Keras Sequential of Dense layers holding the masked
    weights (zeros in place), output softmax left out (logits, as every format returns), converted
    by ``tf.lite.TFLiteConverter.from_keras_model``; the batch dimension stays dynamic. Takes
    about a second on a 2-core machine (full int8: 2-3 s), plus TensorFlow's import.

    Parameters
    ----------
    masked
        A float32 pruned network.
    quantize
        None: float32 weights and arithmetic, no optimization. ``"int8"``: TFLite's full-integer
        post-training quantization (``optimizations=[tf.lite.Optimize.DEFAULT]``, a representative
        dataset, ``supported_ops=[TFLITE_BUILTINS_INT8]``): int8 weights (symmetric, one scale per
        output unit), int8 activations (asymmetric, one scale and zero point per tensor, from the
        representative dataset), int32 biases; float32 in and out (a QUANTIZE op first, a
        DEQUANTIZE op last), so it is called like the float model.
    calibration_x
        ``quantize="int8"`` only: the representative dataset, ``(n_samples, n_in)`` float32
        training samples (a few hundred), fed to the converter one sample at a time.

    Raises
    ------
    ImportError
        TensorFlow is not installed.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None (float32) or 'int8' (full-integer), found {quantize!r}")
    if quantize == "int8" and calibration_x is None:
        raise ValueError("quantize='int8' needs calibration_x: a few hundred training samples of shape "
                         f"(n_samples, {masked.net.widths[0]}) for the converter's representative dataset")
    if quantize is None and calibration_x is not None:
        raise ValueError("calibration_x is for quantize='int8'; the float32 conversion needs no data")
    try:
        with _captured_output():  # TensorFlow's first import logs its CPU features and oneDNN to fd 2
            import keras
            import tensorflow as tf
    except ImportError:
        raise ImportError("converting to TFLite needs TensorFlow: pip install 'sparsenet[train]'") from None

    def gelu_tanh(h):
        return keras.activations.gelu(h, approximate=True)

    dense = []
    for layer, act, w, b in zip(masked.net.layers, logit_activations(masked), masked.masked_weights(),
                                masked.masked_biases()):
        fn = gelu_tanh if act == "gelu_tanh" else _KERAS_ACTIVATIONS[act]
        dense.append((keras.layers.Dense(layer.n_out, activation=fn, use_bias=b is not None),
                      [w.T.copy()] if b is None else [w.T.copy(), b]))
    model = keras.Sequential([keras.Input((masked.net.widths[0],))] + [d for d, _ in dense])
    for d, weights in dense:
        d.set_weights(weights)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "int8":
        samples = np.ascontiguousarray(calibration_x, np.float32)

        def representative():
            for i in range(len(samples)):
                yield [samples[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    with _captured_output():
        return converter.convert()


@dataclass(eq=False)
class TFLiteForward(EngineDefaults):
    """The LiteRT interpreter on the converted flatbuffer, ``num_threads`` = numba's thread count at
    build time. A call with a new batch size resizes the input and reallocates the tensors (once per
    batch size change, as a deployment does); not thread-safe. ``in_memory_bytes`` is the
    flatbuffer's size; XNNPACK's packed copy of the weights is not visible and not counted."""

    name: ClassVar[str] = "tflite"
    engine: ClassVar[str] = "ai-edge-litert"
    requires: ClassVar[tuple[str, ...]] = ("ai_edge_litert", "tensorflow")
    pip: ClassVar[str] = "pip install ai-edge-litert tensorflow-cpu"
    activations: ClassVar[frozenset[str]] = frozenset(
        {"gelu", "gelu_tanh", "linear", "relu", "relu6", "sigmoid", "softmax", "tanh"})
    summary: ClassVar[str] = ("TensorFlow Lite float32: LiteRT interpreter (ai-edge-litert) with XNNPACK, "
                              "converted by tf.lite.TFLiteConverter (zeros kept)")
    style: ClassVar[tuple[str, str]] = ("tab:gray", "*")
    interpreter: Any
    model: bytes
    input_index: int
    output_index: int
    n_in: int
    threads: int
    kept: int
    batch: int = 0

    @classmethod
    def build(cls, masked: MaskedNetwork) -> TFLiteForward:
        threads = cls.check_buildable(masked)
        return cls.from_bytes(tflite_model_bytes(masked), masked.net.widths[0], threads, kept_weights(masked))

    @classmethod
    def from_bytes(cls, model: bytes, n_in: int, threads: int, kept: int) -> TFLiteForward:
        """An interpreter on a flatbuffer from :func:`tflite_model_bytes` (built once, run with several
        thread counts)."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=model, num_threads=threads)
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        return cls(interpreter, model, inp["index"], out["index"], n_in, threads, kept)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        check_batch(x, n_in=self.n_in, dtype=np.dtype(np.float32))
        it = self.interpreter
        if x.shape[0] != self.batch:
            it.resize_tensor_input(self.input_index, [x.shape[0], self.n_in])
            it.allocate_tensors()
            self.batch = x.shape[0]
        it.set_tensor(self.input_index, x)
        it.invoke()
        return it.get_tensor(self.output_index)

    @property
    def nnz(self) -> int:
        return self.kept

    @property
    def in_memory_bytes(self) -> int:
        return len(self.model)
