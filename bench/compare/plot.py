"""Figures of a comparison: ratio B/A per cell, on a log axis, with the noise floor shaded.

- :func:`overview_figure`: one panel per batch size, one row per format, a dot per cell
  (green faster, red slower, grey same), the geometric mean as a black bar;
- in both, a black ring marks a cell that either run's report flags (:mod:`bench.report.noise`);
- :func:`detail_figure`: one dataset, a panel per (method, batch), ratio against sparsity per
  format (one-shot cells), hollow markers where the cell is the same within noise.

Pure: a comparison dict in, a matplotlib Figure out (no pyplot, no files).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from bench.report.plots.records import group_by
from bench.report.plots.style import (
    WIDTH_IN,
    dataset_title,
    figure_legend,
    log_axis,
    sparsity_axis,
)

__all__ = ["FLAGGED_LABEL", "VERDICT_COLORS", "detail_figure", "figure_names", "overview_figure"]

VERDICT_COLORS = {"faster": "tab:green", "same": "tab:gray", "slower": "tab:red"}
FLAGGED_LABEL = "ringed: flagged in its run's report (measure again)"


def _ratio_limits(ratios, floor: float) -> tuple[float, float]:
    lo = min(min(ratios), math.exp(-floor)) / 1.15
    hi = max(max(ratios), math.exp(floor)) * 1.15
    return lo, hi


def _ratio_axis(ax, lo: float, hi: float, axis: str) -> None:
    """Log ratio axis labelled 1, 2, 5 x 10^k; decades only when it spans more than 200x (labels would collide)."""
    getattr(ax, f"set_{axis}lim")(lo, hi)
    log_axis(ax, "{:g}×", axis=axis)
    if hi / lo > 200:
        getattr(ax, f"{axis}axis").set_major_locator(LogLocator(subs=(1.0,)))


def _floor_band(ax, floor: float, axis: str = "y") -> None:
    span = ax.axhspan if axis == "y" else ax.axvspan
    line = ax.axhline if axis == "y" else ax.axvline
    span(math.exp(-floor), math.exp(floor), color="0.85", zorder=0, label=f"same within the ±{100 * floor:g}% floor")
    line(1.0, color="black", linewidth=0.8, zorder=0.5)


def overview_figure(cmp: Mapping, styles: Mapping | None = None) -> Figure:
    """Every paired cell: rows formats, panels batch sizes, x the ratio B/A (log)."""
    cells = cmp["cells"]
    floor = cmp["noise"]["floor"]
    formats = [r["format"] for r in cmp["summary"]["by_format"]]
    batches = [r["batch"] for r in cmp["summary"]["by_batch"]]
    means = {(r["format"], r["batch"]): r["geomean_ratio"] for r in cmp["summary"]["by_format_batch"]}
    fig = Figure(figsize=(WIDTH_IN, 1.2 + 0.45 * len(formats) + 0.8), layout="constrained")
    axes = list(fig.subplots(1, len(batches), sharey=True, squeeze=False).ravel())
    lo, hi = _ratio_limits([c["ratio"] for c in cells], floor)
    # spread a format's cells vertically by their rank in the row, so equal ratios do not hide each other
    for ax, batch in zip(axes, batches):
        _floor_band(ax, floor, axis="x")
        for y, fmt in enumerate(formats):
            row = sorted((c for c in cells if c["format"] == fmt and c["batch"] == batch),
                         key=lambda c: (c["dataset"], c["method"], c["stage"], c["sparsity"]))
            if not row:
                continue
            offsets = np.linspace(-0.3, 0.3, len(row)) if len(row) > 1 else np.zeros(1)
            for verdict, color in VERDICT_COLORS.items():
                picked = [(c["ratio"], y + o) for c, o in zip(row, offsets) if c["verdict"] == verdict]
                if picked:
                    xs, ys = zip(*picked)
                    ax.scatter(xs, ys, s=14, color=color, alpha=0.75, linewidths=0, zorder=2,
                               label=f"B {verdict}" if verdict != "same" else "same within noise")
            ringed = [(c["ratio"], y + o) for c, o in zip(row, offsets) if c.get("flag_a") or c.get("flag_b")]
            if ringed:
                xs, ys = zip(*ringed)
                ax.scatter(xs, ys, s=46, facecolors="none", edgecolors="black", linewidths=0.8, zorder=2.5,
                           label=FLAGGED_LABEL)
            ax.plot([means[fmt, batch]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=2.2, zorder=3,
                    label="geometric mean")
        _ratio_axis(ax, lo, hi, "x")
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("B / A (below 1: B faster)")
        ax.set_yticks(range(len(formats)), formats)
        ax.set_ylim(len(formats) - 0.5, -0.5)
        if styles:
            for tick, fmt in zip(ax.get_yticklabels(), formats):
                tick.set_color(styles.get(fmt, ("black",))[0])
    a, b = cmp["run_a"]["name"], cmp["run_b"]["name"]
    machine = " (different machines: ratios compare machines, not code)" if cmp["setup"]["same_machine"] is False \
        else ""
    fig.suptitle(f"{b} against {a}: ratio of medians per cell{machine}")
    figure_legend(fig, axes)
    return fig


def detail_figure(cmp: Mapping, dataset: str, styles: Mapping) -> Figure:
    """One dataset's one-shot cells: a panel per (method, batch), ratio B/A against sparsity per format."""
    cells = [c for c in cmp["cells"] if c["dataset"] == dataset and c["stage"] == "oneshot"]
    if not cells:
        raise ValueError(f"no one-shot cell of dataset {dataset!r} in the comparison")
    floor = cmp["noise"]["floor"]
    methods = sorted({c["method"] for c in cells})
    batches = sorted({c["batch"] for c in cells})
    formats = [r["format"] for r in cmp["summary"]["by_format"]]
    fig = Figure(figsize=(WIDTH_IN, 3.6 * len(methods) + 1.2), layout="constrained")
    grid = fig.subplots(len(methods), len(batches), sharey=True, squeeze=False)
    lo, hi = _ratio_limits([c["ratio"] for c in cells], floor)
    by = group_by(cells, "method", "batch")
    for i, method in enumerate(methods):
        for j, batch in enumerate(batches):
            ax = grid[i][j]
            _floor_band(ax, floor)
            group = by.get((method, batch), [])
            for fmt, rows in sorted(group_by(group, "format").items(), key=lambda kv: formats.index(kv[0])):
                rows = sorted(rows, key=lambda c: c["sparsity"])
                color, marker = styles.get(fmt, ("black", "o"))
                marker = marker or "o"  # the baseline is drawn as a plain line in the report; here it needs markers
                xs = [c["sparsity"] for c in rows]
                ax.plot(xs, [c["ratio"] for c in rows], color=color, linewidth=1.2, zorder=2, label=fmt)
                for c in rows:
                    if c.get("flag_a") or c.get("flag_b"):
                        ax.plot([c["sparsity"]], [c["ratio"]], marker="o", markersize=13, linestyle="none",
                                markerfacecolor="none", markeredgecolor="black", markeredgewidth=0.8, zorder=2.5,
                                label=FLAGGED_LABEL)
                    same = c["verdict"] == "same"
                    ax.plot([c["sparsity"]], [c["ratio"]], marker=marker, color=color, markersize=6, zorder=3,
                            markerfacecolor="white" if same else color, linestyle="none")
            _ratio_axis(ax, lo, hi, "y")
            sparsity_axis(ax, [c["sparsity"] for c in cells], spread=True)
            ax.set_title(f"{method} pruning, batch {batch}")
            if j == 0:
                ax.set_ylabel("B / A (below 1: B faster)")
    axes = [ax for row in grid for ax in row]
    axes[0].plot([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                 label="hollow: same within noise")
    figure_legend(fig, axes)
    fig.suptitle(f"{dataset_title(dataset)}, one-shot: {cmp['run_b']['name']} against {cmp['run_a']['name']}")
    return fig


def figure_names(cmp: Mapping, styles_results: Mapping) -> list[tuple[str, object]]:
    """``[(file stem, make_figure)]``: ``comparison`` and ``comparison-<dataset>`` per dataset with one-shot cells."""
    from bench.report.plots.style import file_stem, format_styles

    styles = format_styles(styles_results)
    names = [("comparison", lambda: overview_figure(cmp, styles))]
    for d in sorted({c["dataset"] for c in cmp["cells"] if c["stage"] == "oneshot"}):
        names.append((f"comparison-{file_stem(d)}", lambda d=d: detail_figure(cmp, d, styles)))
    return names

