"""Accuracy-recovery figures for a sparsenet report: one-shot, fine-tuned and gradual networks.

The same contract as ``bench.plots`` (a run's ``results`` dict in, a new Figure out, no I/O),
whose record checks, styles and axes these figures share. Unlike the figures there, these read
the recovered stages ("finetuned", "gradual"; see ``bench.stages``) next to the one-shot records.
``bench.plots.figure_names`` lists them through :func:`recovery_figure_names`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from bench.plots import (
    _METHOD_STYLES,
    _SCOPE_LINES,
    _SPARSITY_TICKS,
    _WIDTH_IN,
    _X_LABELS,
    _batch_panels,
    _dense_accuracy_lines,
    _figure_legend,
    _format_order,
    _format_styles,
    _group,
    _log_axis,
    _percent,
    _pick_threads,
    _points,
    _rank,
    _records,
    _sparsity_axis,
    _stem,
    _threads,
    _time_unit,
    _title,
)
from bench.stages import STAGE_LABELS, STAGES, dense_latency, record_stage, stage_budgets

__all__ = ["recovery_figure", "recovery_figure_names", "tradeoff_figure"]

_STAGE_COLORS = {"oneshot": "tab:gray", "finetuned": "tab:blue", "gradual": "tab:green"}
_METHOD_LINES = {"weight": "-", "unit": "--"}
_RECOVERY_FROM = 0.5  # the recovery figure starts here, or at the lowest recovered sparsity if lower
_TRADEOFF_BATCHES = (1, 64)  # the batch sizes recovered networks are timed at


def recovery_figure(results: Mapping, dataset: str) -> Figure:
    """Test accuracy per stage (one-shot, fine-tuned, gradual) against requested sparsity, one panel per method.

    One-shot lines keep only the scopes the recovered stages used, and the x axis (spread, as in
    the accuracy figure's zoom) runs from 50% (or the lowest recovered sparsity) to the highest
    recovered one, so every line compares like with like. The subtitle gives each stage's epochs.

    Raises
    ------
    ValueError
        No fine-tuned or gradual accuracy records for ``dataset``, or malformed records.
    """
    rows = [r for r in _records(results, "accuracy", stages=STAGES) if r["dataset"] == dataset]
    recovered = [r for r in rows if record_stage(r) != "oneshot"]
    if not recovered:
        raise ValueError(f"no fine-tuned or gradual accuracy records for {dataset!r}; "
                         f"datasets with some: {sorted(_recovered_datasets(results))}")
    scopes = sorted({r["scope"] for r in recovered}, key=lambda sc: _rank(sc, _SCOPE_LINES))
    start = min(_RECOVERY_FROM, min(r["sparsity"] for r in recovered))
    stop = max(r["sparsity"] for r in recovered)
    rows = [r for r in rows if r["scope"] in scopes and start <= r["sparsity"] <= stop]
    methods = sorted({r["method"] for r in recovered}, key=lambda m: _rank(m, _METHOD_STYLES))
    fig = Figure(figsize=(_WIDTH_IN, 5.6), layout="constrained")
    axes = list(fig.subplots(1, len(methods), squeeze=False)[0])
    models = [m for m in _records(results, "models") if m["dataset"] == dataset]
    for ax, method in zip(axes, methods):
        ys = _dense_accuracy_lines([ax], models)
        for stage in STAGES:
            for scope in scopes:
                group = [r for r in rows if (r["method"], r["scope"], record_stage(r)) == (method, scope, stage)]
                if not group:
                    continue
                xs, acc = _points(group, "sparsity", "accuracy", f"accuracy of {dataset!r}/{method}/{scope}/{stage}")
                label = STAGE_LABELS[stage] + (f", {scope} scope" if len(scopes) > 1 else "")
                ax.plot(xs, 100 * acc, color=_STAGE_COLORS[stage], marker="o", markersize=5,
                        linestyle=_SCOPE_LINES.get(scope, "-.") if len(scopes) > 1 else "-", label=label)
                ys.extend(100 * acc)
        pad = max(0.5, 0.06 * (max(ys) - min(ys)))
        ax.set_ylim(max(0.0, min(ys) - pad), min(100.0, max(ys) + pad))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{method} pruning")
        ax.grid(True, alpha=0.3)
        _sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True, label=_X_LABELS["sparsity"], start=start)
        ax.xaxis.set_major_locator(FixedLocator(sorted(set(_SPARSITY_TICKS) | {r["sparsity"] for r in recovered})))
    _figure_legend(fig, axes)
    budgets = stage_budgets(results, dataset)
    fig.suptitle(f"{_title(dataset)}: test accuracy after one-shot pruning, fine-tuning and gradual pruning\n"
                 + " · ".join([f"dense {budgets['dense']}"]
                              + [f"{STAGE_LABELS[st]} {budgets[st]}" for st in STAGES[1:] if st in budgets]))
    return fig


def tradeoff_figure(results: Mapping, dataset: str, *, threads: int | None = None) -> Figure:
    """Test accuracy against measured latency of the recovered networks, one panel per batch (1, 64).

    A point is one (method, stage, sparsity): x is the median of the fastest format timed for it,
    its marker names that format and its label the sparsity; the points of one (method, stage)
    are joined in sparsity order. The star is the dense network run by the dense format
    (see ``bench.stages.dense_latency``) at its dense accuracy.

    Raises
    ------
    ValueError
        No fine-tuned or gradual latency records at batch 1 or 64 for ``dataset``, several thread
        counts and no ``threads``, or malformed records.
    """
    latency = [r for r in _records(results, "latency", stages=STAGES) if r["dataset"] == dataset]
    recovered = [r for r in latency if record_stage(r) != "oneshot" and r["batch"] in _TRADEOFF_BATCHES]
    if not recovered:
        raise ValueError(f"no fine-tuned or gradual latency records at batch {_TRADEOFF_BATCHES} for {dataset!r}")
    recovered, threads = _pick_threads(recovered, threads, f"the recovered latency records of {dataset!r}")
    latency = [r for r in latency if r["threads"] == threads]
    accuracy = {(r["method"], r["scope"], r["sparsity"], record_stage(r)): 100 * r["accuracy"]
                for r in _records(results, "accuracy", stages=STAGES) if r["dataset"] == dataset}
    model = next((m for m in _records(results, "models") if m["dataset"] == dataset), None)
    markers = {f: style[1] or "x" for f, style in _format_styles(results).items()}  # dense has no marker elsewhere
    fig, axes, batches = _batch_panels(recovered)
    for ax, batch in zip(axes, batches):
        curves = _fastest_points([r for r in recovered if r["batch"] == batch], accuracy)
        dense = dense_latency(latency, dataset, batch)
        seconds = [p[1] for points in curves.values() for p in points] + ([dense] if dense else [])
        scale, unit = _time_unit(min(seconds, default=1.0))
        for (method, stage), points in curves.items():
            _tradeoff_curve(ax, points, scale, method, stage, markers)
        if dense and model:
            ax.plot([dense * scale], [100 * model["dense_accuracy"]], marker="*", markersize=13, color="black",
                    linestyle="none", label="dense network, dense format")
            ax.annotate("dense", (dense * scale, 100 * model["dense_accuracy"]), textcoords="offset points",
                        xytext=(-8, 4), ha="right", fontsize=8)
        for fmt in _format_order({p[2] for points in curves.values() for p in points}):
            ax.plot([], [], marker=markers[fmt], color="black", linestyle="none", label=f"fastest: {fmt}")
        _log_axis(ax, "{:g}", axis="x")
        ax.set_xlabel(f"median latency of the fastest format ({unit}, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"batch {batch}")
    _figure_legend(fig, axes)
    fig.suptitle(f"{_title(dataset)}: accuracy against measured latency of the recovered networks, "
                 f"{_threads(threads)} (labels: sparsity)")
    return fig


def recovery_figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """The recovery- and tradeoff- entries of ``bench.plots.figure_names`` (stems explained there)."""
    recovered = _recovered_datasets(results)
    names = [(f"recovery-{_stem(d)}", partial(recovery_figure, results, d)) for d in sorted(recovered)]
    timed_recovered = [r for r in _records(results, "latency", stages=STAGES[1:])
                       if r["dataset"] in recovered and r["batch"] in _TRADEOFF_BATCHES]
    for d, group in sorted(_group(timed_recovered, "dataset").items()):
        found = sorted({r["threads"] for r in group})
        names += [(f"tradeoff-{_stem(d)}" + (f"-t{t}" if len(found) > 1 else ""),
                   partial(tradeoff_figure, results, d, threads=t)) for t in found]
    return names


# --- helpers ---------------------------------------------------------------------------------

def _recovered_datasets(results: Mapping) -> set[str]:
    return {r["dataset"] for r in _records(results, "accuracy", stages=STAGES[1:])}


def _fastest_points(rows, accuracy: Mapping) -> dict[tuple[str, str], list[tuple]]:
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
    for key in sorted(fastest, key=lambda k: (_rank(k[0], _METHOD_STYLES), STAGES.index(k[1]), k[2:])):
        method, stage, s, scope = key
        acc = accuracy.get((method, scope, s, stage))
        if acc is not None:
            curves.setdefault((method, stage), []).append((s, fastest[key]["median_s"], fastest[key]["format"], acc))
    return curves


def _tradeoff_curve(ax, points, scale: float, method: str, stage: str, markers: Mapping) -> None:
    """One (method, stage): a line through its points, a marker per fastest format, sparsity labels."""
    color = _STAGE_COLORS[stage]
    xs = [p[1] * scale for p in points]
    ys = [p[3] for p in points]
    ax.plot(xs, ys, color=color, linestyle=_METHOD_LINES.get(method, "-."), label=f"{method} pruning, "
            f"{STAGE_LABELS[stage]}")
    dy = 5 if stage == "finetuned" else -11  # fine-tuned labels above the points, gradual below
    for (s, _, fmt, _), x, y in zip(points, xs, ys):
        ax.plot([x], [y], marker=markers[fmt], color=color, markersize=7, linestyle="none")
        ax.annotate(_percent(s), (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8, color=color)
