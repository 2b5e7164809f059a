"""What every inference format provides; :data:`sparsenet.formats.FORMATS` maps names to classes.

A format describes itself in class attributes, and everything downstream (the benchmark cases,
the report's tables, break-even and roofline, the plot legends) is derived from them:

``kind``
    ``"baseline"``: the dense reference every speed-up is measured against (exactly one);
    ``"sparse"``: stores and multiplies only the kept weights; ``"structured"``: deletes pruned
    units and runs dense arithmetic on what is left; ``"adaptive"``: picks another format at
    run time, so it has no cost model of its own; ``"engine"``: another inference engine
    (:mod:`sparsenet.formats.engines`: ONNX Runtime, TFLite, PyTorch) run on the masked network.
``computes``
    the arithmetic the roofline's cost model charges it: ``"dense"`` (every stored weight, zeros
    too) or ``"sparse"`` (the kept weights only); None (the default) takes it from ``kind``
    (baseline and structured: dense, sparse: sparse, adaptive: none), see :func:`computes`.
``engine``
    the package that runs it (``"onnxruntime"``, ``"torch"``, ...), None for sparsenet's own;
    ``available()`` says whether it imports here (always True for sparsenet's own formats):
    :func:`sparsenet.formats.formats_for` offers only available formats.
``layer_kinds``
    the layer kinds (:data:`sparsenet.layers.LAYER_KINDS`) it can run.
``dtypes``
    the float dtypes (``np.dtype``) of the networks it builds for; a
    network of another dtype is refused at build with NotImplementedError naming it.
``needs_kinds``
    layer kinds of which a network must hold at least one for the format to be worth running
    (empty: any network it can run). A conv kernel runs an MLP correctly, but `sparse` does that
    better: :func:`sparsenet.formats.formats_for` leaves it out there.
``activations``
    the activations (keys of :data:`sparsenet.activations.ACTIVATIONS`) it can run; by default
    all of them (a format applying ``ACTIVATIONS[...]`` runs any), fewer where a kernel fuses them.
``pruning``
    ``"any"``, or ``"structured"`` when it only pays after a structured pruning method
    (:attr:`sparsenet.prune.Pruner.structured`): weight pruning leaves no unit to delete; or
    ``"block"`` when it only pays after a block pruning method (:attr:`sparsenet.prune.Pruner.block_rows`).
``summary``, ``style``
    a one-line description for reports, and a (matplotlib colour, marker) pair for plots.
``operating_points``
    timed on the recovered (fine-tuned, gradually pruned) networks too, where a user picks an
    operating point.
``quantized``
    True for a format running an int8-quantized network (:mod:`sparsenet.quantize`): its output
    is checked against its own ``forward.reference(x)`` (the dequantized network in float64, in
    x's dtype) with :func:`sparsenet.testing.assert_forward_close`, not against the float network's.
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

KINDS = ("baseline", "sparse", "structured", "adaptive", "engine")
COMPUTES = ("dense", "sparse")
_COMPUTES_BY_KIND = {"baseline": "dense", "structured": "dense", "sparse": "sparse"}
PRUNING = ("any", "structured", "block")


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
    needs_kinds: ClassVar[frozenset[str]] = frozenset()
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
    activations: ClassVar[frozenset[str]] = frozenset(ACTIVATIONS)
    pruning: ClassVar[str] = "any"
    operating_points: ClassVar[bool] = False
    quantized: ClassVar[bool] = False
    saved_as: ClassVar[str] = "compact"
    computes: ClassVar[str | None] = None
    engine: ClassVar[str | None] = None

    @classmethod
    def available(cls) -> bool:
        """Whether this format can be built here (its package imports); sparsenet's own always can."""
        return True

    @property
    def in_memory_bytes(self) -> int:
        """Every numpy buffer the built format holds, views counted once (:func:`sparsenet.sizes.kept_bytes`)."""
        return kept_bytes(self)


def computes(cls: type) -> str | None:
    """``"dense"`` or ``"sparse"``: the arithmetic a format class does (its ``computes``, else its
    kind's); None for an adaptive format or one of unknown kind."""
    return getattr(cls, "computes", None) or _COMPUTES_BY_KIND.get(cls.kind)


def available(cls: type) -> bool:
    """Whether a format class can be built here (a class without ``available()`` always can)."""
    check = getattr(cls, "available", None)
    return True if check is None else bool(check())


def describe(cls: type[Forward]) -> dict:
    """The self-description of a format class as plain data (what a report stores next to its records)."""
    return {"kind": cls.kind, "layer_kinds": sorted(cls.layer_kinds),
            "needs_kinds": sorted(getattr(cls, "needs_kinds", ())),
            "dtypes": sorted(np.dtype(d).name for d in getattr(cls, "dtypes", (np.float32, np.float64))),
            "activations": sorted(cls.activations), "pruning": cls.pruning,
            "summary": cls.summary, "style": list(cls.style), "operating_points": cls.operating_points,
            "quantized": getattr(cls, "quantized", False), "integer_math": getattr(cls, "integer_math", False),
            "saved_as": cls.saved_as, "computes": computes(cls), "engine": getattr(cls, "engine", None)}


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
    if getattr(cls, "computes", None) not in (None, *COMPUTES):
        raise ValueError(f"format {cls.name!r}: computes {cls.computes!r}, expected one of {list(COMPUTES)} or None")
    if cls.kind == "engine" and not (computes(cls) and isinstance(getattr(cls, "engine", None), str)
                                     and callable(getattr(cls, "available", None))):
        raise ValueError(f"engine format {cls.name!r} must name its package (engine), what it computes "
                         f"({list(COMPUTES)}) and say whether it is available() (see sparsenet.formats.engines)")
