"""The conv section's figure: the classic flat-vs-layer, one-shot / fine-tuned / gradual plot.

Same contract as the other plot modules: a run's ``results`` in, a new Figure out, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from matplotlib.figure import Figure

from bench.report.plots.style import file_stem
from bench.report.stages import STAGE_COLORS, STAGE_LABELS, record_stage

__all__ = ["conv_figure_names", "conv_layers_figure", "conv_recovery_figure"]

SCOPE_TITLES = {"global": "flat (one global threshold)", "layer": "per layer"}


def conv_figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """``conv-recovery-<dataset>`` for every conv dataset of the run with weight-pruning accuracy,
    and ``conv-layers-<dataset>`` for every conv dataset with per-layer times."""
    conv = results.get("conv") or {}
    names = [(f"conv-recovery-{file_stem(d)}", partial(conv_recovery_figure, results, d)) for d in conv
             if any(r["dataset"] == d and r["method"] == "weight" for r in results.get("accuracy", ()))]
    return names + [(f"conv-layers-{file_stem(d)}", partial(conv_layers_figure, results, d)) for d in conv
                    if any(r["dataset"] == d for r in results.get("layers", ()))]


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
    fig.suptitle(f"MobileNetV2 (width {info.get('alpha', '?')}, {info.get('epochs', '?')} epochs), weight pruning, on\n"
                 f"{info.get('dataset_words', dataset)}", fontsize=10)
    return fig


def conv_layers_figure(results: Mapping, dataset: str) -> Figure:
    """Where the time goes: per batch size a panel of stacked bars, one bar per (sparsity, format),
    one segment per layer role (the per-layer times of bench.report.layers)."""
    from bench.report.layers import ROLES

    recs = [r for r in results["layers"] if r["dataset"] == dataset]
    formats = list(dict.fromkeys(r["format"] for r in recs))
    sparsities = sorted({r["sparsity"] for r in recs})
    batches = sorted({r["batch"] for r in recs})
    roles = [role for role in ROLES if any(r["role"] == role for r in recs)]
    colors = dict(zip(ROLES, ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c8c8c",
                              "#da8bc3")))
    fig = Figure(figsize=(4.6 * len(batches) + 1.2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(batches), squeeze=False)[0]
    width = 0.8 / len(formats)
    for ax, batch in zip(axes, batches):
        tallest = 0.0
        for k, fmt in enumerate(formats):
            xs = [i + (k - (len(formats) - 1) / 2) * width for i in range(len(sparsities))]
            bottom = [0.0] * len(sparsities)
            for role in roles:
                key = (batch, fmt, role)
                ms = [max(0.0, 1e3 * sum(r["median_s"] for r in recs  # a noisy negative difference: drawn as 0
                                         if (r["batch"], r["format"], r["role"]) == key and r["sparsity"] == s))
                      for s in sparsities]
                ax.bar(xs, ms, width * 0.92, bottom=bottom, color=colors[role], edgecolor="white", linewidth=0.4,
                       hatch="" if k == 0 else "//", label=role if k == 0 else None)
                bottom = [b + m for b, m in zip(bottom, ms)]
            for x, top in zip(xs, bottom):
                ax.text(x, top, fmt.replace("sparse_conv", "sparse"), rotation=90, ha="center", va="bottom",
                        fontsize=6.5)
            tallest = max([tallest, *bottom])
        ax.set_xticks(range(len(sparsities)), [f"{s:g}" for s in sparsities])
        ax.set_xlabel("sparsity (weight pruning per layer)")
        ax.set_ylabel("ms per call, summed over layers")
        ax.set_title(f"batch {batch}", fontsize=10)
        ax.set_ylim(0, 1.2 * tallest or 1.0)  # room for the bars' labels (margins() left none at times)
        ax.grid(axis="y", alpha=0.3)
    # beside the panels, not on them: inside, it covered the tallest dense bars
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="outside right center", title="layer role",
               title_fontsize=7)
    fig.suptitle(f"MobileNetV2 on {(results.get('conv') or {}).get(dataset, {}).get('dataset_words', dataset)}\n"
                 f"where the time goes: {' vs '.join(formats)} (hatched: {formats[-1]}); a role whose layers "
                 "sum below 0 (noise) is drawn as 0", fontsize=9)
    return fig
