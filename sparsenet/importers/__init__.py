"""Bring your own model: :func:`load_model` reads a Keras or ONNX file into a checked :class:`ImportedModel`.

What can be imported is a single chain of fully connected layers, any widths, with or without
biases, each followed by one of the activations relu, linear, tanh, sigmoid, gelu (the exact
erf form; the tanh approximation as ``gelu_tanh``) or, on the output layer, softmax; layers
that only reshape the input (Flatten, Reshape to a vector) or do nothing at inference (InputLayer,
Dropout, Identity) are taken as such. Anything else is refused with
:class:`UnsupportedModelError` naming the layer, its type and what is supported.

Every import is checked: the network's outputs on random inputs must equal the framework's own
(Keras itself; for ONNX the ``onnx`` package's pure-Python reference evaluator) within
:mod:`sparsenet.testing`'s float32 tolerance, else :class:`ImportCheckError` says by how much.
A network whose output layer is softmax returns logits in sparsenet (every format does); the
check applies the softmax before comparing.

Extras: Keras files need TensorFlow/Keras (``pip install 'sparsenet[train]'``), ONNX files the
``onnx`` package (``pip install 'sparsenet[onnx]'``); ``import sparsenet`` needs neither.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..activations import softmax
from ..errors import FileFormatError
from ..model import Network
from ._stack import ImportCheckError, Stack, UnsupportedModelError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
ONNX_SUFFIXES = (".onnx",)
CHECK_SAMPLES = 64


@dataclass(frozen=True)
class ImportedModel:
    """A model read from another framework, and what a report says about it.

    ``network``: the :class:`sparsenet.Network`; ``source``: the file it came from; ``framework``:
    ``"keras"`` or ``"onnx"``; ``input_shape``: one sample's shape in that framework, e.g. ``(28, 28)``
    before a Flatten (sparsenet takes ``x.reshape(len(x), -1)``, C order, as Flatten does);
    ``n_classes``: the output width; ``layer_names``: per sparsenet layer, the framework layers
    (or ONNX nodes) it was built from; ``max_abs_error``: the import check's largest difference
    from the framework's outputs.
    """

    network: Network
    source: str
    framework: str
    input_shape: tuple[int, ...]
    n_classes: int
    layer_names: tuple[tuple[str, ...], ...]
    max_abs_error: float

    @property
    def n_in(self) -> int:
        return self.network.widths[0]


def load_model(path: str | os.PathLike, check: bool = True, seed: int = 0) -> ImportedModel:
    """Read a Keras (``.keras``, ``.h5``) or ONNX (``.onnx``) model file as a sparsenet network.

    Parameters
    ----------
    path
        The model file; the suffix picks the reader.
    check
        Compare the imported network's outputs with the framework's on ``CHECK_SAMPLES`` random
        standard-normal inputs (``seed``) and refuse the import when they differ.

    Returns
    -------
    ImportedModel

    Raises
    ------
    FileFormatError
        The file is missing, not a model, or truncated; its subclass :class:`UnsupportedModelError`
        when it holds a layer sparsenet cannot run (named), :class:`ImportCheckError` when the
        outputs differ. All are ``ValueError``.
    ImportError
        The framework package for the file (TensorFlow/Keras, onnx) is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such model file")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        from . import keras as reader
    elif suffix in ONNX_SUFFIXES:
        from . import onnx as reader
    else:
        raise FileFormatError(path, f"unknown model file suffix {path.suffix!r}; sparsenet reads Keras "
                                    f"{list(KERAS_SUFFIXES)} and ONNX {list(ONNX_SUFFIXES)} models "
                                    "(and its own .npz networks with sparsenet.load_network)")
    model, stack, input_shape = reader.load(path)
    net = stack.network()
    error = check_import(net, reader.reference(model), input_shape, str(path), seed) if check else float("nan")
    return ImportedModel(net, str(path), reader.__name__.rsplit(".", 1)[-1], tuple(int(d) for d in input_shape),
                         int(net.widths[-1]), tuple(tuple(names) for names in stack.names), error)


def check_import(net: Network, reference, input_shape: tuple, source: str, seed: int = 0) -> float:
    """The largest absolute difference between ``net`` and ``reference`` on random inputs; raises
    :class:`ImportCheckError` beyond the float32 tolerance of :mod:`sparsenet.testing`."""
    from ..formats import convert
    from ..prune import prune
    from ..testing import assert_forward_close

    x = np.random.default_rng(seed).standard_normal((CHECK_SAMPLES, *input_shape)).astype(np.float32)
    flat = x.reshape(len(x), -1)
    if flat.shape[1] != net.widths[0]:
        raise ImportCheckError(source, f"one input sample of shape {tuple(input_shape)} has {flat.shape[1]} values "
                                       f"but the first layer takes {net.widths[0]}")
    ours = convert(prune(net, "weight", 0.0, prune_logits=True), "dense")(flat.astype(net.dtype))
    if net.layers[-1].activation == "softmax":  # sparsenet returns logits
        ours = softmax(ours)
    theirs = np.asarray(reference(x), dtype=np.float32).reshape(ours.shape)
    error = float(np.abs(ours - theirs).max())
    try:
        assert_forward_close(ours, theirs)
    except AssertionError:
        raise ImportCheckError(source, f"the imported network's outputs differ from the framework's by up to "
                                       f"{error:.3g} on {CHECK_SAMPLES} random inputs (tolerance: "
                                       "sparsenet.testing); the model computes something this import does not "
                                       "represent") from None
    return error


__all__ = ["ImportCheckError", "ImportedModel", "Stack", "UnsupportedModelError", "check_import", "load_model"]
