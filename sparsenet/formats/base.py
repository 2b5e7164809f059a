"""What every inference format provides; :data:`sparsenet.formats.FORMATS` maps names to classes."""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from ..model import MaskedNetwork


class Forward(Protocol):
    """A built forward pass: ``forward(x)`` maps float ``(n_batch, n_in)`` to logits ``(n_batch, n_out)``.

    ``nnz``: weights the format stores that the masks kept. ``nbytes``: bytes of weight storage,
    index arrays included, biases excluded (the same rule in every format).
    """

    name: ClassVar[str]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> Forward: ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    @property
    def nnz(self) -> int: ...

    @property
    def nbytes(self) -> int: ...
