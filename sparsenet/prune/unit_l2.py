"""Structured pruning: remove whole hidden units with the smallest L2 norm of incoming weights."""

from __future__ import annotations

import numpy as np

from ..layers import kind_of
from ..model import Masks, Network
from ._common import keep_all, n_to_remove


def unit_l2_masks(net: Network, sparsity: float, scope: str, layers: tuple[int, ...]) -> Masks:
    """Zero the units with the smallest L2 norm of their incoming weights, and their bias entries.

    What a unit is comes from the layer's kind (:mod:`sparsenet.layers`): for a dense layer,
    row ``i`` of ``weight`` (a column of the Keras kernel). ``scope="layer"`` removes
    ``round(sparsity * n_out)`` units of every listed layer (at least one survives);
    ``scope="global"`` ranks the units of all listed layers together by norm. Ties fall to the
    lower index (stable sort). The bias goes with the unit. Any elementwise activation will do:
    a pruned unit emits the constant ``act(0)`` (0 for ReLU, 0.5 for sigmoid), which the
    ``shrunk`` format folds into the next layer's bias when it deletes the unit, so deleting
    gives the same outputs as zeroing.
    """
    for i in layers:
        if net.layers[i].activation == "softmax":  # not elementwise: a unit's output depends on the others
            raise ValueError(f"unit pruning needs an elementwise activation in every pruned layer; layer {i} "
                             f"uses 'softmax'")
    masks, bias = keep_all(net)
    units = {i: kind_of(net.layers[i]).unit_weights for i in layers}  # (n_units, fan_in) views, any layer kind
    norms = {i: np.linalg.norm(units[i](net.layers[i].weight).astype(np.float64), axis=1) for i in layers}
    if scope == "layer":
        dead = {i: np.argsort(norms[i], kind="stable")[:n_to_remove(sparsity, norms[i].size)] for i in layers}
    else:
        flat = np.concatenate([norms[i] for i in layers])
        removed = np.argsort(flat, kind="stable")[:n_to_remove(sparsity, flat.size)]
        dead, start = {}, 0
        for i in layers:
            n = norms[i].size
            local = removed[(removed >= start) & (removed < start + n)] - start
            if local.size == n:  # never delete a whole layer: that would disconnect the network
                local = np.setdiff1d(local, [np.argmax(norms[i])])
            dead[i], start = local, start + n
    for i, rows in dead.items():
        units[i](masks[i])[rows, :] = False
        if bias[i] is not None:
            bias[i][rows] = False
    return Masks(tuple(masks), tuple(bias))
