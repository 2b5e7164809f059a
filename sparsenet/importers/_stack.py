"""What both importers build: a chain of fully connected layers, each with one activation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import FileFormatError
from ..layers import Layer
from ..model import Network

# what the error messages list: the framework-neutral picture of what can be imported
SUPPORTED = ("fully connected layers (Keras Dense; ONNX Gemm, MatMul + Add) with or without bias, "
             "activations relu, linear, tanh, sigmoid, gelu (exact erf form; tanh form as gelu_tanh), "
             "softmax on the output layer; input reshaping (Flatten, Reshape to a vector) and Dropout")


class UnsupportedModelError(FileFormatError):
    """A model file holds a layer or a structure sparsenet cannot import; the message names it,
    its type, and what is supported."""


class ImportCheckError(FileFormatError):
    """The imported network's outputs differ from the framework's own on the same inputs."""


@dataclass
class Stack:
    """The layers read so far; each framework layer calls :meth:`linear` or :meth:`activation`."""

    path: str
    weights: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    activations: list = field(default_factory=list)
    names: list = field(default_factory=list)  # per sparsenet layer: the framework layer names it came from

    def refuse(self, name: str, kind: str, why: str = "") -> UnsupportedModelError:
        why = f" ({why})" if why else ""
        return UnsupportedModelError(self.path, f"layer {name!r} of type {kind} is not supported{why}; "
                                                f"sparsenet imports {SUPPORTED}")

    def linear(self, name: str, kind: str, weight: np.ndarray, bias: np.ndarray | None) -> None:
        """A fully connected layer, ``weight`` ``(n_out, n_in)``."""
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise self.refuse(name, kind, f"weight of shape {weight.shape}, expected a matrix")
        if self.weights and self.weights[-1].shape[0] != weight.shape[1]:
            raise self.refuse(name, kind, f"takes {weight.shape[1]} inputs after a layer of "
                                          f"{self.weights[-1].shape[0]} outputs")
        if bias is not None:
            bias = _vector(bias, weight.shape[0])
            if bias is None:
                raise self.refuse(name, kind, f"bias does not broadcast to its {weight.shape[0]} outputs")
        self.weights.append(weight.astype(np.float32))
        self.biases.append(None if bias is None else bias.astype(np.float32))
        self.activations.append("linear")
        self.names.append([name])

    def add_bias(self, name: str, kind: str, bias: np.ndarray) -> None:
        """A bias added to the last layer's output before its activation (ONNX MatMul + Add)."""
        if not self.weights or self.activations[-1] != "linear":
            raise self.refuse(name, kind, "an addition that is not a bias right after a matrix product")
        n_out = self.weights[-1].shape[0]
        total = _vector(bias, n_out)
        if total is None:
            raise self.refuse(name, kind, f"adds an array of shape {np.shape(bias)} to {n_out} outputs")
        if self.biases[-1] is not None:
            total = total + self.biases[-1]
        self.biases[-1] = total.astype(np.float32)
        self.names[-1].append(name)

    def activation(self, name: str, kind: str, activation: str) -> None:
        if activation == "linear":
            return
        if not self.weights:
            raise self.refuse(name, kind, f"activation {activation!r} before any fully connected layer")
        if self.activations[-1] != "linear":
            raise self.refuse(name, kind, f"activation {activation!r} after {self.activations[-1]!r}: one "
                                          "activation per layer")
        self.activations[-1] = activation
        if name != self.names[-1][-1]:
            self.names[-1].append(name)

    def network(self) -> Network:
        if not self.weights:
            raise UnsupportedModelError(self.path, f"holds no fully connected layer; sparsenet imports {SUPPORTED}")
        for i, act in enumerate(self.activations[:-1]):
            if act == "softmax":
                raise UnsupportedModelError(self.path, f"layer {self.names[i][-1]!r}: softmax on a hidden layer "
                                                       "is not supported (only on the output layer)")
        return Network(tuple(Layer(w, b, a) for w, b, a in zip(self.weights, self.biases, self.activations)))


def _vector(bias, n_out: int) -> np.ndarray | None:
    """``bias`` as a float64 ``(n_out,)`` vector if it broadcasts to one row of outputs, else None."""
    b = np.asarray(bias, np.float64)
    if b.ndim > 2 or (b.ndim == 2 and b.shape[0] != 1) or b.size not in (1, n_out):
        return None
    return np.broadcast_to(b.reshape(-1), (n_out,)).copy()
