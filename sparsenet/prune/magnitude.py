"""Unstructured magnitude pruning: remove the weights with the smallest |w|."""

from __future__ import annotations

import numpy as np

from ..model import Masks, Network
from ._common import keep_all, n_to_remove


def magnitude_masks(net: Network, sparsity: float, scope: str, layers: tuple[int, ...]) -> Masks:
    """Keep the largest-magnitude weights of the layers listed in ``layers``.

    ``scope="layer"`` removes ``round(sparsity * size)`` weights from every listed matrix;
    ``scope="global"`` ranks all weights of all listed layers together and removes
    ``round(sparsity * total)`` of them, so layers end up with different sparsities.
    The core is index-based, not threshold-based: a stable sort of ``|w|`` and the first ``k``
    positions dropped, so exactly ``k`` weights go and ties fall to the lower flat index
    (layer order, then row-major). Every listed layer keeps at least one weight. Biases are kept.
    """
    masks, bias = keep_all(net)
    if scope == "layer":
        for i in layers:
            w = net.layers[i].weight
            order = np.argsort(np.abs(w).ravel(), kind="stable")
            masks[i].ravel()[order[:n_to_remove(sparsity, w.size)]] = False
    else:
        mags = np.concatenate([np.abs(net.layers[i].weight).ravel() for i in layers])
        order = np.argsort(mags, kind="stable")
        removed = order[:n_to_remove(sparsity, mags.size)]
        start = 0
        for i in layers:
            size = net.layers[i].weight.size
            local = removed[(removed >= start) & (removed < start + size)] - start
            masks[i].ravel()[local] = False
            if local.size == size:  # global ranking emptied a layer: keep its largest weight
                masks[i].ravel()[np.argmax(np.abs(net.layers[i].weight))] = True
            start += size
    return Masks(tuple(masks), tuple(bias))
