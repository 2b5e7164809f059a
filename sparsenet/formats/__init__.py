"""Inference formats by name and the one entry point, :func:`convert`.

A format is one module plus one line in :data:`FORMATS`; each class describes itself
(:mod:`sparsenet.formats.base`), and the helpers below are how the rest of the project asks.
"""

from __future__ import annotations

from ..model import MaskedNetwork
from ..validation import check_choice
from .auto import AutoForward
from .base import FormatDefaults, Forward, available, check_format_class, computes, describe
from .csr_numba import NumbaCSRForward, NumbaCSRParallelForward
from .csr_scipy import ScipyCSRForward
from .dense import DenseForward
from .dense_int8 import DenseInt8Forward
from .engines import OrtForward, TFLiteForward, TorchCSRForward, TorchDenseForward, unavailable_engines
from .engines.tflite_int8 import TFLiteInt8Forward
from .engines.tflite_sparse import TFLiteSparseForward
from .fused import FusedSparseForward
from .shrunk import ShrunkDenseForward
from .shrunk_int8 import ShrunkInt8Forward
from .sparse_block import SparseBlockForward
from .sparse_conv import SparseConvForward
from .sparse_int8 import SparseInt8Forward
from .sparse_int8_static import SparseInt8StaticForward

FORMATS: dict[str, type[Forward]] = {
    cls.name: cls
    for cls in (DenseForward, ScipyCSRForward, NumbaCSRForward, NumbaCSRParallelForward, FusedSparseForward,
                SparseBlockForward, ShrunkDenseForward, AutoForward, OrtForward, TFLiteForward, TorchDenseForward,
                TorchCSRForward, DenseInt8Forward, SparseInt8Forward, SparseInt8StaticForward,
                ShrunkInt8Forward, SparseConvForward,
                TFLiteInt8Forward, TFLiteSparseForward)
}
for _cls in FORMATS.values():
    check_format_class(_cls)


def baseline() -> str:
    """The name of the one ``kind == "baseline"`` format: what speed-ups are measured against."""
    (name,) = [name for name, cls in FORMATS.items() if cls.kind == "baseline"]
    return name


def formats_for(method_structured: bool, layer_kinds=frozenset({"dense"}),
                activations=frozenset({"relu", "linear", "softmax"}), method_blocks: bool = False) -> tuple[str, ...]:
    """The registered formats worth running for a pruning method (structured or not; keeping
    blocks or not, ``method_blocks``: :attr:`sparsenet.prune.Pruner.block_rows`) on a network
    made of ``layer_kinds`` whose layers use ``activations`` (``{layer.activation for layer in
    net.layers}``; the default is the classic ReLU MLP's), in registry order. An engine whose
    package is not installed is left out (:func:`sparsenet.formats.engines.unavailable_engines`
    says which and why)."""
    return tuple(name for name, cls in FORMATS.items()
                 if {"any": True, "structured": method_structured, "block": method_blocks}[cls.pruning]
                 and set(layer_kinds) <= cls.layer_kinds
                 and (not getattr(cls, "needs_kinds", None) or set(layer_kinds) & cls.needs_kinds)
                 and set(activations) <= cls.activations and available(cls))


def convert(masked: MaskedNetwork, fmt: str) -> Forward:
    """Build the forward pass named ``fmt`` (a key of :data:`FORMATS`) for ``masked``."""
    check_choice("format", fmt, FORMATS)
    if not isinstance(masked, MaskedNetwork):
        raise TypeError(f"convert needs a MaskedNetwork (from sparsenet.prune), found {type(masked).__name__}")
    cls = FORMATS[fmt]
    if not available(cls):
        raise ImportError(cls.unavailable_reason())
    unsupported = sorted(masked.net.layer_kinds - cls.layer_kinds)
    if unsupported:
        raise NotImplementedError(f"format {fmt!r} runs layer kinds {sorted(cls.layer_kinds)}; this network "
                                  f"also has {unsupported}")
    missing = sorted({layer.activation for layer in masked.net.layers} - cls.activations)
    if missing:
        raise NotImplementedError(f"format {fmt!r} runs activations {sorted(cls.activations)}; this network "
                                  f"also uses {missing}")
    return cls.build(masked)


__all__ = ["FORMATS", "FormatDefaults", "Forward", "available", "baseline", "computes", "convert", "describe",
           "formats_for", "unavailable_engines"]
