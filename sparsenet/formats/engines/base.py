"""What the engine formats share: the self-description of an engine, whether its package imports,
and the checks every engine makes before it builds."""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import numba
import numpy as np

from ...model import MaskedNetwork
from ..base import FormatDefaults

PIP_EXTRA = "pip install 'sparsenet[engines]'"


class EngineDefaults(FormatDefaults):
    """An engine runs the whole masked network (zeros in place unless it stores sparse weights),
    for any pruning method, deployed from the dense weight file, not timed on recovered networks.

    ``engine`` names the package a user installs; ``requires`` are the modules that must import
    for the engine to run (its ``pip`` command installs them); ``dtypes`` the float dtypes it runs.
    """

    kind: ClassVar[str] = "engine"
    computes: ClassVar[str] = "dense"
    engine: ClassVar[str]
    requires: ClassVar[tuple[str, ...]]
    pip: ClassVar[str]
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32)})
    saved_as: ClassVar[str] = "dense"

    @classmethod
    def missing(cls) -> tuple[str, ...]:
        """The modules of :attr:`requires` that are not installed (found without importing them:
        torch and tensorflow take seconds to import)."""
        return tuple(m for m in cls.requires if importlib.util.find_spec(m) is None)

    @classmethod
    def available(cls) -> bool:
        return not cls.missing()

    @classmethod
    def unavailable_reason(cls) -> str:
        return (f"format {cls.name!r} needs the {', '.join(cls.missing())} package(s), not installed; "
                f"{cls.pip} (or {PIP_EXTRA})")

    @classmethod
    def check_buildable(cls, masked: MaskedNetwork) -> int:
        """The thread count to build with; ImportError naming the package and the pip command when
        it is missing, NotImplementedError for a dtype the engine does not run."""
        if not cls.available():
            raise ImportError(cls.unavailable_reason())
        if masked.net.dtype not in cls.dtypes:
            raise NotImplementedError(f"format {cls.name!r} runs {sorted(str(d) for d in cls.dtypes)} networks; "
                                      f"this one is {masked.net.dtype} (cast its weights to float32, or use a "
                                      "sparsenet format)")
        return numba.get_num_threads()


def logit_activations(masked: MaskedNetwork) -> list[str]:
    """The layers' activations with an output softmax replaced by linear: formats return logits."""
    acts = [layer.activation for layer in masked.net.layers]
    if acts[-1] == "softmax":
        acts[-1] = "linear"
    return acts


def kept_weights(masked: MaskedNetwork) -> int:
    return sum(int(keep.sum()) for keep in masked.masks.weight)
