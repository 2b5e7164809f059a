"""scipy.sparse CSR matrices, one per layer: the off-the-shelf sparse baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse

from ..activations import ACTIVATIONS
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults
from .csr_common import csr_layers


@dataclass(frozen=True)
class ScipyLayer:
    matrix: scipy.sparse.csr_array  # (n_out, n_in)
    bias: np.ndarray | None  # (n_out, 1)
    activation: str


@dataclass(frozen=True)
class ScipyCSRForward(FormatDefaults):
    """``A @ h`` with scipy's csr_matvecs on feature-major activations (its fastest layout)."""

    name: ClassVar[str] = "csr_scipy"
    kind: ClassVar[str] = "sparse"
    summary: ClassVar[str] = "SciPy's CSR, one sparse product per layer"
    style: ClassVar[tuple[str, str]] = ("tab:blue", "o")
    layers: tuple[ScipyLayer, ...]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> ScipyCSRForward:
        return cls(tuple(
            ScipyLayer(scipy.sparse.csr_array((c.data, c.indices, c.indptr), shape=(c.n_out, c.n_in)),
                       c.bias, c.activation)
            for c in csr_layers(masked)
        ))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        first = self.layers[0].matrix
        check_batch(x, n_in=first.shape[1], dtype=first.dtype)
        h = np.ascontiguousarray(x.T)
        for layer in self.layers:
            h = layer.matrix @ h
            if layer.bias is not None:
                h += layer.bias
            h = ACTIVATIONS[layer.activation](h)
        return h.T

    @property
    def nnz(self) -> int:
        return sum(layer.matrix.nnz for layer in self.layers)
