"""Accuracy-recovery figures for a sparsenet report: one-shot, fine-tuned and gradual networks.

The same contract as :mod:`bench.report.plots.oneshot` (a run's ``results`` dict in, a new
Figure out, no I/O), sharing its record checks, styles and axes. Unlike the figures there, these
read the recovered stages ("finetuned", "gradual"; see :mod:`bench.report.stages`) next to the
one-shot records. :func:`bench.report.plots.figure_names` lists them through
:func:`recovery_figure_names`, which also lists the accuracy-against-latency figures of
:mod:`bench.report.plots.tradeoff`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from bench.report.formats import method_order
from bench.report.plots.records import checked_records, group_by, xy_points
from bench.report.plots.style import (
    SCOPE_LINES,
    SPARSITY_TICKS,
    WIDTH_IN,
    X_LABELS,
    dataset_title,
    dense_accuracy_lines,
    figure_legend,
    file_stem,
    percent,
    sparsity_axis,
    stage_marker,
    style_rank,
)
from bench.report.plots.tradeoff import tradeoff_figure
from bench.report.stages import STAGE_COLORS, STAGE_LABELS, STAGES, record_stage, stage_budgets

__all__ = ["recovery_figure", "recovery_figure_names"]

_RECOVERY_FROM = 0.5  # the recovery figure starts here, or at the lowest recovered sparsity if lower


def recovery_figure(results: Mapping, dataset: str) -> Figure:
    """Test accuracy per stage (one-shot, fine-tuned, gradual) against requested sparsity, one panel per method.

    One-shot lines keep only the scopes the recovered stages used, and the x axis (spread, as in
    the accuracy figure's zoom) runs from 50% (or the lowest recovered sparsity) to the highest
    recovered one, so every line compares like with like. The subtitle gives each stage's epochs.
    Stages have their own markers, and each later stage is drawn wider and under the earlier ones,
    so a gradual line that matches the fine-tuned one shows as a rim around it instead of hiding it.

    Raises
    ------
    ValueError
        No fine-tuned or gradual accuracy records for ``dataset``, or malformed records.
    """
    rows = [r for r in checked_records(results, "accuracy", stages=STAGES) if r["dataset"] == dataset]
    recovered = [r for r in rows if record_stage(r) != "oneshot"]
    if not recovered:
        raise ValueError(f"no fine-tuned or gradual accuracy records for {dataset!r}; "
                         f"datasets with some: {sorted(_recovered_datasets(results))}")
    scopes = sorted({r["scope"] for r in recovered}, key=lambda sc: style_rank(sc, SCOPE_LINES))
    start = min(_RECOVERY_FROM, min(r["sparsity"] for r in recovered))
    stop = max(r["sparsity"] for r in recovered)
    rows = [r for r in rows if r["scope"] in scopes and start <= r["sparsity"] <= stop]
    methods = method_order({r["method"] for r in recovered}, results)
    fig = Figure(figsize=(WIDTH_IN, 5.6), layout="constrained")
    # one accuracy scale for every method's panel, so that the methods compare at a glance
    axes = list(fig.subplots(1, len(methods), squeeze=False, sharey=True)[0])
    models = [m for m in checked_records(results, "models") if m["dataset"] == dataset]
    ys = []
    for ax, method in zip(axes, methods):
        ys.extend(dense_accuracy_lines([ax], models))
        for stage in STAGES:
            for scope in scopes:
                group = [r for r in rows if (r["method"], r["scope"], record_stage(r)) == (method, scope, stage)]
                if not group:
                    continue
                xs, acc = xy_points(group, "sparsity", "accuracy", f"accuracy of {dataset!r}/{method}/{scope}/{stage}")
                label = STAGE_LABELS[stage] + (f", {scope} scope" if len(scopes) > 1 else "")
                ax.plot(xs, 100 * acc, color=STAGE_COLORS[stage], label=label,
                        linestyle=SCOPE_LINES.get(scope, "-.") if len(scopes) > 1 else "-", **_stage_line(stage))
                ys.extend(100 * acc)
        ax.set_title(f"{method} pruning")
        ax.grid(True, alpha=0.3)
        sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True, label=X_LABELS["sparsity"], start=start)
        ax.xaxis.set_major_locator(FixedLocator(sorted(set(SPARSITY_TICKS) | {r["sparsity"] for r in recovered})))
    pad = max(0.5, 0.06 * (max(ys) - min(ys)))
    axes[0].set_ylim(max(0.0, min(ys) - pad), min(100.0, max(ys) + pad))
    axes[0].set_ylabel("test accuracy (%)")
    figure_legend(fig, axes)
    budgets = stage_budgets(results, dataset)
    fig.suptitle(f"{dataset_title(dataset)}: test accuracy after one-shot pruning, fine-tuning and gradual pruning\n"
                 + " · ".join([f"dense {budgets['dense']}"]
                              + [f"{STAGE_LABELS[st]} {budgets[st]}" for st in STAGES[1:] if st in budgets]))
    return fig


def recovery_figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """The recovery- and tradeoff- entries of :func:`bench.report.plots.figure_names` (stems explained there)."""
    recovered = _recovered_datasets(results)
    names = [(f"recovery-{file_stem(d)}", partial(recovery_figure, results, d)) for d in sorted(recovered)]
    timed_recovered = [r for r in checked_records(results, "latency", stages=STAGES[1:]) if r["dataset"] in recovered]
    for d, group in sorted(group_by(timed_recovered, "dataset").items()):
        found = sorted({r["threads"] for r in group})
        names += [(f"tradeoff-{file_stem(d)}" + (f"-t{t}" if len(found) > 1 else ""),
                   partial(tradeoff_figure, results, d, threads=t)) for t in found]
    return names


# --- helpers ---------------------------------------------------------------------------------

def _stage_line(stage: str) -> dict:
    """Marker and width of a stage's line: later stages wider, hollow, lighter and underneath."""
    i = STAGES.index(stage)
    return {"marker": stage_marker(stage), "markersize": 5 + 2 * i, "linewidth": 1.4 + 0.9 * i,
            "markerfacecolor": STAGE_COLORS[stage] if i < 2 else "white", "alpha": 1.0 - 0.15 * max(0, i - 1),
            "zorder": 3.0 - 0.1 * i}


def _recovered_datasets(results: Mapping) -> set[str]:
    return {r["dataset"] for r in checked_records(results, "accuracy", stages=STAGES[1:])}


def _stage_line(stage: str) -> dict:
    """Marker and width of a stage's line: later stages wider, hollow, lighter and underneath."""
    i = STAGES.index(stage)
    return {"marker": stage_marker(stage), "markersize": 5 + 2 * i, "linewidth": 1.4 + 0.9 * i,
            "markerfacecolor": STAGE_COLORS[stage] if i < 2 else "white", "alpha": 1.0 - 0.15 * max(0, i - 1),
            "zorder": 3.0 - 0.1 * i}


def _recovered_datasets(results: Mapping) -> set[str]:
    return {r["dataset"] for r in checked_records(results, "accuracy", stages=STAGES[1:])}


def _fastest_points(rows, accuracy: Mapping, results: Mapping) -> dict[tuple[str, str], list[tuple]]:
    """(method, stage) -> [(sparsity, fastest median_s, its format, accuracy %)] in sparsity order.

    Points without an accuracy record are left out: they have no place on an accuracy axis.
    Latency records carry no scope; recovered networks are timed at scope "layer".
    """
    fastest: dict = {}
    for r in rows:
        key = (r["method"], record_stage(r), r["sparsity"], r.get("scope", "layer"))
        if key not in fastest or r["median_s"] < fastest[key]["median_s"]:
            fastest[key] = r
    curves: dict = {}
    methods = method_order({k[0] for k in fastest}, results)
    for key in sorted(fastest, key=lambda k: (methods.index(k[0]), STAGES.index(k[1]), k[2:])):
        method, stage, s, scope = key
        acc = accuracy.get((method, scope, s, stage))
        if acc is not None:
            curves.setdefault((method, stage), []).append((s, fastest[key]["median_s"], fastest[key]["format"], acc))
    return curves


def _tradeoff_curve(ax, points, scale: float, method: str, stage: str, markers: Mapping, line: str) -> None:
    """One (method, stage): a line through its points, a marker per fastest format, sparsity labels."""
    color = STAGE_COLORS[stage]
    xs = [p[1] * scale for p in points]
    ys = [p[3] for p in points]
    ax.plot(xs, ys, color=color, linestyle=line, label=f"{method} pruning, "
            f"{STAGE_LABELS[stage]}")
    dy = 5 if stage == "finetuned" else -11  # fine-tuned labels above the points, gradual below
    for (s, _, fmt, _), x, y in zip(points, xs, ys):
        ax.plot([x], [y], marker=markers[fmt], color=color, markersize=7, linestyle="none")
        ax.annotate(percent(s), (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8, color=color)
