"""The global average pooling kind: ``y[n, c] = mean over (p, q) of x[n, p, q, c]``.

It has no weights. So that code written for weighted layers (masks, counts, pruning) needs no
special case, ``GlobalAvgPool.weight`` is an empty ``(C, 0)`` array (C units, no weights each),
``bias`` is None, ``activation`` is ``"linear"``, and its kind is never pruned
(``pruning = "never"``). Input NHWC flattened (:mod:`sparsenet.layers._spatial`); output ``(n, C)``,
what a following ``dense`` classifier takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over all spatial positions, per channel."""

    kind: ClassVar[str] = "global_avg_pool"
    bias: ClassVar[None] = None
    activation: ClassVar[str] = "linear"
    input_shape: tuple[int, int, int]  # (height, width, channels)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def weight(self) -> np.ndarray:
        return np.zeros((self.input_shape[2], 0), dtype=self.dtype)

    @property
    def output_shape(self) -> tuple[int]:
        return (self.input_shape[2],)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_out(self) -> int:
        return self.input_shape[2]

    @property
    def n_units(self) -> int:
        return self.input_shape[2]


class GlobalAvgPoolKind:
    """What the rest of the library asks of a global average pooling layer."""

    name: ClassVar[str] = "global_avg_pool"
    layer: ClassVar[type] = GlobalAvgPool
    summary: ClassVar[str] = "mean over height and width per channel, no weights (weight is (C, 0))"
    weight_ndim: ClassVar[int] = 2
    pruning: ClassVar[str] = "never"

    @staticmethod
    def unit_weights(weight: np.ndarray) -> np.ndarray:
        return weight

    @staticmethod
    def check(layer: GlobalAvgPool) -> None:
        if len(layer.input_shape) != 3 or min(layer.input_shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels) > 0, found {layer.input_shape}")
        if layer.dtype not in ("float32", "float64"):
            raise TypeError(f"dtype must be float32 or float64, found {layer.dtype}")

    @staticmethod
    def preactivation(layer: GlobalAvgPool, x: np.ndarray, weight: np.ndarray | None = None,
                      bias: np.ndarray | None = None) -> np.ndarray:
        """The float64 mean over positions; ``x`` (n_batch, n_in) flattened NHWC -> (n_batch, C)."""
        return np.asarray(x, np.float64).reshape(-1, *layer.input_shape).mean(axis=(1, 2))
