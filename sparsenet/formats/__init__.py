"""Inference formats by name and the one entry point, :func:`convert`."""

from __future__ import annotations

from .._validation import check_choice
from ..model import MaskedNetwork
from .auto import AutoForward
from .base import Forward
from .csr_numba import NumbaCSRForward, NumbaCSRParallelForward
from .csr_scipy import ScipyCSRForward
from .dense import DenseForward
from .fused import FusedSparseForward
from .shrunk import ShrunkDenseForward

FORMATS: dict[str, type[Forward]] = {
    cls.name: cls
    for cls in (DenseForward, ScipyCSRForward, NumbaCSRForward, NumbaCSRParallelForward, FusedSparseForward,
                ShrunkDenseForward, AutoForward)
}


def convert(masked: MaskedNetwork, fmt: str) -> Forward:
    """Build the forward pass named ``fmt`` (a key of :data:`FORMATS`) for ``masked``."""
    check_choice("format", fmt, FORMATS)
    if not isinstance(masked, MaskedNetwork):
        raise TypeError(f"convert needs a MaskedNetwork (from sparsenet.prune), found {type(masked).__name__}")
    return FORMATS[fmt].build(masked)
