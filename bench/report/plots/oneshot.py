"""The one-shot figures of a report: accuracy, latency, speed-up, size and roofline against sparsity.

Every function here is pure: it reads the record lists of ``results`` (the object the report
writes as results.json; see :mod:`bench.report.plots.records`) and returns a new
:class:`matplotlib.figure.Figure`. Nothing here touches files, pyplot's figure registry or the
backend, so the functions are safe headless, in threads and in tests. Formats and methods are
never listed here: every figure derives them from the records, and their styles and the baseline
from the registries' self-descriptions. These figures show one-shot records alone, so recovered
networks (:mod:`bench.report.plots.recovery`) leave them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from bench.report.formats import FILE_KINDS, baseline_format, formats_of_kind, method_order
from bench.report.noise import dense_references, reference_of
from bench.report.plots.records import checked_records, group_by, latency_rows, select_records, xy_points
from bench.report.plots.style import (
    BASELINE_LINE,
    SCOPE_LINES,
    WIDTH_IN,
    X_LABELS,
    adaptive_series,
    assign_styles,
    baseline_reference,
    batch_panels,
    dataset_title,
    dense_accuracy_lines,
    figure_legend,
    format_order,
    format_styles,
    log_axis,
    method_styles,
    sparsity_axis,
    style_rank,
    threads_label,
    time_unit,
)
from bench.report.roofline import flop_peak

__all__ = ["accuracy_figure", "latency_figure", "roofline_figure", "size_figure", "speedup_figure"]

ZOOM_FROM = 0.8  # the accuracy figure's zoomed panel starts here


def accuracy_figure(results: Mapping, dataset: str, *, x: str = "achieved_sparsity") -> Figure:
    """Test accuracy against sparsity, one line per (method, scope), dense accuracy dashed.

    The left panel is the classic linear 0-100% plot; the right panel, drawn only when some
    record reaches 80%, zooms on >= 80% with the spread axis (see ``SPARSITY_TICKS``) and a
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
    rows = select_records(results, "accuracy", dataset)
    models = [m for m in checked_records(results, "models") if m["dataset"] == dataset]
    zoom = any(r[x] >= ZOOM_FROM for r in rows)
    fig = Figure(figsize=(WIDTH_IN, 5.6), layout="constrained")
    axes = list(fig.subplots(1, 2 if zoom else 1, squeeze=False)[0])
    known = method_styles(results)
    styles = assign_styles({r["method"] for r in rows}, known)

    zoomed_y = []
    groups = group_by(rows, "method", "scope")
    methods = method_order({m for m, _ in groups}, results)
    order = sorted(groups, key=lambda key: (methods.index(key[0]), style_rank(key[1], SCOPE_LINES)))
    for method, scope in order:
        group = groups[method, scope]
        xs, ys = xy_points(group, x, "accuracy", f"accuracy of {dataset!r}/{method}/{scope}")
        ys = 100 * ys
        color, marker = styles[method]
        for ax in axes:
            ax.plot(xs, ys, color=color, marker=marker, markersize=5,
                    linestyle=SCOPE_LINES.get(scope, "-."), label=f"{method} pruning, {scope} scope")
        zoomed_y.extend(ys[xs >= ZOOM_FROM])
    zoomed_y += dense_accuracy_lines(axes, models)

    xs_all = [r[x] for r in rows]
    sparsity_axis(axes[0], xs_all, spread=False, label=X_LABELS[x])
    axes[0].set_title("full range (linear axis)")
    if zoom:
        sparsity_axis(axes[1], xs_all, spread=True, label=X_LABELS[x], start=ZOOM_FROM)
        lo, hi = min(zoomed_y), max(zoomed_y)
        pad = max(0.5, 0.06 * (hi - lo))
        axes[1].set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        axes[1].set_title(f"≥ {ZOOM_FROM:.0%}, x spaced by log(fraction of weights left)")
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    figure_legend(fig, axes)
    fig.suptitle(f"{dataset_title(dataset)}: test accuracy after pruning")
    return fig


def latency_figure(results: Mapping, dataset: str, method: str, *, threads: int | None = None) -> Figure:
    """Median forward latency against sparsity, one panel per batch size, one line per format.

    The shaded band spans median ± IQR/2 (records carry the IQR's width, not the quartiles).
    Adaptive formats are drawn by :func:`~bench.report.plots.style.adaptive_series` (a band under
    the candidate they ran, ringed by its marker). Each panel has its own unit
    (:func:`~bench.report.plots.style.time_unit`). ``threads`` picks one thread count when the
    records hold several.
    """
    rows, threads = latency_rows(results, dataset, method, threads)
    styles, baseline = format_styles(results), baseline_format(results)
    adaptive = _adaptive_formats(results, rows)
    fig, axes, batches = batch_panels(rows)
    for ax, batch in zip(axes, batches):
        panel = group_by([r for r in rows if r["batch"] == batch], "format")
        scale, unit = time_unit([r["median_s"] for group in panel.values() for r in group])
        for fmt in format_order(panel, results):
            what = f"latency of {dataset!r}/{method}/{fmt}/batch {batch}"
            xs, med = xy_points(panel[fmt], "sparsity", "median_s", what)
            _, iqr = xy_points(panel[fmt], "sparsity", "iqr_s", what)
            if fmt == baseline:
                baseline_reference(ax, xs, med * scale, baseline)
                continue
            if fmt in adaptive:
                adaptive_series(ax, xs, med * scale, _choices(panel[fmt], xs), fmt, styles)
                continue
            color, marker = styles[fmt]
            ax.plot(xs, med * scale, color=color, marker=marker, markersize=5, label=fmt)
            if not np.isnan(iqr).any():
                ax.fill_between(xs, np.maximum(med - iqr / 2, med / 10) * scale,
                                (med + iqr / 2) * scale, color=color, alpha=0.15, linewidth=0)
        log_axis(ax, "{:g}")
        ax.set_ylabel(f"median latency ({unit})")
        ax.set_title(f"batch {batch}")
        sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    figure_legend(fig, axes)
    fig.suptitle(f"{dataset_title(dataset)}, {method} pruning: forward latency, {threads_label(threads)} "
                 "(band: median ± IQR/2)")
    return fig


def speedup_figure(results: Mapping, dataset: str, method: str, *, threads: int | None = None) -> Figure:
    """Speedup over dense (dense median / format median) against sparsity, one panel per batch.

    Each point divides by the baseline's reference for its batch, the one the report's tables use
    (:func:`bench.report.noise.dense_references`: the median of the baseline's medians over every
    record of that dataset, batch and thread count; masked dense does the same work at every
    sparsity). Dividing by the dense cell of the same sparsity, as this figure did, let one
    disturbed dense cell move a whole column: a Zen 4 run's batch-1024 dense cell at 0.95 took
    49 ms against 26-29 ms elsewhere, and the figure drew `sparse` there at 14x where its table said
    7.6x. Adaptive formats are drawn as in :func:`latency_figure`.

    Raises
    ------
    ValueError
        Unknown dataset or method, or no dense records to divide by.
    """
    rows, threads = latency_rows(results, dataset, method, threads)
    baseline = baseline_format(results)
    if not any(r["format"] == baseline for r in rows):
        raise ValueError(f"no {baseline} latency records for {dataset!r}/{method}; "
                         f"a speedup needs {baseline} (the baseline format) as its reference")
    styles, adaptive = format_styles(results), _adaptive_formats(results, rows)
    fig, axes, batches = batch_panels(rows)
    references = dense_references(results)
    for ax, batch in zip(axes, batches):
        panel = group_by([r for r in rows if r["batch"] == batch], "format")
        some = next(iter(next(iter(panel.values()))))
        dense = reference_of(references, some, baseline)
        ax.axhline(1.0, label=baseline, **BASELINE_LINE)
        if not dense:
            ax.text(0.5, 0.5, f"no {baseline} record at batch {batch}", transform=ax.transAxes,
                    ha="center", va="center")
        for fmt in format_order(panel, results) if dense else ():
            if fmt == baseline:
                continue
            xs, med = xy_points(panel[fmt], "sparsity", "median_s", f"latency of {dataset!r}/{method}/{fmt}")
            ys = [dense / m for m in med]
            if fmt in adaptive:
                adaptive_series(ax, xs, ys, _choices(panel[fmt], xs), fmt, styles)
                continue
            color, marker = styles[fmt]
            ax.plot(xs, ys, color=color, marker=marker, markersize=5, label=fmt)
        log_axis(ax, "{:g}×")
        ax.set_ylabel(f"speedup over {baseline} (×)")
        ax.set_title(f"batch {batch}")
        sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    figure_legend(fig, axes)
    fig.suptitle(f"{dataset_title(dataset)}, {method} pruning: speedup over {baseline}, {threads_label(threads)} "
                 "(above 1× is faster)")
    return fig


def size_figure(results: Mapping, dataset: str, method: str) -> Figure:
    """Bytes of weights (MB, 10^6 bytes) per format against sparsity, log y, dense dashed.

    Formats that store exactly the same bytes at every sparsity (csr_numba and its parallel
    variant share arrays) are drawn once, labelled ``"a = b"``, instead of hiding each other.
    """
    rows = select_records(results, "size", dataset, method)
    styles, baseline = format_styles(results), baseline_format(results)
    groups = group_by(rows, "format")
    series: dict = {}  # (xs, bytes) -> formats storing exactly that
    for fmt in format_order(groups, results):
        xs, nbytes = xy_points(groups[fmt], "sparsity", "in_memory_bytes", f"size of {dataset!r}/{method}/{fmt}")
        key = (tuple(xs), tuple(nbytes)) if fmt != baseline else (baseline,)
        series.setdefault(key, (xs, nbytes, []))[2].append(fmt)
    fig = Figure(figsize=(WIDTH_IN, 5.6), layout="constrained")
    ax = fig.subplots()
    for xs, nbytes, fmts in series.values():
        if fmts == [baseline]:
            baseline_reference(ax, xs, nbytes / 1e6, baseline)
            continue
        color, marker = styles[fmts[0]]
        ax.plot(xs, nbytes / 1e6, color=color, marker=marker, markersize=5, label=" = ".join(fmts))
    log_axis(ax, "{:g}")
    files = any("on_disk_bytes" in r for r in rows)
    ax.set_ylabel("in memory at inference (MB)" if files else "weight storage (MB)")
    sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    figure_legend(fig, [ax])
    fig.suptitle(f"{dataset_title(dataset)}, {method} pruning: " +
                 ("bytes each format keeps in memory" if files else "bytes of weights and indices per format"))
    return fig


def disk_figure(results: Mapping, dataset: str, method: str) -> Figure:
    """Accuracy against bytes on disk (MB, log x), one line per file kind through the sparsities.

    A file kind (a format's ``saved_as``) takes the style of the first format in registry order
    that is deployed from it; solid is the file as written, dashed the same file zipped (drawn where
    zipping changes it by more than 2%). The star is the unpruned dense float32 file.
    """
    rows = [r for r in select_records(results, "size", dataset, method) if "on_disk_bytes" in r]
    if not rows:
        raise ValueError(f"no on-disk sizes for {dataset!r}/{method} (runs before sparsenet 0.2 have none)")
    accuracy_rows = select_records(results, "accuracy", dataset, method)
    accuracy = {(r["sparsity"], r.get("scope", "layer")): 100 * r["accuracy"] for r in accuracy_rows}
    int8 = {(r["sparsity"], r.get("scope", "layer")): 100 * r["int8_accuracy"] for r in accuracy_rows
            if r.get("int8_accuracy") is not None}  # the int8 file holds the int8 network: its own accuracy
    lite = {(r["sparsity"], r.get("scope", "layer")): 100 * r["tflite_int8_accuracy"] for r in accuracy_rows
            if r.get("tflite_int8_accuracy") is not None}
    styles, baseline = format_styles(results), baseline_format(results)
    fig = Figure(figsize=(WIDTH_IN, 5.6), layout="constrained")
    ax = fig.subplots()
    for saved_as, label in FILE_KINDS.items():
        by_sparsity = {}
        for fmt in format_order({r["format"] for r in rows}, results):
            for r in rows:
                if r["format"] == fmt and r["saved_as"] == saved_as:
                    by_sparsity.setdefault(r["sparsity"], r)
        acc_of = {"compact_int8": int8, "tflite_int8": lite}.get(saved_as, accuracy)
        pts = sorted((s, r["on_disk_bytes"], r["zipped_bytes"], acc_of.get((s, r.get("scope", "layer"))))
                     for s, r in by_sparsity.items())
        pts = [p for p in pts if p[3] is not None]
        if not pts:
            continue
        first = next(f for f in format_order({r["format"] for r in rows}, results)
                     if any(r["format"] == f and r["saved_as"] == saved_as for r in rows))
        color, marker = styles[first]
        disk, zipped, acc = (np.array([p[i] for p in pts], dtype=float) for i in (1, 2, 3))
        ax.plot(disk / 1e6, acc, color=color, marker=marker, markersize=5, label=label)
        if np.any(np.abs(zipped - disk) > 0.02 * disk):
            ax.plot(zipped / 1e6, acc, color=color, marker=marker, markersize=4, linestyle="--", alpha=0.8,
                    label=f"{label}, zipped")
        for s, d, _z, a in pts[::max(1, len(pts) // 4)] + pts[-1:]:
            ax.annotate(f"{100 * s:g}%", (d / 1e6, a), textcoords="offset points", xytext=(4, -10), fontsize=7,
                        color=color)
    dense = next((r for r in rows if r["format"] == baseline and r["sparsity"] == min(x["sparsity"] for x in rows)),
                 None)
    model = next((m for m in results.get("models", ()) if m["dataset"] == dataset), None)
    if dense is not None and model is not None:
        ax.plot([dense["on_disk_bytes"] / 1e6], [100 * model["dense_accuracy"]], marker="*", markersize=14,
                color="black", linestyle="none", label=f"dense float32 file ({dense['on_disk_bytes'] / 1e6:.2f} MB)")
    log_axis(ax, "{:g}", axis="x")
    ax.set_xlabel("bytes on disk (MB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    figure_legend(fig, [ax])
    fig.suptitle(f"{dataset_title(dataset)}, {method} pruning: accuracy against file size "
                 "(left and high is better)")
    return fig


def roofline_figure(results: Mapping, dataset: str, method: str) -> Figure:
    """Share of the machine's limit each format reaches (floor / measured), one panel per batch."""
    rows = [r for r in checked_records(results, "roofline") if r["dataset"] == dataset and r["method"] == method]
    if not rows:
        raise ValueError(f"no roofline records for {dataset!r}/{method}")
    styles, baseline = format_styles(results), baseline_format(results)
    fig, axes, batches = batch_panels(rows)
    for ax, batch in zip(axes, batches):
        panel = group_by([r for r in rows if r["batch"] == batch], "format")
        for fmt in format_order(panel, results):
            pts = sorted((r["sparsity"], 100 * r["efficiency"]) for r in panel[fmt])
            color, marker = styles[fmt]
            style = dict(BASELINE_LINE, marker="x") if fmt == baseline else {"color": color, "marker": marker}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], markersize=5, label=fmt, **style)
        # skipping zero activations (batch 1) can beat a floor that counts every kept weight
        ax.set_ylim(0, max(100, 105 * max(r["efficiency"] for r in rows)))
        ax.set_ylabel("% of roofline (floor / measured)")
        ax.set_title(f"batch {batch}")
        sparsity_axis(ax, [r["sparsity"] for r in rows], spread=True)
    figure_legend(fig, axes)
    m = results.get("machine", {})
    fig.suptitle(f"{dataset_title(dataset)}, {method} pruning: time against the machine's floor "
                 f"({flop_peak(m)[1]}, L3 {m.get('cache_gbps', 0):.0f} GB/s, "
                 f"DRAM {m.get('dram_gbps', 0):.0f} GB/s, measured in this run)")
    return fig


def _adaptive_formats(results: Mapping, rows) -> set[str]:
    """Formats of kind "adaptive", and any whose records say which candidate they ran."""
    return set(formats_of_kind(results, "adaptive")) | {r["format"] for r in rows if "auto_choice" in r}


def _choices(rows, xs) -> list:
    """Each record's ``auto_choice`` (None where absent), in the order of ``xs`` (sparsities)."""
    by_sparsity = {r["sparsity"]: r.get("auto_choice") for r in rows}
    return [by_sparsity[x] for x in xs]
