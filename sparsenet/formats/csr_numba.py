"""CSR layers evaluated with sparsenet.kernels.csr (our numba kernels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import kernels
from ..activations import ACTIVATIONS
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults
from .csr_common import CSRLayer, csr_layers


@dataclass(frozen=True)
class NumbaCSRForward(FormatDefaults):
    """Forward pass over CSR weights; one numba kernel call per layer, activations feature-major."""

    name: ClassVar[str] = "csr_numba"
    kind: ClassVar[str] = "sparse"
    summary: ClassVar[str] = "sparsenet's plain numba CSR kernel, one call per layer"
    style: ClassVar[tuple[str, str]] = ("tab:orange", "s")
    kernel: ClassVar = staticmethod(kernels.csr_matmul)
    layers: tuple[CSRLayer, ...]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> NumbaCSRForward:
        return cls(csr_layers(masked))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        first = self.layers[0]
        x = check_batch(x, n_in=first.n_in, dtype=first.data.dtype)
        h = np.ascontiguousarray(x.T)  # (n_in, n_batch): a weight's input row is contiguous over the batch
        for layer in self.layers:
            out = np.empty((layer.n_out, h.shape[1]), dtype=h.dtype)
            self.kernel(layer.indptr, layer.indices, layer.data, h, out)
            if layer.bias is not None:
                out += layer.bias
            h = ACTIVATIONS[layer.activation](out)
        return h.T

    @property
    def nnz(self) -> int:
        return sum(layer.data.size for layer in self.layers)


class NumbaCSRParallelForward(NumbaCSRForward):
    """Same as NumbaCSRForward, output rows split across numba threads."""

    name: ClassVar[str] = "csr_numba_par"
    summary: ClassVar[str] = "sparsenet's plain numba CSR kernel, rows split across threads"
    style: ClassVar[tuple[str, str]] = ("tab:green", "^")
    kernel: ClassVar = staticmethod(kernels.csr_matmul_parallel)
