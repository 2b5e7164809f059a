"""Accuracy against measured latency of the recovered networks: which network, on which format, to run.

The same contract as the other figure modules (a run's ``results`` dict in, a new Figure out,
no I/O). Each panel marks the Pareto front (the points no other point beats on both latency and
accuracy: the fastest network for its accuracy) and names the fastest network within
``NEAR_DENSE_PT`` points of the dense accuracy, the usual operating point. The accuracy axis is
spaced by the log of the error (as the sparsity axes are by the log of the weights left), so a
75% outlier no longer squeezes the 97-99% band where the choice is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.report.formats import baseline_format, method_order
from bench.report.plots.labels import PointLabel, layout_renderer, place_labels
from bench.report.plots.records import checked_records, pick_threads
from bench.report.plots.style import (
    batch_panels,
    dataset_title,
    figure_legend,
    format_order,
    format_styles,
    log_axis,
    method_lines,
    percent,
    remaining_log,
    remaining_log_inverse,
    threads_label,
    time_unit,
)
from bench.report.stages import STAGE_COLORS, STAGE_LABELS, STAGES, dense_latency, record_stage

__all__ = ["BEST_BOX_GID", "NEAR_DENSE_PT", "OperatingPoint", "accuracy_error_axis", "best_operating_point",
           "pareto_front", "tradeoff_figure"]

NEAR_DENSE_PT = 1.0  # "as accurate as dense": within this many percentage points of its accuracy
BEST_BOX_GID = "best-operating-point"  # the corner text's gid, for whoever reads the figure back
FRONT_STYLE = {"color": "0.55", "linewidth": 5, "alpha": 0.35, "solid_capstyle": "round", "zorder": 1.0}
BEST_RING = {"marker": "o", "markersize": 17, "markerfacecolor": "none", "markeredgecolor": "tab:red",
             "markeredgewidth": 2.0, "linestyle": "none", "zorder": 3.5}
LABEL_BACKING = {"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none", "alpha": 0.7}
# accuracy ticks sit at round errors; the rounder ones win where they crowd (1, 2, 5 before 3, ...)
ERROR_TICK_MANTISSAS = ((1, 2, 5), (3,), (1.5, 4), (7, 2.5, 1.2, 6, 8))


class OperatingPoint(NamedTuple):
    """One network and the fastest format timed for it; ``method`` is None for the dense network."""

    method: str | None
    stage: str | None
    sparsity: float
    seconds: float
    format: str
    choice: str | None  # the candidate an adaptive format ran (records' auto_choice)
    accuracy: float  # %


def pareto_front(seconds: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (as fast or faster and as accurate or more,
    better in one), fastest first. Equal points are all kept."""
    t, a = np.asarray(seconds, dtype=float), np.asarray(accuracy, dtype=float)
    keep = [i for i in range(len(t))
            if not np.any((t <= t[i]) & (a >= a[i]) & ((t < t[i]) | (a > a[i])))]
    return sorted(keep, key=lambda i: (t[i], -a[i]))


def best_operating_point(points: Sequence[OperatingPoint], reference: float,
                         tolerance: float = NEAR_DENSE_PT) -> OperatingPoint | None:
    """The fastest point at least ``reference - tolerance`` accurate (the more accurate on a tie)."""
    near = [p for p in points if p.accuracy >= reference - tolerance]
    return min(near, key=lambda p: (p.seconds, -p.accuracy), default=None)


def accuracy_error_axis(ax, accuracies: Sequence[float]) -> None:
    """y spaced by log10 of the error (100 - accuracy %), accuracy up, ticks labelled in accuracy."""
    ax.set_yscale("function", functions=(lambda a: remaining_log(np.asarray(a) / 100),
                                         lambda t: 100 * remaining_log_inverse(t)))
    lo, hi = remaining_log(np.array([min(accuracies), max(accuracies)]) / 100)
    pad = max(0.04, 0.08 * (hi - lo))
    lo, hi = lo - pad, hi + pad
    ax.set_ylim(100 * remaining_log_inverse(lo), 100 * remaining_log_inverse(hi))
    chosen: list[float] = []
    for mantissas in ERROR_TICK_MANTISSAS:
        for exponent in range(-3, 3):
            for m in mantissas:
                err = m * 10.0**exponent
                t = -np.log10(err / 100)
                if err < 100 and lo <= t <= hi and all(abs(t - c) >= (hi - lo) / 8 for c in chosen):
                    chosen.append(t)
    ax.yaxis.set_major_locator(FixedLocator(sorted(100 * remaining_log_inverse(np.array(chosen)))))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{float(f'{v:.4g}'):g}"))
    ax.set_ylabel("test accuracy (%, spaced by log of the error)")


def tradeoff_figure(results: Mapping, dataset: str, *, threads: int | None = None) -> Figure:
    """Test accuracy against measured latency of the recovered networks, one panel per batch they were timed at.

    A point is one (method, stage, sparsity): x is the median of the fastest format timed for it
    and its marker names that format; the points of one (method, stage) are joined in sparsity
    order. The star is the dense network run by the dense format (see
    :func:`bench.report.stages.dense_latency`) at its dense accuracy. The grey staircase is the
    Pareto front (:func:`pareto_front`; its points are labelled with their sparsity in bold, other
    points where their label fits), and the red ring the fastest point within ``NEAR_DENSE_PT``
    of the dense accuracy (:func:`best_operating_point`), described in the panel's corner.

    Raises
    ------
    ValueError
        No fine-tuned or gradual latency records for ``dataset``, several thread
        counts and no ``threads``, or malformed records.
    """
    latency = [r for r in checked_records(results, "latency", stages=STAGES) if r["dataset"] == dataset]
    recovered = [r for r in latency if record_stage(r) != "oneshot"]
    if not recovered:
        raise ValueError(f"no fine-tuned or gradual latency records for {dataset!r}")
    recovered, threads = pick_threads(recovered, threads, f"the recovered latency records of {dataset!r}")
    latency = [r for r in latency if r["threads"] == threads]
    accuracy = {(r["method"], r["scope"], r["sparsity"], record_stage(r)): 100 * r["accuracy"]
                for r in checked_records(results, "accuracy", stages=STAGES) if r["dataset"] == dataset}
    model = next((m for m in checked_records(results, "models") if m["dataset"] == dataset), None)
    baseline = baseline_format(results)
    markers = {f: style[1] or "x" for f, style in format_styles(results).items()}  # the baseline has no marker
    lines = method_lines(results)
    fig, axes, batches = batch_panels(recovered)
    panels = []
    for ax, batch in zip(axes, batches):
        points = _fastest_points([r for r in recovered if r["batch"] == batch], accuracy, results)
        dense = dense_latency(latency, dataset, batch, baseline)
        if dense and model:
            points.append(OperatingPoint(None, None, 0.0, dense, baseline, None, 100 * model["dense_accuracy"]))
        ax.set_title(f"batch {batch}")
        if not points:
            ax.text(0.5, 0.5, "no accuracy records for the networks timed here", transform=ax.transAxes,
                    ha="center", va="center")
            continue
        scale, unit = time_unit([p.seconds for p in points])
        for (method, stage), curve in _curves(points).items():
            _tradeoff_curve(ax, curve, scale, method, stage, markers, lines.get(method, "-."))
        if dense and model:
            ax.plot([dense * scale], [points[-1].accuracy], marker="*", markersize=13, color="black",
                    linestyle="none", zorder=3, label=f"dense network, {baseline} format")
        front = [points[i] for i in pareto_front([p.seconds for p in points], [p.accuracy for p in points])]
        ax.plot([p.seconds * scale for p in front], [p.accuracy for p in front], drawstyle="steps-post",
                label="Pareto front: fastest for its accuracy", **FRONT_STYLE)
        reference = points[-1].accuracy if dense and model else max((p.accuracy for p in points), default=0.0)
        best = best_operating_point(points, reference)
        if best is not None:
            ax.plot([best.seconds * scale], [best.accuracy], label=f"fastest within {NEAR_DENSE_PT:g} pt of "
                    + ("dense" if dense and model else "the best"), **BEST_RING)
        for fmt in format_order({p.format for p in points if p.method is not None}, results):
            ax.plot([], [], marker=markers[fmt], color="black", linestyle="none", label=f"fastest: {fmt}")
        log_axis(ax, "{:g}", axis="x")
        xs = np.log10([p.seconds * scale for p in points])
        span = max(0.3, xs.max() - xs.min())
        ax.set_xlim(10 ** (xs.min() - 0.06 * span), 10 ** (xs.max() + 0.12 * span))
        accuracy_error_axis(ax, [p.accuracy for p in points])
        ax.set_xlabel(f"median latency of the fastest format ({unit}, log scale)")
        panels.append((ax, points, front, best, scale, unit, dense if model else None))
    figure_legend(fig, axes, ncols=4)
    fig.suptitle(f"{dataset_title(dataset)}: accuracy against measured latency of the recovered networks, "
                 f"{threads_label(threads)} (labels: sparsity; bold: on the Pareto front)")
    renderer = layout_renderer(fig)  # the layout is final (labels and boxes stay out of it): place them
    for ax, points, front, best, scale, unit, dense in panels:
        obstacles = [_best_box(ax, best, scale, unit, dense, renderer)] if best is not None else []
        place_labels(ax, _labels(points, front, scale), obstacles=obstacles, marker_pt=9.0, renderer=renderer)
    return fig


# --- helpers ---------------------------------------------------------------------------------

def _fastest_points(rows, accuracy: Mapping, results: Mapping) -> list[OperatingPoint]:
    """The fastest format's record per (method, stage, sparsity), in method, stage, sparsity order.

    Points without an accuracy record are left out: they have no place on an accuracy axis.
    Latency records carry no scope; recovered networks are timed at scope "layer".
    """
    fastest: dict = {}
    for r in rows:
        key = (r["method"], record_stage(r), r["sparsity"], r.get("scope", "layer"))
        if key not in fastest or r["median_s"] < fastest[key]["median_s"]:
            fastest[key] = r
    methods = method_order({k[0] for k in fastest}, results)
    points = []
    for key in sorted(fastest, key=lambda k: (methods.index(k[0]), STAGES.index(k[1]), k[2:])):
        method, stage, s, scope = key
        acc = accuracy.get((method, scope, s, stage))
        r = fastest[key]
        if acc is not None:
            points.append(OperatingPoint(method, stage, s, r["median_s"], r["format"], r.get("auto_choice"), acc))
    return points


def _curves(points) -> dict[tuple[str, str], list[OperatingPoint]]:
    curves: dict = {}
    for p in points:
        if p.method is not None:
            curves.setdefault((p.method, p.stage), []).append(p)
    return curves


def _tradeoff_curve(ax, points, scale: float, method: str, stage: str, markers: Mapping, line: str) -> None:
    """One (method, stage): a line through its points and a marker per fastest format."""
    color = STAGE_COLORS[stage]
    xs = [p.seconds * scale for p in points]
    ys = [p.accuracy for p in points]
    ax.plot(xs, ys, color=color, linestyle=line, zorder=2, label=f"{method} pruning, {STAGE_LABELS[stage]}")
    for p, x, y in zip(points, xs, ys):
        ax.plot([x], [y], marker=markers[p.format], color=color, markersize=7, linestyle="none", zorder=2.5)


def _labels(points, front, scale: float) -> list[PointLabel]:
    """Front points' labels first (bold, always placed), then the others' where they fit."""
    def label(p, on_front):
        color = "black" if p.method is None else STAGE_COLORS[p.stage]
        style = {"fontsize": 8 if on_front else 7, "color": color, "fontweight": "bold" if on_front else "normal",
                 "bbox": LABEL_BACKING}
        return PointLabel(p.seconds * scale, p.accuracy, "dense" if p.method is None else percent(p.sparsity),
                          style, optional=not on_front)
    return [label(p, True) for p in front] + [label(p, False) for p in points if p not in front]


def _best_box(ax, best: OperatingPoint, scale: float, unit: str, dense: float | None, renderer):
    """The corner text naming the best operating point; returns its display box (labels avoid it)."""
    if best.method is None:
        what = f"the dense network itself ({best.format}, {best.seconds * scale:.3g} {unit})"
    else:
        fmt = best.format + (f" (ran {best.choice})" if best.choice else "")
        what = (f"{best.method} pruning, {STAGE_LABELS[best.stage]}, {percent(best.sparsity)} sparse\n"
                f"on {fmt}: {best.seconds * scale:.3g} {unit}, {best.accuracy:.2f}%"
                + (f", {dense / best.seconds:.3g}× faster than dense" if dense else ""))
    text = ax.text(0.985, 0.025, f"red ring, fastest within {NEAR_DENSE_PT:g} pt of "
                   f"{'dense' if dense else 'the best'}:\n{what}", transform=ax.transAxes, ha="right",
                   va="bottom", fontsize=8, zorder=4, gid=BEST_BOX_GID,
                   bbox={"boxstyle": "round,pad=0.35", "facecolor": "white", "edgecolor": "tab:red", "alpha": 0.9})
    text.set_in_layout(False)
    return text.get_window_extent(renderer).padded(0.4 * 8 * ax.figure.dpi / 72)
