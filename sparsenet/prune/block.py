"""Block magnitude pruning: remove whole 4x1 blocks (four consecutive output units at one input).

Unstructured pruning leaves kept weights scattered, so a sparse kernel loads one input row (a
tile of samples) per kept weight and does one tile of multiply-adds with it. With weights kept
in blocks of BLOCK consecutive output units at the same input, one input load feeds BLOCK rows
of multiply-adds (the ``sparse_block`` format, :mod:`sparsenet.kernels.block`). TF Model
Optimization's ``block_size`` prunes the same way. The cost is accuracy: the report measures it
against unstructured magnitude pruning at the same sparsity.
"""

from __future__ import annotations

import numpy as np

from ..model import Masks, Network
from ._common import keep_all

# Output units per block (rows of a dense weight, output channels of a convolution).
BLOCK = 4


def block_scores(w: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, sizes)`` of the blocks of one weight, flattened row-major over (block row, fan-in
    position): a block's score is the mean |w| over its entries (TF Model Optimization's ``AVG``
    pooling of block magnitudes), its size how many weights it holds (``block``, or fewer in the
    last block row when the unit count is not a multiple of ``block``)."""
    units = w.reshape(w.shape[0], -1).astype(np.float64)
    n_units, fan_in = units.shape
    n_groups = -(-n_units // block)
    padded = np.zeros((n_groups * block, fan_in))
    padded[:n_units] = np.abs(units)
    sizes = np.full((n_groups, fan_in), block, dtype=np.int64)
    sizes[-1] = n_units - (n_groups - 1) * block
    sums = padded.reshape(n_groups, block, fan_in).sum(axis=1)
    return (sums / sizes).ravel(), sizes.ravel()


def _blocks_to_remove(sizes_in_order: np.ndarray, target: int) -> int:
    """How many blocks, taken in order, remove the number of weights closest to ``target``
    (ties: fewer), never all of them."""
    removed = np.concatenate([[0], np.cumsum(sizes_in_order)])
    k = int(np.argmin(np.abs(removed - target)))
    return min(k, sizes_in_order.size - 1)


def _clear(mask: np.ndarray, removed: np.ndarray, block: int) -> None:
    """Set the weights of the listed block numbers (as block_scores numbers them) to False."""
    units = mask.reshape(mask.shape[0], -1)
    fan_in = units.shape[1]
    groups, cols = np.divmod(removed, fan_in)
    for r in range(block):
        rows = groups * block + r
        inside = rows < units.shape[0]
        units[rows[inside], cols[inside]] = False


def block_masks(net: Network, sparsity: float, scope: str, layers: tuple[int, ...]) -> Masks:
    """Keep the BLOCK x 1 blocks (BLOCK consecutive output units, one input position) with the
    largest mean |w| in the layers listed in ``layers``.

    ``scope="layer"`` removes from every listed layer the number of blocks whose weights come
    closest to ``round(sparsity * size)``; ``scope="global"`` ranks the blocks of all listed
    layers together by mean |w|. Ties fall to the lower block number (stable sort: layer order,
    then block row, then input). Every listed layer keeps at least one block; biases are kept.
    A layer whose unit count is not a multiple of BLOCK ends with a shorter block row.
    """
    masks, bias = keep_all(net)
    scored = {i: block_scores(net.layers[i].weight) for i in layers}
    if scope == "layer":
        for i in layers:
            scores, sizes = scored[i]
            order = np.argsort(scores, kind="stable")
            k = _blocks_to_remove(sizes[order], round(sparsity * int(sizes.sum())))
            _clear(masks[i], order[:k], BLOCK)
    else:
        scores = np.concatenate([scored[i][0] for i in layers])
        sizes = np.concatenate([scored[i][1] for i in layers])
        order = np.argsort(scores, kind="stable")
        removed = order[:_blocks_to_remove(sizes[order], round(sparsity * int(sizes.sum())))]
        start = 0
        for i in layers:
            n = scored[i][0].size
            local = removed[(removed >= start) & (removed < start + n)] - start
            if local.size == n:  # global ranking emptied a layer: keep its best block
                local = np.setdiff1d(local, [np.argmax(scored[i][0])])
            _clear(masks[i], local, BLOCK)
            start += n
    return Masks(tuple(masks), tuple(bias))
