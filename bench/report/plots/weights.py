"""The weight-distribution figure: per layer, the dense weights and those kept after pruning."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from bench.report.plots.style import BASELINE_LINE, dataset_title, panels, percent

__all__ = ["weights_figure"]


def weights_figure(results: Mapping, dataset: str) -> Figure:
    """One panel per layer: a step histogram per sparsity (log counts), the dense network dashed.
    Magnitude pruning empties the centre first, so the kept weights' tails show what survives."""
    rows = [r for r in results.get("weights") or () if r["dataset"] == dataset]
    if not rows:
        raise ValueError(f"no weight-distribution records for {dataset!r}")
    layers = sorted({r["layer"] for r in rows})
    sparsities = sorted({r["sparsity"] for r in rows})
    fig, axes = panels(len(layers))
    colors = dict(zip([s for s in sparsities if s > 0], ("tab:blue", "tab:orange", "tab:red", "tab:purple")))
    for ax, layer in zip(axes, layers):
        for r in sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["sparsity"]):
            edges, counts = np.asarray(r["bin_edges"]), np.asarray(r["counts"], float)
            label = (f"dense ({r['kept']:,} weights)" if r["sparsity"] == 0 else
                     f"kept at {percent(r['sparsity'])} ({r['kept']:,})")
            style = BASELINE_LINE if r["sparsity"] == 0 else {"color": colors.get(r["sparsity"], "tab:gray")}
            ax.stairs(np.where(counts > 0, counts, np.nan), edges, label=label, **style)
        ax.set_yscale("log")
        shape = next(r["shape"] for r in rows if r["layer"] == layer)
        ax.set_title(f"layer {layer} ({shape[0]}×{shape[1]})")
        ax.set_xlabel("weight")
        ax.set_ylabel("count (log)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    method = rows[0]["method"]
    fig.suptitle(f"{dataset_title(dataset)}: weight distribution per layer, dense and kept after {method} pruning "
                 f"({rows[0]['scope']} scope)")
    return fig
