"""The conv section's figure: the classic flat-vs-layer, one-shot / fine-tuned / gradual plot.

Same contract as the other plot modules: a run's ``results`` in, a new Figure out, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from matplotlib.figure import Figure

from bench.report.plots.style import file_stem
from bench.report.stages import STAGE_COLORS, STAGE_LABELS, record_stage

__all__ = ["conv_figure_names", "conv_recovery_figure"]

SCOPE_TITLES = {"global": "flat (one global threshold)", "layer": "per layer"}


def conv_figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """``conv-recovery-<dataset>`` for every conv dataset of the run with weight-pruning accuracy."""
    return [(f"conv-recovery-{file_stem(d)}", partial(conv_recovery_figure, results, d))
            for d in (results.get("conv") or {})
            if any(r["dataset"] == d and r["method"] == "weight" for r in results.get("accuracy", ()))]


def conv_recovery_figure(results: Mapping, dataset: str) -> Figure:
    """Test accuracy against sparsity, one panel per scope, one line per stage (weight pruning)."""
    info = (results.get("conv") or {}).get(dataset, {})
    recs = [r for r in results["accuracy"] if r["dataset"] == dataset and r["method"] == "weight"]
    top = max((r["sparsity"] for r in recs if record_stage(r) != "oneshot"), default=None)
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    dense = info.get("dense_accuracy")
    for ax, scope in zip(axes, ("global", "layer")):
        for stage, label in STAGE_LABELS.items():
            pts = sorted((r["sparsity"], r["accuracy"]) for r in recs if r["scope"] == scope
                         and record_stage(r) == stage and (top is None or r["sparsity"] <= top + 1e-9))
            if pts:
                ax.plot(*zip(*pts), marker="o", color=STAGE_COLORS[stage], label=label,
                        linewidth=2.2 if stage == "gradual" else 1.6)
        if dense is not None:
            ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
        ax.set_title(SCOPE_TITLES[scope], fontsize=10)
        ax.set_xlabel("sparsity of the prunable weights")
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"MobileNetV2 (width {info.get('alpha', '?')}, {info.get('epochs', '?')} epochs) on "
                 f"{info.get('dataset_words', dataset)}: weight pruning", fontsize=10)
    return fig
