"""What every inference format provides; :data:`sparsenet.formats.FORMATS` maps names to classes.

A format describes itself in class attributes, and everything downstream (the benchmark cases,
the report's tables, break-even and roofline, the plot legends) is derived from them:

``kind``
    ``"baseline"``: the dense reference every speed-up is measured against (exactly one);
    ``"sparse"``: stores and multiplies only the kept weights; ``"structured"``: deletes pruned
    units and runs dense arithmetic on what is left; ``"adaptive"``: picks another format at
    run time, so it has no cost model of its own.
``layer_kinds``
    the layer kinds (:data:`sparsenet.layers.LAYER_KINDS`) it can run.
``activations``
    the activations (keys of :data:`sparsenet.activations.ACTIVATIONS`) it can run; by default
    all of them (a format applying ``ACTIVATIONS[...]`` runs any), fewer where a kernel fuses them.
``pruning``
    ``"any"``, or ``"structured"`` when it only pays after a structured pruning method
    (:attr:`sparsenet.prune.Pruner.structured`): weight pruning leaves no unit to delete.
``summary``, ``style``
    a one-line description for reports, and a (matplotlib colour, marker) pair for plots.
``operating_points``
    timed on the recovered (fine-tuned, gradually pruned) networks too, where a user picks an
    operating point.
``saved_as``
    the file it is deployed from (:data:`sparsenet.sizes.SAVED_AS`): ``"dense"`` (the float32
    weight file, zeros in place), ``"shrunk"`` (the same with dead units deleted) or ``"compact"``
    (sparsenet's compact sparse file); the report's on-disk and zipped sizes are that file's.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from ..activations import ACTIVATIONS
from ..model import MaskedNetwork
from ..sizes import SAVED_AS, kept_bytes

KINDS = ("baseline", "sparse", "structured", "adaptive")
PRUNING = ("any", "structured")


class Forward(Protocol):
    """A built forward pass: ``forward(x)`` maps float ``(n_batch, n_in)`` to logits ``(n_batch, n_out)``.

    ``nnz``: weights the format stores that the masks kept. ``in_memory_bytes``: every byte the
    built format keeps for inference (weights, indices, biases, every internal copy;
    :func:`sparsenet.sizes.kept_bytes` by default).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    layer_kinds: ClassVar[frozenset[str]]
    activations: ClassVar[frozenset[str]]
    pruning: ClassVar[str]
    summary: ClassVar[str]
    style: ClassVar[tuple[str, str]]
    operating_points: ClassVar[bool]
    saved_as: ClassVar[str]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> Forward: ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    @property
    def nnz(self) -> int: ...

    @property
    def in_memory_bytes(self) -> int: ...


class FormatDefaults:
    """The self-description's defaults, inherited by the format classes: a dense-layer format for
    any pruning method, not timed on recovered networks. A format overrides what differs."""

    layer_kinds: ClassVar[frozenset[str]] = frozenset({"dense"})
    activations: ClassVar[frozenset[str]] = frozenset(ACTIVATIONS)
    pruning: ClassVar[str] = "any"
    operating_points: ClassVar[bool] = False
    saved_as: ClassVar[str] = "compact"

    @property
    def in_memory_bytes(self) -> int:
        """Every numpy buffer the built format holds, views counted once (:func:`sparsenet.sizes.kept_bytes`)."""
        return kept_bytes(self)


def describe(cls: type[Forward]) -> dict:
    """The self-description of a format class as plain data (what a report stores next to its records)."""
    return {"kind": cls.kind, "layer_kinds": sorted(cls.layer_kinds),
            "activations": sorted(cls.activations), "pruning": cls.pruning,
            "summary": cls.summary, "style": list(cls.style), "operating_points": cls.operating_points,
            "saved_as": cls.saved_as}


def check_format_class(cls: type) -> None:
    """ValueError naming the first attribute a format class lacks or holds out of range."""
    for attr in ("name", "kind", "layer_kinds", "activations", "pruning", "summary", "style", "operating_points",
                 "saved_as", "build", "in_memory_bytes"):
        if not hasattr(cls, attr):
            raise ValueError(f"format class {cls.__name__} lacks {attr!r} (see sparsenet.formats.base)")
    if cls.kind not in KINDS:
        raise ValueError(f"format {cls.name!r}: kind {cls.kind!r}, expected one of {list(KINDS)}")
    if cls.pruning not in PRUNING:
        raise ValueError(f"format {cls.name!r}: pruning {cls.pruning!r}, expected one of {list(PRUNING)}")
    if cls.saved_as not in SAVED_AS:
        raise ValueError(f"format {cls.name!r}: saved_as {cls.saved_as!r}, expected one of {list(SAVED_AS)}")
