"""The fully connected layer kind: ``y = activation(x @ weight.T + bias)``.

Weight orientation, fixed once for the whole library: ``Layer.weight`` is ``(n_out, n_in)``,
row ``i`` holds the incoming weights of output unit ``i``. Keras stores kernels as
``(n_in, n_out)``; :func:`sparsenet.io.from_keras` transposes once at that boundary, so "a
column of a Keras kernel" (one output unit) is a row here, unit pruning is a row mask and CSR
rows are output units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Layer:
    """One fully connected layer, ``y = activation(x @ weight.T + bias)``."""

    kind: ClassVar[str] = "dense"
    weight: np.ndarray  # (n_out, n_in)
    bias: np.ndarray | None  # (n_out,) or None
    activation: str

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


class DenseKind:
    """What the rest of the library asks of a dense layer (see :class:`sparsenet.layers.LayerKind`)."""

    name: ClassVar[str] = "dense"
    layer: ClassVar[type] = Layer
    summary: ClassVar[str] = "fully connected, weight (n_out, n_in): a unit is a row"
    weight_ndim: ClassVar[int] = 2
    pruning: ClassVar[str] = "default"

    @staticmethod
    def unit_weights(weight: np.ndarray) -> np.ndarray:
        """``(n_units, fan_in)``: row ``i`` holds every weight that feeds unit ``i`` (a view)."""
        return weight

    @staticmethod
    def preactivation(layer: Layer, x: np.ndarray, weight: np.ndarray | None = None,
                      bias: np.ndarray | None = None) -> np.ndarray:
        """``x @ weight.T + bias`` in float64 for a batch ``x`` of shape ``(n_batch, n_in)``: the
        reference every format is checked against. ``weight``/``bias`` replace the layer's own
        (masked copies)."""
        w = layer.weight if weight is None else weight
        b = layer.bias if bias is None else bias
        h = np.asarray(x, np.float64) @ w.astype(np.float64).T
        return h if b is None else h + b.astype(np.float64)
