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
"finetuned" or "gradual". Only the figures of ``bench.recovery_plots`` (recovery_figure and
tradeoff_figure, built on this module's helpers) read the recovered stages; every figure here
shows one-shot records alone, so recovered runs leave them unchanged.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from bench.stages import STAGES, record_stage

__all__ = ["accuracy_figure", "figure_names", "latency_figure", "roofline_figure", "size_figure",
           "speedup_figure"]

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
    # imported here, not at the top: bench.recovery_plots builds on this module's helpers
    from bench.recovery_plots import recovery_figure_names

    accuracy = _records(results, "accuracy")
    latency = _records(results, "latency")
    size = _records(results, "size")
    names = [(f"accuracy-{_stem(d)}", partial(accuracy_figure, results, d))
             for d in sorted({r["dataset"] for r in accuracy})]
    names += recovery_figure_names(results)
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
