"""TensorFlow Lite: the masked network converted by ``tf.lite.TFLiteConverter`` from a Keras model,
run by the LiteRT interpreter (``ai_edge_litert``) with its default XNNPACK delegate.

The LiteRT interpreter, not ``tf.lite.Interpreter``: TensorFlow 2.21 still ships the latter but
deprecates it in favour of LiteRT ("please use the LiteRT interpreter from the ai_edge_litert
package"), and LiteRT is what a Keras user deploys with now. The converter is still TensorFlow's.

Conv networks (MobileNetV2) become a Keras functional model whose input is one NHWC image
``(H, W, C)`` (the format reshapes its flat ``(n, H * W * C)`` input, a free view: a Keras
``Reshape`` inside the graph would add SHAPE, STRIDED_SLICE, PACK and a dynamic RESHAPE in front
of the first convolution, which a deployed model does not have), then per layer
``ZeroPadding2D`` with the layer's exact
(top, bottom), (left, right) pads and a ``padding="valid"`` ``Conv2D`` / ``DepthwiseConv2D``
(TFLite: PAD + CONV_2D / DEPTHWISE_CONV_2D; XNNPACK folds the PAD into the convolution),
``GlobalAveragePooling2D`` (MEAN), ``Flatten`` before a ``Dense`` that reads a spatial output,
and ``Add`` for ``residual_from``, after the activation, as in :mod:`sparsenet.layers.conv2d`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...cache import cache_root, entry_lock
from ...files import atomic_path
from ...layers import LAYER_KINDS
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
                       calibration_x: np.ndarray | None = None, sparse: bool = False) -> bytes:
    """The TFLite flatbuffer of ``masked``: the Keras model of :func:`keras_model` holding the
    masked weights (zeros in place), output softmax left out (logits, as every format returns),
    converted by ``tf.lite.TFLiteConverter.from_keras_model``; the batch dimension stays dynamic.
    Takes about a second for an MLP on a 2-core machine (full int8: 2-3 s; MobileNetV2 several),
    plus TensorFlow's import.

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
    sparse
        float32 only: ``optimizations=[tf.lite.Optimize.EXPERIMENTAL_SPARSITY]``, weight tensors
        sparse enough stored sparse, each behind a DENSIFY op
        (:mod:`sparsenet.formats.engines.tflite_sparse` says what runs them).

    Raises
    ------
    ImportError
        TensorFlow is not installed.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None (float32) or 'int8' (full-integer), found {quantize!r}")
    if sparse and quantize is not None:
        raise ValueError("sparse=True is for the float32 conversion (quantize=None)")
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

    model = keras_model(masked, keras)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
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


def keras_model(masked: MaskedNetwork, keras):
    """The Keras model of ``masked`` (masked weights, zeros in place; output softmax left out): a
    Sequential of Dense layers on ``(n, n_in)`` for an MLP, a functional model on NHWC images
    ``(n, H, W, C)`` for a network with spatial layers (the module docstring); logits
    ``(n, n_out)`` out either way."""
    def gelu_tanh(h):
        return keras.activations.gelu(h, approximate=True)

    acts = [gelu_tanh if a == "gelu_tanh" else _KERAS_ACTIVATIONS[a] for a in logit_activations(masked)]
    params = list(zip(masked.net.layers, acts, masked.masked_weights(), masked.masked_biases()))
    if masked.net.layer_kinds == {"dense"}:
        dense = [(keras.layers.Dense(layer.n_out, activation=fn, use_bias=b is not None),
                  [w.T.copy()] if b is None else [w.T.copy(), b]) for layer, fn, w, b in params]
        model = keras.Sequential([keras.Input((masked.net.widths[0],))] + [d for d, _ in dense])
        for d, weights in dense:
            d.set_weights(weights)
        return model
    kl = keras.layers
    inp = h = keras.Input(masked.net.input_shape)  # (H, W, C): the caller's reshape of flat x is free
    outputs = {-1: h}
    for i, (layer, fn, w, b) in enumerate(params):
        if layer.kind == "global_avg_pool":
            h = kl.GlobalAveragePooling2D()(h)
        else:
            if layer.kind == "dense":
                if len(h.shape) > 2:
                    h = kl.Flatten()(h)  # C order of NHWC: the flattening every format uses
                op, kernel = kl.Dense(layer.n_out, activation=fn, use_bias=b is not None), w.T
            else:
                top, bottom, left, right = layer.pads
                if any(layer.pads):
                    h = kl.ZeroPadding2D(((top, bottom), (left, right)))(h)
                if layer.kind == "conv2d":  # (C_out, kh, kw, C_in) -> Keras (kh, kw, C_in, C_out)
                    op = kl.Conv2D(layer.n_units, layer.kernel_hw, strides=layer.stride, padding="valid",
                                  activation=fn, use_bias=b is not None)
                    kernel = w.transpose(1, 2, 3, 0)
                elif layer.kind == "depthwise_conv2d":  # (C, kh, kw) -> Keras (kh, kw, C, 1)
                    op = kl.DepthwiseConv2D(layer.kernel_hw, strides=layer.stride, padding="valid",
                                           activation=fn, use_bias=b is not None)
                    kernel = w.transpose(1, 2, 0)[..., None]
                else:
                    raise NotImplementedError(f"layer {i}: no Keras layer for kind {layer.kind!r}")
            h = op(h)
            op.set_weights([np.ascontiguousarray(kernel)] + ([] if b is None else [b]))
        res = getattr(layer, "residual_from", None)
        if res is not None:
            h = kl.Add()([h, outputs[res]])
        outputs[i] = h
    if len(h.shape) > 2:
        h = kl.Flatten()(h)
    return keras.Model(inp, h)


CACHE_FOLDER = "tflite"


def conversion_key(masked: MaskedNetwork, label: str, extra: bytes = b"") -> str:
    """The cache key of a conversion of ``masked``: ``label`` (which conversion), the TensorFlow
    version, every layer's kind, geometry and activation, the masked weights and biases, and
    ``extra`` (e.g. the calibration samples)."""
    import tensorflow as tf

    h = hashlib.sha256(f"{label}|tf {tf.__version__}|".encode())
    for layer, w, b in zip(masked.net.layers, masked.masked_weights(), masked.masked_biases()):
        geometry = [getattr(layer, f, None) for f in ("input_hw", "stride", "pads", "residual_from")]
        h.update(f"{layer.kind}|{layer.activation}|{geometry}|{w.shape}|{w.dtype}|".encode())
        h.update(np.ascontiguousarray(w).tobytes())
        h.update(b"-" if b is None else np.ascontiguousarray(b).tobytes())
    h.update(extra)
    return h.hexdigest()[:24]


def cached_conversion(masked: MaskedNetwork, label: str, convert, extra: bytes = b"", cache_dir=None) -> bytes:
    """``convert()`` (a flatbuffer of ``masked``), run once per :func:`conversion_key` and then read
    from ``<cache root>/tflite/<key>.tflite``: a MobileNetV2 takes 12-17 s to convert on 2 busy
    cores, and the benchmark suite builds each network once per batch size and thread count."""
    try:
        import tensorflow  # noqa: F401  (the key names its version)
    except ImportError:
        raise ImportError("converting to TFLite needs TensorFlow: pip install 'sparsenet[train]'") from None
    path = cache_root(cache_dir) / CACHE_FOLDER / f"{conversion_key(masked, label, extra)}.tflite"
    with entry_lock(path, f"a TFLite conversion ({label})"):
        if path.is_file():
            return path.read_bytes()
        model = convert()
        with atomic_path(path) as tmp:
            tmp.write_bytes(model)
        return model


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
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    activations: ClassVar[frozenset[str]] = frozenset(
        {"gelu", "gelu_tanh", "linear", "relu", "relu6", "sigmoid", "softmax", "tanh"})
    summary: ClassVar[str] = ("TensorFlow Lite float32: LiteRT interpreter (ai-edge-litert) with XNNPACK, "
                              "converted by tf.lite.TFLiteConverter (zeros kept)")
    style: ClassVar[tuple[str, str]] = ("tab:gray", "*")
    sparse_tensors: ClassVar[bool] = False  # converted with EXPERIMENTAL_SPARSITY (tflite_sparse)
    interpreter: Any
    model: bytes
    input_index: int
    output_index: int
    n_in: int
    threads: int
    kept: int
    sample_shape: tuple[int, ...] = ()  # the flatbuffer's input per sample: (n_in,) or (H, W, C)
    batch: int = 0

    @classmethod
    def build(cls, masked: MaskedNetwork) -> TFLiteForward:
        threads = cls.check_buildable(masked)
        model = cached_conversion(masked, cls.name, lambda: tflite_model_bytes(masked, sparse=cls.sparse_tensors))
        return cls.from_bytes(model, masked.net.widths[0], threads, kept_weights(masked))

    @classmethod
    def from_bytes(cls, model: bytes, n_in: int, threads: int, kept: int) -> TFLiteForward:
        """An interpreter on a flatbuffer from :func:`tflite_model_bytes` (built once, run with several
        thread counts)."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=model, num_threads=threads)
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        sample_shape = tuple(int(d) for d in inp["shape"][1:])
        if int(np.prod(sample_shape)) != n_in:
            raise ValueError(f"the flatbuffer's input is {sample_shape} per sample, {int(np.prod(sample_shape))} "
                             f"values; expected n_in = {n_in}")
        return cls(interpreter, model, inp["index"], out["index"], n_in, threads, kept, sample_shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        check_batch(x, n_in=self.n_in, dtype=np.dtype(np.float32))
        it = self.interpreter
        if x.shape[0] != self.batch:
            it.resize_tensor_input(self.input_index, [x.shape[0], *self.sample_shape])
            it.allocate_tensors()
            self.batch = x.shape[0]
        it.set_tensor(self.input_index, x.reshape(x.shape[0], *self.sample_shape))
        it.invoke()
        return it.get_tensor(self.output_index)

    @property
    def nnz(self) -> int:
        return self.kept

    @property
    def in_memory_bytes(self) -> int:
        return len(self.model)
