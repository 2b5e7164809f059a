"""Pruning methods by name and the one entry point, :func:`prune`."""

from __future__ import annotations

from typing import Callable

from .._validation import check_choice, check_sparsity
from ..model import Masks, MaskedNetwork, Network
from .magnitude import magnitude_masks
from .unit_l2 import unit_l2_masks

PruneFn = Callable[[Network, float, str, tuple[int, ...]], Masks]

PRUNERS: dict[str, PruneFn] = {"unit": unit_l2_masks, "weight": magnitude_masks}
SCOPES = ("global", "layer")


def prune(net: Network, method: str, sparsity: float, scope: str = "layer",
          prune_logits: bool = False) -> MaskedNetwork:
    """Prune ``net`` and return the masks with what was asked and what was achieved.

    Parameters
    ----------
    method : {"weight", "unit"}
        ``"weight"``: zero the smallest |w|. ``"unit"``: zero the hidden units (rows) with the
        smallest L2 norm, and their biases.
    sparsity : float
        Fraction in [0, 1) of the eligible weights (``"weight"``) or units (``"unit"``) to remove.
    scope : {"layer", "global"}
        Rank within each layer, or across all eligible layers at once.
    prune_logits : bool
        Also prune the output layer (``"weight"`` only: removing output units would delete classes).
    """
    check_choice("pruning method", method, PRUNERS)
    check_choice("scope", scope, SCOPES)
    sparsity = check_sparsity(sparsity)
    last = len(net.layers) - 1
    if prune_logits and method == "unit":
        raise ValueError("unit pruning cannot prune the logits layer: its units are the classes; "
                         "use method='weight' with prune_logits=True")
    layers = tuple(range(last + 1)) if prune_logits else tuple(range(last))
    if not layers:
        raise ValueError("a one-layer network has only the logits layer; pass prune_logits=True "
                         "(method='weight') to prune it")
    masks = PRUNERS[method](net, sparsity, scope, layers)
    return MaskedNetwork(net, masks, method, sparsity, scope, layers)
