"""PyTorch on the CPU: a ``torch.nn.functional.linear`` chain on the masked dense weights, and
``torch.sparse_csr`` weights multiplied by ``torch.sparse.mm``.

Both take the numpy batch with ``torch.from_numpy`` (no copy) and hand back ``.numpy()`` of the
result, inside the call: that is what a user running PyTorch on numpy data pays. The CSR chain
works on transposed activations, ``(n_features, n_batch)`` C-contiguous, because ``torch.sparse.mm``
on a strided (transposed-view) dense operand was 40x slower here than on a contiguous one
(batch 64, 1000 x 1000 at 90% sparsity, 2 threads); the batch is transposed once on the way in
and once on the way out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...model import MaskedNetwork
from ...validation import check_batch
from .base import EngineDefaults, kept_weights, logit_activations

_ACTIVATIONS = frozenset({"gelu", "gelu_tanh", "linear", "relu", "relu6", "sigmoid", "softmax", "tanh"})


def _activate(torch, name: str, h):
    """``name`` applied to the tensor ``h`` in place (softmax arrives here as linear)."""
    if name == "relu":
        return torch.relu_(h)
    if name == "relu6":
        return h.clamp_(0.0, 6.0)
    if name == "tanh":
        return h.tanh_()
    if name == "sigmoid":
        return h.sigmoid_()
    if name in ("gelu", "gelu_tanh"):
        return torch.nn.functional.gelu(h, approximate="tanh" if name == "gelu_tanh" else "none")
    return h


class _TorchForward(EngineDefaults):
    """Shared by the two torch formats: the thread count is set before every call where it differs
    (``torch.set_num_threads`` is process-wide, and another format may have changed it)."""

    engine: ClassVar[str] = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    pip: ClassVar[str] = "pip install torch==2.13.0 (its CPU build)"
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
    activations: ClassVar[frozenset[str]] = _ACTIVATIONS

    def _enter(self):
        torch = self.torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return torch.inference_mode()

    @property
    def nnz(self) -> int:
        return self.kept

    @property
    def in_memory_bytes(self) -> int:
        """Bytes of the weight and bias tensors (a CSR weight's values and both index arrays)."""
        return sum(_tensor_bytes(t) for weight, bias, _ in self.layers for t in (weight, bias) if t is not None)


def _tensor_bytes(t) -> int:
    parts = (t.crow_indices(), t.col_indices(), t.values()) if t.is_sparse_csr else (t,)
    return sum(p.element_size() * p.numel() for p in parts)


def _import_torch(threads: int):
    import torch

    # benchmark inputs are read-only arrays; torch warns once when it wraps one, though these
    # formats never write to the input tensor (every op makes a new one)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
    torch.set_num_threads(threads)
    return torch


@dataclass(frozen=True, eq=False)
class TorchDenseForward(_TorchForward):
    """``torch.nn.functional.linear`` per layer on dense ``(n_out, n_in)`` weights, zeros in place."""

    name: ClassVar[str] = "torch_dense"
    summary: ClassVar[str] = "PyTorch CPU, dense torch.nn.functional.linear chain (zeros kept)"
    style: ClassVar[tuple[str, str]] = ("goldenrod", "<")
    torch: Any
    layers: tuple  # (weight (n_out, n_in), bias or None, activation)
    n_in: int
    dtype: np.dtype
    threads: int
    kept: int

    @classmethod
    def build(cls, masked: MaskedNetwork) -> TorchDenseForward:
        torch = _import_torch(cls.check_buildable(masked))
        layers = tuple((torch.from_numpy(np.ascontiguousarray(w)), None if b is None else torch.from_numpy(b), act)
                       for w, b, act in zip(masked.masked_weights(), masked.masked_biases(),
                                            logit_activations(masked)))
        return cls(torch, layers, masked.net.widths[0], masked.net.dtype, torch.get_num_threads(),
                   kept_weights(masked))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        check_batch(x, n_in=self.n_in, dtype=self.dtype)
        torch, linear = self.torch, self.torch.nn.functional.linear
        with self._enter():
            h = torch.from_numpy(x)
            for weight, bias, act in self.layers:
                h = _activate(torch, act, linear(h, weight, bias))
            return h.numpy()


@dataclass(frozen=True, eq=False)
class TorchCSRForward(_TorchForward):
    """``torch.sparse.mm`` per layer on ``torch.sparse_csr`` weights (int32 indices, the kept
    weights only) times the transposed activations."""

    name: ClassVar[str] = "torch_csr"
    computes: ClassVar[str] = "sparse"
    saved_as: ClassVar[str] = "compact"
    summary: ClassVar[str] = "PyTorch CPU, torch.sparse_csr weights (int32 indices) through torch.sparse.mm"
    style: ClassVar[tuple[str, str]] = ("teal", ">")
    torch: Any
    layers: tuple  # (CSR weight (n_out, n_in), bias (n_out, 1) or None, activation)
    n_in: int
    dtype: np.dtype
    threads: int
    kept: int

    @classmethod
    def build(cls, masked: MaskedNetwork) -> TorchCSRForward:
        torch = _import_torch(cls.check_buildable(masked))
        layers = []
        for layer, keep, b, act in zip(masked.net.layers, masked.masks.weight, masked.masked_biases(),
                                       logit_activations(masked)):
            rows, cols = np.nonzero(keep)  # row-major: CSR order
            crow = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                weight = torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols.astype(np.int32)),
                                                 torch.from_numpy(layer.weight[rows, cols]), size=keep.shape,
                                                 check_invariants=True)
            layers.append((weight, None if b is None else torch.from_numpy(b.reshape(-1, 1).copy()), act))
        return cls(torch, tuple(layers), masked.net.widths[0], masked.net.dtype, torch.get_num_threads(),
                   kept_weights(masked))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        check_batch(x, n_in=self.n_in, dtype=self.dtype)
        torch = self.torch
        with self._enter():
            h = torch.from_numpy(x).T.contiguous()
            for weight, bias, act in self.layers:
                h = torch.sparse.mm(weight, h)
                if bias is not None:
                    h += bias
                h = _activate(torch, act, h)
            return h.T.contiguous().numpy()
