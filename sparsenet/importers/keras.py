"""Keras models (``.keras``, legacy ``.h5``) as sparsenet networks.

Read with ``keras.models.load_model(path, compile=False)`` (safe mode: no Lambda code runs), then
walked layer by layer: a Sequential model, or a functional one whose layers form a single chain.
Dense layers become :class:`sparsenet.Layer` (the kernel ``(n_in, n_out)`` transposed once, as in
:func:`sparsenet.io.from_keras`); an Activation/ReLU/Softmax layer sets the activation of the
Dense layer before it; InputLayer, Flatten, Dropout and Reshape to a vector are what they are at
inference (nothing, or a reshape of the input). Anything else is refused by name. A model with
convolutions, batch norm, residual adds or pooling (MobileNetV2) is read by :mod:`.keras_conv`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ._stack import Stack
from .keras_conv import CONV_TYPES, read_conv

# Keras' own activation names; "gelu" is keras.activations.gelu, whose default is the exact erf form
KERAS_ACTIVATIONS = {"relu": "relu", "linear": "linear", "softmax": "softmax", "tanh": "tanh",
                     "sigmoid": "sigmoid", "gelu": "gelu"}
PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianDropout", "AlphaDropout", "GaussianNoise")


def _keras():
    try:
        import keras
    except ImportError:
        raise ImportError("reading Keras models needs TensorFlow/Keras: pip install 'sparsenet[train]'") from None
    return keras


def load(path: str | Path):
    """``(model, stack, input_shape)`` for the Keras model file at ``path``."""
    keras = _keras()
    path = Path(path)
    _check_container(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # zip, HDF5, JSON and deserialisation errors all mean "not a model we can read"
        raise FileFormatError(path, f"cannot be read as a Keras model ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    stack = Stack(str(path))
    input_shape = tuple(model.inputs[0].shape[1:]) if len(getattr(model, "inputs", None) or []) == 1 else None
    if input_shape is None or any(d is None for d in input_shape):
        raise FileFormatError(path, f"the model has {len(getattr(model, 'inputs', None) or [])} inputs of shape "
                                    f"{[tuple(t.shape) for t in getattr(model, 'inputs', None) or []]}; sparsenet "
                                    "imports a model with one input of fixed shape (batch, features...)")
    if len(model.outputs) != 1:
        raise FileFormatError(path, f"the model has {len(model.outputs)} outputs; sparsenet imports one")
    if any(type(layer).__name__ in CONV_TYPES for layer in model.layers):
        return model, read_conv(model, str(path), input_shape, keras), input_shape
    shape = input_shape
    previous = _producer(model.inputs[0])  # the layer whose output the next layer must take
    for layer in model.layers:
        kind = type(layer).__name__
        name = layer.name
        if kind == "InputLayer":
            continue
        inputs = _inputs(layer)
        if len(inputs) != 1 or _producer(inputs[0]) is not previous:
            raise stack.refuse(name, kind, "the model is not a single chain of layers: this layer's input "
                                           "is not the previous layer's output")
        previous = layer
        shape = _layer(stack, layer, kind, name, shape, keras)
    if _producer(model.outputs[0]) is not previous:
        raise FileFormatError(path, "the model's output is not its last layer's output")
    return model, stack, input_shape


def _check_container(path: Path) -> None:
    """A named error before Keras' own (which calls a truncated .keras file "not found")."""
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise FileFormatError(path, "is not a .keras zip archive (truncated, or another kind of file)")
    if path.suffix.lower() in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                raise FileFormatError(path, "is not an HDF5 file (a legacy Keras .h5 model)")


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def _inputs(layer) -> list:
    try:
        x = layer.input
    except (AttributeError, ValueError):  # a layer used more than once has no single input
        return []
    return list(x) if isinstance(x, list | tuple) else [x]


def _layer(stack: Stack, layer, kind: str, name: str, shape: tuple, keras) -> tuple:
    """Add what ``layer`` computes to ``stack``; returns the per-sample shape after it."""
    if kind == "Dense":
        if len(shape) != 1:
            raise stack.refuse(name, kind, f"applied to a rank-{len(shape)} input of shape {shape}; add a "
                                           "Flatten before it")
        kernel, *rest = layer.get_weights()
        stack.linear(name, kind, np.asarray(kernel).T, rest[0] if layer.use_bias else None)
        stack.activation(name, kind, _activation(stack, layer.activation, name, kind, keras))
        return (int(kernel.shape[1]),)
    if kind == "Activation":
        stack.activation(name, kind, _activation(stack, layer.activation, name, kind, keras))
        return shape
    if kind == "ReLU":
        if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            raise stack.refuse(name, kind, f"max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                                           f"threshold={layer.threshold}; only the plain ReLU is")
        stack.activation(name, kind, "relu")
        return shape
    if kind == "Softmax":
        if layer.axis not in (-1, len(shape)):
            raise stack.refuse(name, kind, f"softmax over axis {layer.axis}; only over the features (axis -1)")
        stack.activation(name, kind, "softmax")
        return shape
    if kind in PASS_THROUGH:
        return shape
    if kind in ("Flatten", "Reshape"):
        target = (int(np.prod(shape)),) if kind == "Flatten" else tuple(layer.target_shape)
        if len(target) != 1:
            raise stack.refuse(name, kind, f"reshapes to {target}; only to a flat vector")
        if stack.weights and len(shape) != 1:  # cannot happen: Dense only runs on vectors here
            raise stack.refuse(name, kind, "a reshape between fully connected layers")
        return (int(np.prod(shape)),)
    raise stack.refuse(name, kind)


def _activation(stack: Stack, fn, name: str, kind: str, keras) -> str:
    try:
        key = keras.activations.serialize(fn)
    except Exception:  # a custom callable
        key = None
    if isinstance(key, dict):  # a registered custom or parametrised activation
        key = None
    if key not in KERAS_ACTIVATIONS:
        raise stack.refuse(name, kind, f"activation {key or getattr(fn, '__name__', fn)!r}; supported "
                                       f"activations: {sorted(KERAS_ACTIVATIONS)}")
    return KERAS_ACTIVATIONS[key]


def reference(model):
    """The framework's own forward pass, for the import check: float32 batch -> numpy outputs."""
    keras = _keras()
    return lambda x: np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float32)
