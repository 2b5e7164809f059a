"""Colours, markers, axes and labels shared by every figure of a report.

Styles come from the registries' self-descriptions (:mod:`bench.report.formats`), so a newly
registered format or pruning method is drawn in its own colour without editing this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from bench.report.formats import format_info, method_info
from bench.report.formats import format_order as _registry_order
from bench.report.plots.records import checked_records
from bench.report.stages import STAGES

__all__ = ["ADAPTIVE_BAND", "BASELINE_LINE", "DATASET_TITLES", "EXTRA_STYLES", "MAX_COLUMNS", "MIN_REMAINING",
           "PANEL_HEIGHT_IN", "SCOPE_LINES", "SPARSITY_MINOR_TICKS", "SPARSITY_TICKS", "STAGE_MARKERS", "TIME_UNITS",
           "WIDTH_IN", "X_LABELS", "adaptive_series", "assign_styles", "baseline_reference", "batch_panels",
           "dataset_title", "dense_accuracy_lines", "figure_legend", "file_stem", "format_order", "format_styles",
           "log_axis", "method_lines", "method_styles", "panels", "percent", "remaining_log",
           "remaining_log_inverse", "sparsity_axis", "stage_marker", "style_rank", "threads_label", "time_unit"]

# Formats and methods bring their own colour and marker (their registries' ``style``); a name
# without one gets the next free EXTRA_STYLES entry in sorted order, computed over the whole
# results dict so a format looks the same in every figure.
EXTRA_STYLES = tuple(zip(
    ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"),
    ("v", "P", "X", "*", "<", ">"),
))
SCOPE_LINES = {"layer": "-", "global": ":"}
STAGE_MARKERS = ("o", "s", "^", "D", "v")  # in sparsenet.recover.STAGES order
# an adaptive format lies on the candidate it ran: drawn as a band under that line, not over it
ADAPTIVE_BAND = {"linewidth": 8, "alpha": 0.3, "solid_capstyle": "round", "zorder": 1.2}
BASELINE_LINE = {"color": "black", "linestyle": "--", "linewidth": 1.6, "zorder": 1.5}
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# ~1600 px wide at dpi 110.
WIDTH_IN = 14.5
PANEL_HEIGHT_IN = 4.4
MAX_COLUMNS = 3

# Sparsity grids crowd near 1 (90, 95, 97, 99%): on a linear axis those four points share a
# tenth of the width, yet that is where pruning gets interesting. Plotting -log10(1 - s), i.e.
# the fraction of weights *remaining* on a log scale, spaces 0, 25, 50, ..., 90, 95, 97, 99%
# almost evenly and still shows 0%. A logit axis would also spread the low end, which is
# empty, and cannot show 0%.
SPARSITY_TICKS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.999, 0.9999)
SPARSITY_MINOR_TICKS = (0.25, 0.6, 0.7)
MIN_REMAINING = 1e-6  # keeps s = 1 (everything pruned) finite on the spread axis
TIME_UNITS = ((1.0, "s"), (1e3, "ms"), (1e6, "µs"))
X_LABELS = {"achieved_sparsity": "achieved weight sparsity", "sparsity": "requested sparsity"}


def style_rank(name: str, known: Mapping) -> tuple:
    return (list(known).index(name), "") if name in known else (len(known), name)


def assign_styles(names, known: Mapping) -> dict[str, tuple[str, str]]:
    extra = sorted(n for n in names if n not in known)
    styles = {n: known[n] for n in names if n in known}
    styles.update({n: EXTRA_STYLES[i % len(EXTRA_STYLES)] for i, n in enumerate(extra)})
    return styles


def format_styles(results: Mapping) -> dict[str, tuple[str, str]]:
    """Colour and marker per format, fixed across every figure of one results dict."""
    formats = {r["format"] for t in ("latency", "size", "roofline") for r in checked_records(results, t, stages=STAGES)}
    known = {name: tuple(d["style"]) for name, d in format_info(results).items() if d.get("style")}
    return assign_styles(formats, known)


def format_order(formats, results: Mapping | None = None) -> list[str]:
    """Registry order (the baseline first), names the registry does not know after them."""
    return _registry_order(formats, results)


def method_styles(results: Mapping | None = None) -> dict[str, tuple[str, str]]:
    """Colour and marker per pruning method (its registry entry's style)."""
    return {m: tuple(d["style"][:2]) for m, d in method_info(results).items() if d.get("style")}


def method_lines(results: Mapping | None = None) -> dict[str, str]:
    """Line style per pruning method."""
    return {m: d["style"][2] for m, d in method_info(results).items() if d.get("style")}


def adaptive_series(ax, xs, ys, choices, fmt: str, styles: Mapping) -> None:
    """An adaptive format (one that runs one of its candidates): a wide translucent band *under* the
    line of the candidate it ran, so it hides nothing, and at each point a ring in its own colour
    shaped like that candidate's marker (``choices``, the records' ``auto_choice``, aligned with
    ``xs``; None where a record has none, drawn with the format's own marker)."""
    color, marker = styles[fmt]
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ax.plot(xs, ys, color=color, label=fmt, **ADAPTIVE_BAND)
    for choice in dict.fromkeys(choices):
        at = np.array([c == choice for c in choices], dtype=bool)
        if choice is None:
            ax.plot(xs[at], ys[at], linestyle="none", marker=marker, markersize=5, color=color, alpha=0.7)
            continue
        ring = (styles[choice][1] or "x") if choice in styles else marker
        ax.plot(xs[at], ys[at], linestyle="none", marker=ring, markersize=11, markerfacecolor="none",
                markeredgecolor=color, markeredgewidth=1.5, zorder=2.6, label=f"{fmt} ran {choice}")


def stage_marker(stage: str) -> str:
    """Marker per recovery stage (one-shot, fine-tuned, gradual), so coinciding lines stay apart."""
    return STAGE_MARKERS[STAGES.index(stage) % len(STAGE_MARKERS)] if stage in STAGES else STAGE_MARKERS[0]


def dense_accuracy_lines(axes, models) -> list[float]:
    """A dashed line per dense model on every axis; returns the accuracies drawn (%)."""
    drawn = []
    for model in models:
        acc = 100 * model["dense_accuracy"]
        arch = "-".join(map(str, model.get("architecture") or ()))
        label = f"dense {arch} ({acc:.2f}%)" if len(models) > 1 else f"dense ({acc:.2f}%)"
        for ax in axes:
            ax.axhline(acc, label=label, **BASELINE_LINE)
        drawn.append(acc)
    return drawn


def baseline_reference(ax, xs, ys, label: str) -> None:
    """The baseline format's values as the dashed reference line."""
    if len(xs) == 1:  # measured at one sparsity only: it holds for all of them
        ax.axhline(ys[0], label=label, **BASELINE_LINE)
    else:
        ax.plot(xs, ys, label=label, **BASELINE_LINE)


def sparsity_axis(ax, values, *, spread: bool, label: str = "sparsity", start: float | None = None) -> None:
    """Percent ticks; limits fit ``values`` (or begin at ``start``), padded on the spread axis."""
    if spread:
        ax.set_xscale("function", functions=(remaining_log, remaining_log_inverse))
        ax.xaxis.set_major_locator(FixedLocator(SPARSITY_TICKS))
        ax.xaxis.set_minor_locator(FixedLocator(SPARSITY_MINOR_TICKS))
        lo = remaining_log(min(values) if start is None else start) - 0.06
        hi = remaining_log(max(values)) + 0.06  # the data's end: no empty 99% column
        ax.set_xlim(remaining_log_inverse(lo), remaining_log_inverse(hi))
    else:
        ax.set_xlim(-0.02, 1.0)
        ax.xaxis.set_major_locator(FixedLocator(np.linspace(0, 1, 11)))
    ax.xaxis.set_major_formatter(FuncFormatter(percent))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{label} (%)")


def percent(fraction, _pos=None) -> str:
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


def remaining_log(s):
    return -np.log10(np.clip(1.0 - np.asarray(s, dtype=float), MIN_REMAINING, None))


def remaining_log_inverse(t):
    return 1.0 - 10.0 ** -np.asarray(t, dtype=float)


def log_axis(ax, template: str, axis: str = "y") -> None:
    """Log ``axis`` with plain-number labels at 1, 2, 5 x 10^k (falls back to linear ticks if < 2)."""
    getattr(ax, f"set_{axis}scale")("log")
    which = getattr(ax, f"{axis}axis")
    which.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    which.set_major_formatter(FuncFormatter(lambda v, _: template.format(float(f"{v:.3g}"))))
    which.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def time_unit(seconds) -> tuple[float, str]:
    """(scale, unit) of s, ms or µs that gives the shortest tick labels over ``seconds``.

    ``seconds`` is one value or several; only the smallest and largest count. A label's length is
    its digits (``20000`` is 5, ``0.005`` is 5, ``20`` is 2); the unit whose longer end label is the
    shortest wins, and on a tie the one where every value is >= 1 (no decimals). One value thus gets
    the largest unit in which it is >= 1, and a panel spanning 170 µs to 0.2 s reads 0.2 to 200 ms
    instead of 170 to 200000 µs.
    """
    values = np.atleast_1d(np.asarray(seconds, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return 1.0, "s"
    lo, hi = values.min(), values.max()
    return min(TIME_UNITS, key=lambda su: (max(_label_width(lo * su[0]), _label_width(hi * su[0])), lo * su[0] < 1))


def _label_width(value: float) -> int:
    """Characters of a 1-significant-digit label of ``value`` (> 0): 5 -> 1, 200 -> 3, 0.05 -> 4."""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    return exponent + 1 if exponent >= 0 else 2 - exponent


def panels(n: int) -> tuple[Figure, list]:
    """A figure with ``n`` panels, at most MAX_COLUMNS to a row, and no empty ones."""
    ncols = min(n, MAX_COLUMNS)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(WIDTH_IN, PANEL_HEIGHT_IN * nrows + 1.2), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def batch_panels(rows) -> tuple[Figure, list, list]:
    """One panel per batch size in ``rows``."""
    batches = sorted({r["batch"] for r in rows})
    return (*panels(len(batches)), batches)


def figure_legend(fig: Figure, axes, ncols: int = 6) -> None:
    """One legend under the panels with every label once, in drawing order, at most ``ncols`` wide."""
    entries: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), loc="outside lower center",
                   ncols=min(len(entries), ncols), frameon=False)


def threads_label(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


def dataset_title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def file_stem(name) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(name))
