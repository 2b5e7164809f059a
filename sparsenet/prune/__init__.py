"""Pruning methods by name and the one entry point, :func:`prune`.

Each entry of :data:`PRUNERS` describes itself: whether it removes whole units (``structured``,
so a format can delete them, as ``shrunk`` does), what its sparsity counts (weights or units),
a one-line summary and a plot style for reports, and the masks function. Code downstream asks these fields,
never a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..layers import kind_of
from ..model import MaskedNetwork, Masks, Network
from ..validation import check_choice, check_sparsity
from .block import BLOCK, block_masks
from .magnitude import magnitude_masks
from .unit_l2 import unit_l2_masks

MasksFn = Callable[[Network, float, str, tuple[int, ...]], Masks]


@dataclass(frozen=True)
class Pruner:
    """A registered pruning method. Calling it returns the masks: ``pruner(net, sparsity, scope, layers)``."""

    name: str
    masks: MasksFn
    structured: bool  # removes whole units (rows, with their biases); the logits layer is never pruned
    counts: str  # what ``sparsity`` is a fraction of: "weights" or "units"
    summary: str
    style: tuple[str, str, str]  # plot colour, marker and line style
    # keeps weights in blocks of this many consecutive output units at one input (None: any
    # pattern); formats with ``pruning = "block"`` pay only on such masks
    block_rows: int | None = None

    def __call__(self, net: Network, sparsity: float, scope: str, layers: tuple[int, ...]) -> Masks:
        return self.masks(net, sparsity, scope, layers)


PRUNERS: dict[str, Pruner] = {p.name: p for p in (
    Pruner("unit", unit_l2_masks, structured=True, counts="units",
           summary="the hidden units with the smallest L2 norm of incoming weights, with their biases",
           style=("tab:orange", "s", "--")),
    Pruner("block", block_masks, structured=False, counts="weights",
           summary=f"{BLOCK}x1 blocks ({BLOCK} consecutive output units at one input) with the smallest mean |w|",
           style=("tab:green", "D", "-."), block_rows=BLOCK),
    Pruner("weight", magnitude_masks, structured=False, counts="weights",
           summary="the weights with the smallest |w|", style=("tab:blue", "o", "-")),
)}
SCOPES = ("global", "layer")


def prune(net: Network, method: str, sparsity: float, scope: str = "layer",
          prune_logits: bool = False, include_depthwise: bool = False) -> MaskedNetwork:
    """Prune ``net`` and return the masks with what was asked and what was achieved.

    Parameters
    ----------
    method : str
        A key of :data:`PRUNERS`: ``"weight"`` zeroes the smallest |w|; ``"unit"`` zeroes the
        units with the smallest L2 norm (hidden units of a dense layer, output channels of a
        convolution: filter pruning), and their biases; ``"block"`` zeroes whole blocks of
        4 consecutive output units at one input, smallest mean |w| first (what the
        ``sparse_block`` format needs to pay).
    sparsity : float
        Fraction in [0, 1) of the eligible weights (or units, for a structured method) to remove.
    scope : {"layer", "global"}
        Rank within each layer, or across all eligible layers at once (one threshold; the
        sparsity each layer got is :meth:`MaskedNetwork.layer_sparsity`).
    prune_logits : bool
        Also prune the output layer (unstructured methods only: removing output units would
        delete classes).
    include_depthwise : bool
        Also prune the layers whose kind is pruned only when asked (``pruning = "optional"``:
        depthwise kernels). Kinds without weights (pooling) are never pruned.
    """
    check_choice("pruning method", method, PRUNERS)
    check_choice("scope", scope, SCOPES)
    sparsity = check_sparsity(sparsity)
    pruner = PRUNERS[method]
    last = len(net.layers) - 1
    if prune_logits and pruner.structured:
        raise ValueError(f"{method} pruning removes whole units and cannot prune the logits layer: its units "
                         "are the classes; use method='weight' with prune_logits=True")
    allowed = ("default", "optional") if include_depthwise else ("default",)
    layers = tuple(i for i, layer in enumerate(net.layers)
                   if kind_of(layer).pruning in allowed and (i < last or prune_logits))
    if not layers:
        if len(net.layers) == 1:
            raise ValueError("a one-layer network has only the logits layer; pass prune_logits=True "
                             "(method='weight') to prune it")
        raise ValueError(f"no layer of this network may be pruned: its layer kinds are {sorted(net.layer_kinds)} "
                         "besides the logits layer; pass include_depthwise=True or prune_logits=True")
    return MaskedNetwork(net, pruner(net, sparsity, scope, layers), method, sparsity, scope, layers)
