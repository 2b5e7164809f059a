"""Figures for a sparsenet report: a run's ``results`` dict in, matplotlib Figures out.

:func:`figure_names` lists every figure a report holds; the figures themselves live in
:mod:`~bench.report.plots.oneshot` (accuracy, latency, speed-up, size, roofline) and
:mod:`~bench.report.plots.recovery` (recovery) and :mod:`~bench.report.plots.tradeoff` (accuracy
against latency, Pareto front), on the shared record checks (:mod:`~bench.report.plots.records`),
styles (:mod:`~bench.report.plots.style`) and label placement (:mod:`~bench.report.plots.labels`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from matplotlib.figure import Figure

from bench.report.formats import baseline_format
from bench.report.plots.conv import conv_figure_names
from bench.report.plots.oneshot import (
    accuracy_figure,
    disk_figure,
    latency_figure,
    roofline_figure,
    size_figure,
    speedup_figure,
)
from bench.report.plots.records import checked_records, group_by
from bench.report.plots.recovery import recovery_figure, recovery_figure_names
from bench.report.plots.style import file_stem
from bench.report.plots.tradeoff import tradeoff_figure
from bench.report.plots.weights import weights_figure

__all__ = ["accuracy_figure", "disk_figure", "figure_names", "latency_figure", "recovery_figure", "roofline_figure",
           "size_figure", "speedup_figure", "tradeoff_figure", "weights_figure"]


def figure_names(results: Mapping) -> list[tuple[str, Callable[[], Figure]]]:
    """Every figure a report of ``results`` should hold, as ``(file-name stem, make_figure)``.

    Stems are ``accuracy-<dataset>``, ``latency-<dataset>-<method>``,
    ``speedup-<dataset>-<method>``, ``size-<dataset>-<method>``, ``disk-<dataset>-<method>`` (runs with
    on-disk sizes and accuracy records) and ``roofline-<dataset>-<method>``,
    with ``-t<threads>`` appended to latency and speedup stems only when a (dataset, method) was timed at several
    thread counts. Datasets with fine-tuned or gradual accuracy records add ``recovery-<dataset>``
    and, with such latency records at batch 1 or 64, ``tradeoff-<dataset>`` (``-t<threads>`` as above).
    Datasets with weight-distribution records add ``weights-<dataset>``. Combinations without
    data are left out; speedup needs the baseline format and at least
    one other format. Figures are built only when the callable is called.
    """
    baseline = baseline_format(results)
    accuracy = checked_records(results, "accuracy")
    latency = checked_records(results, "latency")
    size = checked_records(results, "size")
    names = [(f"accuracy-{file_stem(d)}", partial(accuracy_figure, results, d))
             for d in sorted({r["dataset"] for r in accuracy})]
    names += recovery_figure_names(results)
    names += conv_figure_names(results)
    timed = []
    for (d, m), group in sorted(group_by(latency, "dataset", "method").items()):
        by_threads = group_by(group, "threads")
        for t in sorted(by_threads):
            suffix = f"-t{t}" if len(by_threads) > 1 else ""
            formats = {r["format"] for r in by_threads[t]}
            timed.append((f"{file_stem(d)}-{file_stem(m)}{suffix}", d, m, t, baseline in formats and len(formats) > 1))
    names += [(f"latency-{s}", partial(latency_figure, results, d, m, threads=t)) for s, d, m, t, _ in timed]
    names += [(f"speedup-{s}", partial(speedup_figure, results, d, m, threads=t))
              for s, d, m, t, has_pair in timed if has_pair]
    names += [(f"size-{file_stem(d)}-{file_stem(m)}", partial(size_figure, results, d, m))
              for d, m in sorted({(r["dataset"], r["method"]) for r in size})]
    names += [(f"disk-{file_stem(d)}-{file_stem(m)}", partial(disk_figure, results, d, m))
              for d, m in sorted({(r["dataset"], r["method"]) for r in size if "on_disk_bytes" in r})
              if any(r["dataset"] == d and r["method"] == m for r in accuracy)]
    names += [(f"roofline-{file_stem(d)}-{file_stem(m)}", partial(roofline_figure, results, d, m))
              for d, m in sorted({(r["dataset"], r["method"]) for r in checked_records(results, "roofline")})]
    names += [(f"weights-{file_stem(d)}", partial(weights_figure, results, d))
              for d in sorted({r["dataset"] for r in results.get("weights") or ()})]
    return names
