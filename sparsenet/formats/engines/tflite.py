"""TensorFlow Lite: the masked network converted by ``tf.lite.TFLiteConverter`` from a Keras model,
run by the LiteRT interpreter (``ai_edge_litert``) with its default XNNPACK delegate.

The LiteRT interpreter, not ``tf.lite.Interpreter``: TensorFlow 2.21 still ships the latter but
deprecates it in favour of LiteRT ("please use the LiteRT interpreter from the ai_edge_litert
package"), and LiteRT is what a Keras user deploys with now. The converter is still TensorFlow's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...model import MaskedNetwork
from ...validation import check_batch
from .base import EngineDefaults, kept_weights, logit_activations

# Keras activation per sparsenet activation; gelu_tanh has no Keras name (a callable below).
_KERAS_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu",
                      "linear": None}


def tflite_model_bytes(masked: MaskedNetwork, quantize: str | None = None) -> bytes:
    """The TFLite flatbuffer of ``masked``: a Keras Sequential of Dense layers holding the masked
    weights (zeros in place), output softmax left out (logits, as every format returns), converted
    by ``tf.lite.TFLiteConverter.from_keras_model`` with no optimization; the batch dimension
    stays dynamic. Takes about a second on a 2-core machine, plus TensorFlow's import.

    Parameters
    ----------
    masked
        A float32 pruned network.
    quantize
        None: float32 weights and arithmetic. Quantized conversion (e.g. full int8 with a
        representative dataset) is not built yet and raises NotImplementedError.

    Raises
    ------
    ImportError
        TensorFlow is not installed.
    """
    if quantize is not None:
        raise NotImplementedError(f"quantize={quantize!r}: only float32 conversion (quantize=None) is built")
    try:
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
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


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
