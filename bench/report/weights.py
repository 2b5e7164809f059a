"""Weight distributions per layer: the dense network's and the kept weights' after pruning.

One of the studies this project builds on found that the shape of these distributions
(flat-topped against Gaussian, set by the learning rate) decides how early accuracy drops under
pruning. Records hold histogram counts on bins shared by every sparsity of a layer, so the
report can draw them without the weights themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sparsenet import prune

__all__ = ["BINS", "weight_records"]

BINS = 80


def weight_records(models: dict, method: str, sparsities: Iterable[float], scope: str = "layer") -> list[dict]:
    """One record per (dataset, layer, sparsity): ``bin_edges`` and ``counts`` of the kept weights
    (sparsity 0: every weight of the dense network), pruned by ``method`` at ``scope``."""
    out = []
    for dataset, (net, _) in models.items():
        edges = [np.linspace(-m, m, BINS + 1) for m in (float(np.abs(layer.weight).max(initial=0.0)) or 1.0
                                                         for layer in net.layers)]
        for s in sorted({0.0, *sparsities}):
            masked = prune(net, method, s, scope)
            for i, (layer, keep) in enumerate(zip(net.layers, masked.masks.weight)):
                if i not in masked.pruned_layers:
                    continue  # the logits layer is not pruned: its distribution never changes
                counts, _ = np.histogram(layer.weight[keep], bins=edges[i])
                out.append({"dataset": dataset, "method": method, "scope": scope, "sparsity": s, "layer": i,
                            "shape": list(layer.weight.shape), "kept": int(keep.sum()),
                            "std": float(layer.weight[keep].std()) if keep.any() else 0.0,
                            "bin_edges": [round(float(e), 7) for e in edges[i]], "counts": counts.tolist()})
    return out
