"""Which latency cells to trust: the dense references speed-ups are taken against, and flagged cells.

Pure functions over a run's ``latency`` records (and the formats' self-descriptions):

- **Dense reference**: a dense format does the same work at every sparsity, so its cost for a
  (dataset, batch, threads) is the median of its medians over every record there (all sparsities,
  methods and stages); one disturbed cell cannot move it. Speed-ups are taken against the
  baseline's reference, and against the fastest dense engine's (:func:`dense_references`).
- **Flags** (:func:`flagged`): a cell whose spread (IQR / median over its rounds) is above
  :data:`SPREAD_LIMIT`; a cell that breaks the expected order: a dense cell more than
  :data:`ORDER_LIMIT` times off its own reference (dense costs the same at every sparsity), any
  other cell more than :data:`ORDER_LIMIT` times slower than the same format at the next lower
  sparsity (more weights kept, more work); a cell during which other
  processes took more than :data:`BUSY_LIMIT` of a core (``others_load``, from ``/proc/stat``, where
  the run recorded it); of two twin cells, an adaptive format (``auto``) and the candidate it
  chose in that cell, which run the same kernel, the one more than :data:`TWIN_LIMIT` times
  slower than the other. The report marks flagged cells and leaves them out of its findings.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping

from bench.report.formats import baseline_format, format_info

__all__ = ["BUSY_LIMIT", "ORDER_LIMIT", "SPREAD_LIMIT", "TWIN_LIMIT", "dense_formats", "dense_references", "flagged",
           "spread"]

SPREAD_LIMIT = 0.25  # IQR / median above this: the rounds disagree by a quarter
ORDER_LIMIT = 1.5  # a dense cell 1.5x off the median of the same dense format elsewhere
BUSY_LIMIT = 0.5  # cores' worth of CPU time other processes took while the cell was timed
# Twins run the same kernel on the same network and batch, so any gap between them is the machine's:
# a Zen 4 run had `sparse` at 370 and 513 us where `auto`, running `sparse`, took 285 and 246 us
# (batch 64, sparsity 0.9 and 0.95), inside every other limit. A quarter: the largest gap between
# twins in that run's undisturbed cells was 1.13x.
TWIN_LIMIT = 1.25


def spread(record: Mapping) -> float | None:
    """IQR / median of a latency record (None where the run did not record the IQR)."""
    iqr = record.get("iqr_s")
    return None if iqr is None or not record["median_s"] else iqr / record["median_s"]


def dense_formats(results: Mapping) -> list[str]:
    """The baseline and every engine that runs the network densely (``computes == "dense"``)."""
    baseline = baseline_format(results)
    return [baseline] + [name for name, d in format_info(results).items()
                         if d.get("kind") == "engine" and d.get("computes") == "dense" and name != baseline]


def _cell(record: Mapping) -> tuple:
    return record["dataset"], record["batch"], record.get("threads")


def dense_references(results: Mapping) -> dict[tuple, dict[str, float]]:
    """``{(dataset, batch, threads): {dense format: median over its records}}``."""
    dense = set(dense_formats(results))
    times = defaultdict(lambda: defaultdict(list))
    for r in results.get("latency") or ():
        if r["format"] in dense:
            times[_cell(r)][r["format"]].append(r["median_s"])
    return {cell: {fmt: statistics.median(ts) for fmt, ts in by_format.items()} for cell, by_format in times.items()}


def reference_of(references: Mapping, record: Mapping, fmt: str) -> float | None:
    return references.get(_cell(record), {}).get(fmt)


def fastest_dense(references: Mapping, record: Mapping) -> tuple[str, float] | None:
    """The fastest dense format at this record's (dataset, batch, threads), with its reference median."""
    by_format = references.get(_cell(record))
    return min(by_format.items(), key=lambda kv: kv[1]) if by_format else None


def flagged(results: Mapping) -> dict[int, str]:
    """``{index in results["latency"]: reason}`` for every cell not to be trusted as measured."""
    references = dense_references(results)
    dense = set(dense_formats(results))
    rows = list(results.get("latency") or ())
    series = defaultdict(list)  # a non-dense format's cells along sparsity
    for i, r in enumerate(rows):
        if r["format"] not in dense:
            series[(r["dataset"], r["method"], r["format"], r["batch"], r.get("threads"), r.get("stage"))].append(i)
    below = {}
    for idx in series.values():
        idx.sort(key=lambda i: rows[i]["sparsity"])
        below.update({b: rows[a] for a, b in zip(idx, idx[1:])})
    twin = {}  # index of a cell -> index of its twin (auto and the candidate it ran there)
    by_key = {(r["dataset"], r["method"], r["sparsity"], r["batch"], r.get("threads"), r.get("stage"),
               r["format"]): i for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        j = by_key.get((r["dataset"], r["method"], r["sparsity"], r["batch"], r.get("threads"), r.get("stage"),
                        r.get("auto_choice")))
        if j is not None and j != i:
            twin[i], twin[j] = j, i
    out = {}
    for i, r in enumerate(rows):
        reasons = []
        s = spread(r)
        if s is not None and s > SPREAD_LIMIT:
            reasons.append(f"spread {100 * s:.0f}%")
        ref = reference_of(references, r, r["format"]) if r["format"] in dense else None
        if ref and not 1 / ORDER_LIMIT <= r["median_s"] / ref <= ORDER_LIMIT:
            reasons.append(f"{r['median_s'] / ref:.1f}x its median elsewhere")
        lower = below.get(i)
        if lower is not None and r["median_s"] > ORDER_LIMIT * lower["median_s"]:
            reasons.append(f"{r['median_s'] / lower['median_s']:.1f}x slower than at sparsity {lower['sparsity']:g}")
        if (r.get("others_load") or 0) > BUSY_LIMIT:
            reasons.append(f"other processes used {r['others_load']:.1f} cores")
        other = rows[twin[i]] if i in twin else None
        if other is not None and r["median_s"] > TWIN_LIMIT * other["median_s"]:
            reasons.append(f"{r['median_s'] / other['median_s']:.1f}x slower than `{other['format']}`, "
                           "which ran the same kernel")
        if reasons:
            out[i] = ", ".join(reasons)
    return out
