"""Pair the latency cells of two runs and judge each: faster, slower or the same within noise.

A cell is one timed case, keyed by (dataset, method, sparsity, format, batch, threads, stage).
Its ratio is ``B / A`` of the two runs' medians: below 1, run B is faster.

The noise rule
--------------
Each run's relative spread of a cell is ``iqr_s / median_s`` (pytest-benchmark's interquartile
range of the rounds, over their median). A cell is **"same"** when

    ``|ln(B / A)| <= band``,  ``band = max(floor, sqrt(spread_A**2 + spread_B**2))``

and otherwise "faster" (``B < A``) or "slower". The spreads combine as independent errors do;
the floor (default 5%, ``--threshold``) stands for what one run's spread cannot show: a shared
machine's drift between runs, another process's cache pressure, a different turbo state. The
IQR of the rounds, not the standard error of the median, is used on purpose: rounds of one run
are not independent samples of the run-to-run variation, so a narrower band would call drift a
change. A record without ``iqr_s`` counts as spread 0 (the floor still applies).

Runs that each ran at one thread count, different ones (a thread-count change), are paired
across threads; every cell then records both counts.

A cell either run's report flags (:func:`bench.report.noise.flagged`: a spread above 25%, a
time out of the expected order, other processes busy) keeps its verdict but carries the reason
(``flag_a``, ``flag_b``), and the summaries count such cells: a change resting on a flagged
measurement is a reason to measure again, not a finding.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping

from bench.report.formats import format_order
from bench.report.stages import STAGES, record_stage

__all__ = ["DEFAULT_FLOOR", "KEY", "VERDICTS", "compare_runs", "noise_band", "spread", "summarize", "verdict"]

DEFAULT_FLOOR = 0.05
KEY = ("dataset", "method", "sparsity", "format", "batch", "threads", "stage")
VERDICTS = ("faster", "same", "slower")


def spread(record: Mapping) -> float:
    """A record's relative spread ``iqr_s / median_s`` (0 where no IQR was recorded)."""
    iqr = record.get("iqr_s")
    return 0.0 if iqr is None else iqr / record["median_s"]


def noise_band(spread_a: float, spread_b: float, floor: float = DEFAULT_FLOOR) -> float:
    """Half-width of the "same" band on ``ln(B / A)``: the spreads combined, at least ``floor``."""
    return max(floor, math.hypot(spread_a, spread_b))


def verdict(ratio: float, band: float) -> str:
    """ "faster" (B takes less time), "slower" or "same" for a ratio ``B / A`` and a band."""
    log = math.log(ratio)
    return "same" if abs(log) <= band else "faster" if log < 0 else "slower"


def cell_key(record: Mapping, with_threads: bool = True) -> tuple:
    return tuple(record_stage(record) if k == "stage" else round(record[k], 6) if k == "sparsity" else record[k]
                 for k in KEY if with_threads or k != "threads")


def _by_key(records: Iterable[Mapping], with_threads: bool, name: str) -> dict[tuple, int]:
    """``{cell key: index of its record}``."""
    out: dict[tuple, int] = {}
    for i, r in enumerate(records):
        key = cell_key(r, with_threads)
        if key in out:
            raise ValueError(f"run {name} holds two latency records for the cell "
                             f"{dict(zip((k for k in KEY if with_threads or k != 'threads'), key))}; expected one")
        out[key] = i
    return out


def compare_runs(latency_a: list[Mapping], latency_b: list[Mapping], floor: float = DEFAULT_FLOOR,
                 names: tuple[str, str] = ("A", "B"), results: Mapping | None = None,
                 flags: tuple[Mapping[int, str], Mapping[int, str]] = ({}, {})) -> dict:
    """Cells of both runs with ratio and verdict, the cells only one run has, and summaries.

    Returns ``{"cells", "only_in_a", "only_in_b", "across_threads", "summary"}``; each cell is
    ``{dataset, method, sparsity, format, batch, stage, threads_a, threads_b, median_a_s, median_b_s,
    spread_a, spread_b, ratio, band, verdict, flag_a, flag_b}``. ``results`` (a run's dict) orders formats;
    ``flags`` are each run's ``{record index: reason}`` of cells not to be trusted as measured
    (:func:`bench.report.noise.flagged`): they keep their verdict, and the cell carries the reason.

    Raises
    ------
    ValueError
        ``floor`` outside [0, 1), a run with two records of one cell, or no cell in common (the
        message names the key fields whose values the runs do not share).
    """
    if not (isinstance(floor, int | float) and 0 <= floor < 1):
        hint = f"; give {floor / 100:g}, not {floor:g}" if isinstance(floor, int | float) and 1 <= floor < 100 else ""
        raise ValueError(f"threshold must be a fraction in [0, 1), got {floor!r}{hint}")
    threads_a = {r["threads"] for r in latency_a}
    threads_b = {r["threads"] for r in latency_b}
    across = len(threads_a) == len(threads_b) == 1 and threads_a != threads_b
    a = _by_key(latency_a, not across, names[0])
    b = _by_key(latency_b, not across, names[1])
    common = [k for k in a if k in b]
    if not common:
        raise ValueError(f"runs {names[0]} and {names[1]} have no latency cell in common"
                         f"{_disjoint_fields(latency_a, latency_b)}; compare runs of overlapping grids")
    cells = []
    for k in common:
        ra, rb = latency_a[a[k]], latency_b[b[k]]
        sa, sb = spread(ra), spread(rb)
        ratio = rb["median_s"] / ra["median_s"]
        band = noise_band(sa, sb, floor)
        cells.append({**{f: ra[f] for f in KEY if f not in ("threads", "stage")}, "stage": record_stage(ra),
                      "threads_a": ra["threads"], "threads_b": rb["threads"],
                      "median_a_s": ra["median_s"], "median_b_s": rb["median_s"], "spread_a": sa, "spread_b": sb,
                      "ratio": ratio, "band": band, "verdict": verdict(ratio, band),
                      "flag_a": flags[0].get(a[k]), "flag_b": flags[1].get(b[k])})
    order = format_order({c["format"] for c in cells} | {r["format"] for r in (*latency_a, *latency_b)}, results)
    cells.sort(key=lambda c: _sort_key(c, order))
    only = [[_only(rows[i]) for k, i in x.items() if k not in y]
            for x, y, rows in ((a, b, latency_a), (b, a, latency_b))]
    for rows in only:
        rows.sort(key=lambda c: _sort_key(c, order))
    return {"cells": cells, "only_in_a": only[0], "only_in_b": only[1], "across_threads": across,
            "summary": summarize(cells, order)}


def _only(r: Mapping) -> dict:
    return {**{f: r[f] for f in KEY if f != "stage"}, "stage": record_stage(r), "median_s": r["median_s"]}


def _sort_key(c: Mapping, order: list[str]) -> tuple:
    return (c["dataset"], c["method"], STAGES.index(c["stage"]), order.index(c["format"]), c["batch"],
            c["sparsity"], c.get("threads_a", c.get("threads")))


def _disjoint_fields(latency_a, latency_b) -> str:
    """``" (dataset: A has ['mnist'], B has ['cifar10']; ...)"`` for key fields sharing no value."""
    parts = []
    for field in KEY:
        va = {record_stage(r) if field == "stage" else r[field] for r in latency_a}
        vb = {record_stage(r) if field == "stage" else r[field] for r in latency_b}
        if not va & vb:
            parts.append(f"{field}: A has {sorted(va)}, B has {sorted(vb)}")
    return f" ({'; '.join(parts)})" if parts else " (every key field shares values, but no combination)"


def summarize(cells: list[Mapping], order: list[str] | None = None) -> dict:
    """Counts of each verdict and the geometric-mean ratio, per format, per batch, per format and batch."""
    order = order or sorted({c["format"] for c in cells})
    formats = [f for f in order if any(c["format"] == f for c in cells)]
    batches = sorted({c["batch"] for c in cells})
    return {
        "all": _summary_row(cells),
        "by_format": [{"format": f, **_summary_row([c for c in cells if c["format"] == f])} for f in formats],
        "by_batch": [{"batch": b, **_summary_row([c for c in cells if c["batch"] == b])} for b in batches],
        "by_format_batch": [{"format": f, "batch": b, **_summary_row(group)} for f in formats for b in batches
                            if (group := [c for c in cells if c["format"] == f and c["batch"] == b])],
    }


def _summary_row(cells: list[Mapping]) -> dict:
    ratios = [c["ratio"] for c in cells]
    return {"cells": len(cells), **{v: sum(c["verdict"] == v for c in cells) for v in VERDICTS},
            "flagged": sum(bool(c.get("flag_a") or c.get("flag_b")) for c in cells),
            "geomean_ratio": math.exp(statistics.fmean(math.log(r) for r in ratios)),
            "min_ratio": min(ratios), "max_ratio": max(ratios)}
