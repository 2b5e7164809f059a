"""Test accuracy of pruned networks per (dataset, method, scope, sparsity); no timing here."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from sparsenet import convert, prune
from sparsenet.data import load_dataset


def accuracy(forward, x: np.ndarray, y: np.ndarray, chunk: int = 2000) -> float:
    """Fraction of ``x`` whose argmax logit equals the label ``y``."""
    hits = sum(int((forward(x[i:i + chunk]).argmax(axis=1) == y[i:i + chunk]).sum())
               for i in range(0, len(x), chunk))
    return hits / len(x)


def accuracy_records(models: dict, methods: Iterable[str], scopes: Iterable[str], sparsities: Iterable[float],
                     data_dir=None, progress=print) -> list[dict]:
    """One record per setting, measured with the ``dense`` format (formats agree; tests prove it)."""
    records = []
    for dataset, (net, _manifest) in models.items():
        data = load_dataset(dataset, data_dir=data_dir)
        for method in methods:
            for scope in scopes:
                row = []
                for sparsity in sparsities:
                    masked = prune(net, method, sparsity, scope)
                    acc = accuracy(convert(masked, "dense"), data.x_test, data.y_test)
                    records.append({
                        "dataset": dataset, "method": method, "scope": scope, "sparsity": sparsity,
                        "achieved_sparsity": round(masked.achieved_sparsity(), 6),
                        "layer_sparsity": [round(s, 6) for s in masked.layer_sparsity()],
                        "accuracy": acc,
                    })
                    row.append(f"{sparsity:.2f}:{100 * acc:.1f}%")
                progress(f"  accuracy {dataset} {method}/{scope}: " + " ".join(row))
    return records
