"""Figures for a sparsenet report: a run's ``results`` dict in, matplotlib Figures out.

Every function here is pure: it reads the record lists of ``results`` (the object the report
writes as results.json) and returns a new :class:`matplotlib.figure.Figure`. Nothing here
touches files, pyplot's figure registry or the backend, so the functions are safe headless,
in threads and in tests; ``bench/report.py`` saves what they return.

Records (sparsity is a fraction in [0, 1], accuracy a fraction, times in seconds):
    models    {dataset, architecture, epochs, dense_accuracy}
    accuracy  {dataset, method, scope, sparsity, achieved_sparsity, accuracy, stage, epochs, recovery_epochs}
    latency   {dataset, method, sparsity, format, batch, threads, median_s, iqr_s, rounds, stage}
    size      {dataset, method, sparsity, format, bytes}
Formats and methods are never listed here: every figure derives them from the records.
``stage`` is "oneshot" (also when absent, as in files written before recovery existed),
"finetuned" or "gradual". Only recovery_figure and tradeoff_figure read the recovered stages;
every other figure shows one-shot records alone, so recovered runs leave them unchanged.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from bench.render import STAGE_LABELS, STAGES, dense_latency, record_stage, stage_budgets

__all__ = ["accuracy_figure", "figure_names", "latency_figure", "recovery_figure", "roofline_figure",
           "size_figure", "speedup_figure", "tradeoff_figure"]

_FIELDS = {
    "models": ("dataset", "dense_accuracy"),
    "accuracy": ("dataset", "method", "scope", "sparsity", "achieved_sparsity", "accuracy"),
    "latency": ("dataset", "method", "sparsity", "format", "batch", "threads", "median_s"),
    "size": ("dataset", "method", "sparsity", "format", "bytes"),
    "roofline": ("dataset", "method", "sparsity", "format", "batch", "efficiency"),
}
_FRACTIONS = ("sparsity", "achieved_sparsity", "accuracy", "dense_accuracy")

# Colour and marker per known name; unknown names get the next free _EXTRA_* entry in sorted
# order, computed over the whole results dict so a format looks the same in every figure.
_FORMAT_STYLES = {
    "dense": ("black", ""),
    "csr_scipy": ("tab:blue", "o"),
    "csr_numba": ("tab:orange", "s"),
    "csr_numba_par": ("tab:green", "^"),
    "shrunk": ("tab:red", "D"),
}
_METHOD_STYLES = {"weight": ("tab:blue", "o"), "unit": ("tab:orange", "s")}
_EXTRA_STYLES = tuple(zip(
    ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"),
    ("v", "P", "X", "*", "<", ">"),
))
_SCOPE_LINES = {"layer": "-", "global": ":"}
_STAGE_COLORS = {"oneshot": "tab:gray", "finetuned": "tab:blue", "gradual": "tab:green"}
_METHOD_LINES = {"weight": "-", "unit": "--"}
_DENSE_LINE = {"color": "black", "linestyle": "--", "linewidth": 1.6, "zorder": 1.5}
_DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# ~1600 px wide at dpi 110.
_WIDTH_IN = 14.5
_PANEL_HEIGHT_IN = 4.4
_MAX_COLUMNS = 3

# Sparsity grids crowd near 1 (90, 95, 97, 99%): on a linear axis those four points share a
# tenth of the width, yet that is where pruning gets interesting. Plotting -log10(1 - s), i.e.
# the fraction of weights *remaining* on a log scale, spaces 0, 25, 50, ..., 90, 95, 97, 99%
# almost evenly and still shows 0%. A logit axis would also spread the low end, which is
# empty, and cannot show 0%.
_SPARSITY_TICKS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.999, 0.9999)
_SPARSITY_MINOR_TICKS = (0.25, 0.6, 0.7)
_MIN_REMAINING = 1e-6  # keeps s = 1 (everything pruned) finite on the spread axis
_ZOOM_FROM = 0.8
_RECOVERY_FROM = 0.5  # the recovery figure starts here, or at the lowest recovered sparsity if lower
_TRADEOFF_BATCHES = (1, 64)  # the batch sizes recovered networks are timed at


def accuracy_figure(results: Mapping, dataset: str, *, x: str = "achieved_sparsity") -> Figure:
    """Test accuracy against sparsity, one line per (method, scope), dense accuracy dashed.

    The left panel is the classic linear 0-100% plot; the right panel, drawn only when some
    record reaches 80%, zooms on >= 80% with the spread axis (see ``_SPARSITY_TICKS``) and a
    y range fitted to the points it shows.

    Parameters
    ----------
    results : mapping with ``accuracy`` and ``models`` record lists.
    dataset : a dataset present in ``results["accuracy"]``.
    x : ``"achieved_sparsity"`` (what the masks achieved, the default) or ``"sparsity"``
        (what was requested).

    Raises
    ------
    ValueError
        Unknown dataset, bad ``x``, or malformed records.
    """
    if x not in ("achieved_sparsity", "sparsity"):
        raise ValueError(f"x must be 'achieved_sparsity' or 'sparsity', got {x!r}")
    rows = _select(results, "accuracy", dataset)
    models = [m for m in _records(results, "models") if m["dataset"] == dataset]
    zoom = any(r[x] >= _ZOOM_FROM for r in rows)
    fig = Figure(figsize=(_WIDTH_IN, 5.6), layout="constrained")
    axes = list(fig.subplots(1, 2 if zoom else 1, squeeze=False)[0])
    styles = _styles({r["method"] for r in rows}, _METHOD_STYLES)

    zoomed_y = []
    groups = _group(rows, "method", "scope")
    order = sorted(groups, key=lambda key: (_rank(key[0], _METHOD_STYLES), _rank(key[1], _SCOPE_LINES)))
    for method, scope in order:
        group = groups[method, scope]
        xs, ys = _points(group, x, "accuracy", f"accuracy of {dataset!r}/{method}/{scope}")
        ys = 100 * ys
        color, marker = styles[method]
        for ax in axes:
            ax.plot(xs, ys, color=color, marker=marker, markersize=5,
                    linestyle=_SCOPE_LINES.get(scope, "-."), label=f"{method} pruning, {scope} scope")
        zoomed_y.extend(ys[xs >= _ZOOM_FROM])
    zoomed_y += _dense_accuracy_lines(axes, models)

    xs_all = [r[x] for r in rows]
    _sparsity_axis(axes[0], xs_all, spread=False, label=_X_LABELS[x])
    axes[0].set_title("full range (linear axis)")
    if zoom:
        _sparsity_axis(axes[1], xs_all, spread=True, label=_X_LABELS[x], start=_ZOOM_FROM)
        lo, hi = min(zoomed_y), max(zoomed_y)
        pad = max(0.5, 0.06 * (hi - lo))
        axes[1].set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        axes[1].set_title(f"≥ {_ZOOM_FROM:.0%}, x spaced by log(fraction of weights left)")
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(f"{_title(dataset)}: test accuracy after pruning")
    return fig


def latency_figure(results: Mapping, dataset: str, method: str, *, threads: int | None = None) -> Figure:
    """Median forward latency against sparsity, one panel per batch size, one line per format.

    The shaded band spans median ± IQR/2 (records carry the IQR's width, not the quartiles).
    ``threads`` picks one thread count when the records hold several.
    """
    rows, threads = _latency_rows(results, dataset, method, threads)
    styles = _format_styles(results)
    fig, axes, batches = _batch_panels(rows)
    for ax, batch in zip(axes, batches):
        panel = _group([r for r in rows if r["batch"] == batch], "format")
        scale, unit = _time_unit(min(r["median_s"] for group in panel.values() for r in group))
        for fmt in _format_order(panel):
            what = f"latency of {dataset!r}/{method}/{fmt}/batch {batch}"
            xs, med = _points(panel[fmt], "sparsity", "median_s", what)
            _, iqr = _points(panel[fmt], "sparsity", "iqr_s", what)
            if fmt == "dense":
                _dense_reference(ax, xs, med * scale)
                continue
            color, marker = styles[fmt]
            ax.plot(xs, med * scale, color=color, marker=marker, markersize=5, label=fmt)
            if not np.isnan(iqr).any():
                ax.fill_between(xs, np.maximum(med - iqr / 2, med / 10) * scale,
                                (med + iqr / 2) * scale, color=color, alpha=0.15, linewidth=0)
        _log_axis(ax, "{:g}")
        ax.set_ylabel(f"median latency ({unit})")
        ax.set_title(f"batch {batch}")
        _sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    _figure_legend(fig, axes)
    fig.suptitle(f"{_title(dataset)}, {method} pruning: forward latency, {_threads(threads)} "
                 "(band: median ± IQR/2)")
    return fig


def speedup_figure(results: Mapping, dataset: str, method: str, *, threads: int | None = None) -> Figure:
    """Speedup over dense (dense median / format median) against sparsity, one panel per batch.

    Each point divides by the dense median at the same sparsity and batch; where the run has no
    dense record at that sparsity it divides by the median of the batch's dense records
    (masked dense does the same work at every sparsity).

    Raises
    ------
    ValueError
        Unknown dataset or method, or no dense records to divide by.
    """
    rows, threads = _latency_rows(results, dataset, method, threads)
    if not any(r["format"] == "dense" for r in rows):
        raise ValueError(f"no dense latency records for {dataset!r}/{method}; "
                         "a speedup needs dense as its reference")
    styles = _format_styles(results)
    fig, axes, batches = _batch_panels(rows)
    for ax, batch in zip(axes, batches):
        panel = _group([r for r in rows if r["batch"] == batch], "format")
        dense = {r["sparsity"]: r["median_s"] for r in panel.get("dense", ())}
        ax.axhline(1.0, label="dense", **_DENSE_LINE)
        if not dense:
            ax.text(0.5, 0.5, f"no dense record at batch {batch}", transform=ax.transAxes,
                    ha="center", va="center")
        for fmt in _format_order(panel) if dense else ():
            if fmt == "dense":
                continue
            xs, med = _points(panel[fmt], "sparsity", "median_s", f"latency of {dataset!r}/{method}/{fmt}")
            fallback = statistics.median(dense.values())
            ys = [dense.get(s, fallback) / m for s, m in zip(xs, med)]
            color, marker = styles[fmt]
            ax.plot(xs, ys, color=color, marker=marker, markersize=5, label=fmt)
        _log_axis(ax, "{:g}×")
        ax.set_ylabel("speedup over dense (×)")
        ax.set_title(f"batch {batch}")
        _sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    _figure_legend(fig, axes)
    fig.suptitle(f"{_title(dataset)}, {method} pruning: speedup over dense, {_threads(threads)} "
                 "(above 1× is faster)")
    return fig


def size_figure(results: Mapping, dataset: str, method: str) -> Figure:
    """Bytes of weights (MB, 10^6 bytes) per format against sparsity, log y, dense dashed.

    Formats that store exactly the same bytes at every sparsity (csr_numba and its parallel
    variant share arrays) are drawn once, labelled ``"a = b"``, instead of hiding each other.
    """
    rows = _select(results, "size", dataset, method)
    styles = _format_styles(results)
    groups = _group(rows, "format")
    series: dict = {}  # (xs, bytes) -> formats storing exactly that
    for fmt in _format_order(groups):
        xs, nbytes = _points(groups[fmt], "sparsity", "bytes", f"size of {dataset!r}/{method}/{fmt}")
        key = (tuple(xs), tuple(nbytes)) if fmt != "dense" else ("dense",)
        series.setdefault(key, (xs, nbytes, []))[2].append(fmt)
    fig = Figure(figsize=(_WIDTH_IN, 5.6), layout="constrained")
    ax = fig.subplots()
    for xs, nbytes, fmts in series.values():
        if fmts == ["dense"]:
            _dense_reference(ax, xs, nbytes / 1e6)
            continue
        color, marker = styles[fmts[0]]
        ax.plot(xs, nbytes / 1e6, color=color, marker=marker, markersize=5, label=" = ".join(fmts))
    _log_axis(ax, "{:g}")
    ax.set_ylabel("weight storage (MB)")
    _sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    _figure_legend(fig, [ax])
    fig.suptitle(f"{_title(dataset)}, {method} pruning: bytes of weights and indices per format")
    return fig


def roofline_figure(results: Mapping, dataset: str, method: str) -> Figure:
    """Share of the machine's limit each format reaches (floor / measured), one panel per batch."""
    rows = [r for r in _records(results, "roofline") if r["dataset"] == dataset and r["method"] == method]
    if not rows:
        raise ValueError(f"no roofline records for {dataset!r}/{method}")
    styles = _format_styles(results)
    fig, axes, batches = _batch_panels(rows)
    for ax, batch in zip(axes, batches):
        panel = _group([r for r in rows if r["batch"] == batch], "format")
        for fmt in _format_order(panel):
            pts = sorted((r["sparsity"], 100 * r["efficiency"]) for r in panel[fmt])
            color, marker = styles[fmt]
            style = dict(_DENSE_LINE, marker="x") if fmt == "dense" else {"color": color, "marker": marker}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], markersize=5, label=fmt, **style)
        # skipping zero activations (batch 1) can beat a floor that counts every kept weight
        ax.set_ylim(0, max(100, 105 * max(r["efficiency"] for r in rows)))
        ax.set_ylabel("% of roofline (floor / measured)")
        ax.set_title(f"batch {batch}")
        _sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    _figure_legend(fig, axes)
    m = results.get("machine", {})
    fig.suptitle(f"{_title(dataset)}, {method} pruning: time against the machine's floor "
                 f"(GEMM {m.get('gemm_gflops', 0):.0f} GFLOP/s, L3 {m.get('cache_gbps', 0):.0f} GB/s, "
                 f"DRAM {m.get('dram_gbps', 0):.0f} GB/s, measured in this run)")
    return fig


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
    (see ``bench.render.dense_latency``) at its dense accuracy.

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


def figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """Every figure a report of ``results`` should hold, as ``(file-name stem, make_figure)``.

    Stems are ``accuracy-<dataset>``, ``latency-<dataset>-<method>``,
    ``speedup-<dataset>-<method>``, ``size-<dataset>-<method>`` and ``roofline-<dataset>-<method>``, with ``-t<threads>``
    appended to latency and speedup stems only when a (dataset, method) was timed at several
    thread counts. Datasets with fine-tuned or gradual accuracy records add ``recovery-<dataset>``
    and, with such latency records at batch 1 or 64, ``tradeoff-<dataset>`` (``-t<threads>`` as above).
    Combinations without data are left out; speedup needs dense and at least
    one other format. Figures are built only when the callable is called.
    """
    accuracy = _records(results, "accuracy")
    latency = _records(results, "latency")
    size = _records(results, "size")
    names = [(f"accuracy-{_stem(d)}", partial(accuracy_figure, results, d))
             for d in sorted({r["dataset"] for r in accuracy})]
    recovered = _recovered_datasets(results)
    names += [(f"recovery-{_stem(d)}", partial(recovery_figure, results, d)) for d in sorted(recovered)]
    timed_recovered = [r for r in _records(results, "latency", stages=STAGES[1:])
                       if r["dataset"] in recovered and r["batch"] in _TRADEOFF_BATCHES]
    for d, group in sorted(_group(timed_recovered, "dataset").items()):
        found = sorted({r["threads"] for r in group})
        names += [(f"tradeoff-{_stem(d)}" + (f"-t{t}" if len(found) > 1 else ""),
                   partial(tradeoff_figure, results, d, threads=t)) for t in found]
    timed = []
    for (d, m), group in sorted(_group(latency, "dataset", "method").items()):
        by_threads = _group(group, "threads")
        for t in sorted(by_threads):
            suffix = f"-t{t}" if len(by_threads) > 1 else ""
            formats = {r["format"] for r in by_threads[t]}
            timed.append((f"{_stem(d)}-{_stem(m)}{suffix}", d, m, t, "dense" in formats and len(formats) > 1))
    names += [(f"latency-{s}", partial(latency_figure, results, d, m, threads=t)) for s, d, m, t, _ in timed]
    names += [(f"speedup-{s}", partial(speedup_figure, results, d, m, threads=t))
              for s, d, m, t, has_pair in timed if has_pair]
    names += [(f"size-{_stem(d)}-{_stem(m)}", partial(size_figure, results, d, m))
              for d, m in sorted({(r["dataset"], r["method"]) for r in size})]
    names += [(f"roofline-{_stem(d)}-{_stem(m)}", partial(roofline_figure, results, d, m))
              for d, m in sorted({(r["dataset"], r["method"]) for r in _records(results, "roofline")})]
    return names


# --- records ---------------------------------------------------------------------------------

_X_LABELS = {"achieved_sparsity": "achieved weight sparsity", "sparsity": "requested sparsity"}


def _records(results: Mapping, table: str, *, stages: tuple[str, ...] = ("oneshot",)) -> list[Mapping]:
    """results[table] (empty if absent) at ``stages``, every record checked for fields, fractions, stage."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping of record lists, got {type(results).__name__}")
    rows = results.get(table) or []
    for i, row in enumerate(rows):
        record_stage(row, f"results[{table!r}][{i}]")
        missing = [f for f in _FIELDS[table] if f not in row]
        if missing:
            raise ValueError(f"results[{table!r}][{i}] lacks {missing}; "
                             f"every {table} record needs {list(_FIELDS[table])}")
        for field in _FRACTIONS:
            value = row.get(field)
            if value is not None and not 0.0 <= value <= 1.0:
                hint = f"; give {value / 100:g}, not {value:g}" if 1 < value <= 100 else ""
                raise ValueError(f"results[{table!r}][{i}][{field!r}] is {value!r}, "
                                 f"expected a fraction in [0, 1]{hint}")
    return [r for r in rows if record_stage(r) in stages]


def _recovered_datasets(results: Mapping) -> set[str]:
    return {r["dataset"] for r in _records(results, "accuracy", stages=STAGES[1:])}


def _select(results: Mapping, table: str, dataset: str, method: str | None = None) -> list[Mapping]:
    rows = _records(results, table)
    _check_choice("dataset", dataset, {r["dataset"] for r in rows}, f"the {table} records")
    rows = [r for r in rows if r["dataset"] == dataset]
    if method is not None:
        _check_choice("method", method, {r["method"] for r in rows}, f"the {table} records of {dataset!r}")
        rows = [r for r in rows if r["method"] == method]
    return rows


def _latency_rows(results, dataset, method, threads) -> tuple[list[Mapping], int]:
    rows = _select(results, "latency", dataset, method)
    return _pick_threads(rows, threads, f"the latency records of {dataset!r}/{method}")


def _pick_threads(rows, threads: int | None, where: str) -> tuple[list[Mapping], int]:
    found = {r["threads"] for r in rows}
    if threads is None and len(found) > 1:
        raise ValueError(f"{where} were taken at threads {sorted(found)}; pass threads= one of them")
    threads = next(iter(found)) if threads is None else threads
    _check_choice("threads", threads, found, where)
    return [r for r in rows if r["threads"] == threads], threads


def _check_choice(what: str, value, found: set, where: str) -> None:
    if value not in found:
        raise ValueError(f"unknown {what} {value!r}; {where} hold {sorted(found) if found else 'none'}")


def _group(rows, *keys) -> dict:
    groups: dict = {}
    for r in rows:
        key = tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]
        groups.setdefault(key, []).append(r)
    return groups


def _points(rows, x: str, y: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays sorted by x; a missing or None y becomes NaN; one record per sparsity."""
    seen = [r["sparsity"] for r in rows]
    if len(set(seen)) < len(seen):
        dup = next(s for s in seen if seen.count(s) > 1)
        raise ValueError(f"{what}: {seen.count(dup)} records at sparsity {dup:g}; expected one")
    rows = sorted(rows, key=lambda r: (r[x], r["sparsity"]))
    xs = np.array([r[x] for r in rows], dtype=float)
    ys = np.array([np.nan if r.get(y) is None else r[y] for r in rows], dtype=float)
    return xs, ys


# --- styles and axes -------------------------------------------------------------------------

def _rank(name: str, known: Mapping) -> tuple:
    return (list(known).index(name), "") if name in known else (len(known), name)


def _styles(names, known: Mapping) -> dict[str, tuple[str, str]]:
    extra = sorted(n for n in names if n not in known)
    styles = {n: known[n] for n in names if n in known}
    styles.update({n: _EXTRA_STYLES[i % len(_EXTRA_STYLES)] for i, n in enumerate(extra)})
    return styles


def _format_styles(results: Mapping) -> dict[str, tuple[str, str]]:
    """Colour and marker per format, fixed across every figure of one results dict."""
    formats = {r["format"] for t in ("latency", "size", "roofline") for r in _records(results, t, stages=STAGES)}
    return _styles(formats, _FORMAT_STYLES)


def _format_order(formats) -> list[str]:
    return sorted(formats, key=lambda f: _rank(f, _FORMAT_STYLES))


def _dense_accuracy_lines(axes, models) -> list[float]:
    """A dashed line per dense model on every axis; returns the accuracies drawn (%)."""
    drawn = []
    for model in models:
        acc = 100 * model["dense_accuracy"]
        arch = "-".join(map(str, model.get("architecture") or ()))
        label = f"dense {arch} ({acc:.2f}%)" if len(models) > 1 else f"dense ({acc:.2f}%)"
        for ax in axes:
            ax.axhline(acc, label=label, **_DENSE_LINE)
        drawn.append(acc)
    return drawn


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


def _dense_reference(ax, xs, ys) -> None:
    if len(xs) == 1:  # measured at one sparsity only: it holds for all of them
        ax.axhline(ys[0], label="dense", **_DENSE_LINE)
    else:
        ax.plot(xs, ys, label="dense", **_DENSE_LINE)


def _sparsity_axis(ax, values, *, spread: bool, label: str = "sparsity", start: float | None = None) -> None:
    """Percent ticks; limits fit ``values`` (or begin at ``start``), padded on the spread axis."""
    if spread:
        ax.set_xscale("function", functions=(_remaining_log, _remaining_log_inverse))
        ax.xaxis.set_major_locator(FixedLocator(_SPARSITY_TICKS))
        ax.xaxis.set_minor_locator(FixedLocator(_SPARSITY_MINOR_TICKS))
        lo = _remaining_log(min(values) if start is None else start) - 0.06
        hi = _remaining_log(max(0.99, max(values))) + 0.06
        ax.set_xlim(_remaining_log_inverse(lo), _remaining_log_inverse(hi))
    else:
        ax.set_xlim(-0.02, 1.0)
        ax.xaxis.set_major_locator(FixedLocator(np.linspace(0, 1, 11)))
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{label} (%)")


def _percent(fraction, _pos=None) -> str:
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


def _remaining_log(s):
    return -np.log10(np.clip(1.0 - np.asarray(s, dtype=float), _MIN_REMAINING, None))


def _remaining_log_inverse(t):
    return 1.0 - 10.0 ** -np.asarray(t, dtype=float)


def _log_axis(ax, template: str, axis: str = "y") -> None:
    """Log ``axis`` with plain-number labels at 1, 2, 5 x 10^k (falls back to linear ticks if < 2)."""
    getattr(ax, f"set_{axis}scale")("log")
    which = getattr(ax, f"{axis}axis")
    which.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    which.set_major_formatter(FuncFormatter(lambda v, _: template.format(float(f"{v:.3g}"))))
    which.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def _time_unit(seconds: float) -> tuple[float, str]:
    """The largest of s, ms, µs in which the smallest value is still >= 1."""
    for scale, unit in ((1.0, "s"), (1e3, "ms")):
        if seconds * scale >= 1.0:
            return scale, unit
    return 1e6, "µs"


def _batch_panels(rows) -> tuple[Figure, list, list]:
    batches = sorted({r["batch"] for r in rows})
    ncols = min(len(batches), _MAX_COLUMNS)
    nrows = -(-len(batches) // ncols)
    fig = Figure(figsize=(_WIDTH_IN, _PANEL_HEIGHT_IN * nrows + 1.2), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(batches):]:
        fig.delaxes(ax)
    return fig, axes[:len(batches)], batches


def _figure_legend(fig: Figure, axes) -> None:
    """One legend under the panels with every label once, in drawing order."""
    entries: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), loc="outside lower center",
                   ncols=min(len(entries), 6), frameon=False)


def _threads(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


def _title(dataset: str) -> str:
    return _DATASET_TITLES.get(dataset, dataset)


def _stem(name) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(name))
