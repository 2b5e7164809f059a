"""The record lists of a run's ``results`` as the figures read them: checked, selected, grouped.

Records (sparsity is a fraction in [0, 1], accuracy a fraction, times in seconds):
    models    {dataset, architecture, epochs, dense_accuracy}
    accuracy  {dataset, method, scope, sparsity, achieved_sparsity, accuracy, stage, epochs, recovery_epochs}
    latency   {dataset, method, sparsity, format, batch, threads, median_s, iqr_s, rounds, stage}
    size      {dataset, method, sparsity, format, in_memory_bytes, on_disk_bytes, zipped_bytes, saved_as}
              (runs before on-disk sizes hold ``bytes``, read as ``in_memory_bytes``, and no file sizes)
    roofline  {dataset, method, sparsity, format, batch, efficiency, ...}
``stage`` is "oneshot" (also when absent, as in files written before recovery existed),
"finetuned" or "gradual" (:mod:`bench.report.stages`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bench.report.stages import record_stage

__all__ = ["FIELDS", "FRACTIONS", "check_record_choice", "checked_records", "group_by", "latency_rows",
           "pick_threads", "select_records", "xy_points"]

FIELDS = {
    "models": ("dataset", "dense_accuracy"),
    "accuracy": ("dataset", "method", "scope", "sparsity", "achieved_sparsity", "accuracy"),
    "latency": ("dataset", "method", "sparsity", "format", "batch", "threads", "median_s"),
    "size": ("dataset", "method", "sparsity", "format", "in_memory_bytes"),
    "roofline": ("dataset", "method", "sparsity", "format", "batch", "efficiency"),
}
FRACTIONS = ("sparsity", "achieved_sparsity", "accuracy", "dense_accuracy")

def checked_records(results: Mapping, table: str, *, stages: tuple[str, ...] = ("oneshot",)) -> list[Mapping]:
    """results[table] (empty if absent) at ``stages``, every record checked for fields, fractions, stage."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping of record lists, got {type(results).__name__}")
    rows = results.get(table) or []
    if table == "size":
        rows = [_upgraded_size(row) for row in rows]
    for i, row in enumerate(rows):
        record_stage(row, f"results[{table!r}][{i}]")
        missing = [f for f in FIELDS[table] if f not in row]
        if missing:
            raise ValueError(f"results[{table!r}][{i}] lacks {missing}; "
                             f"every {table} record needs {list(FIELDS[table])}")
        for field in FRACTIONS:
            value = row.get(field)
            if value is not None and not 0.0 <= value <= 1.0:
                hint = f"; give {value / 100:g}, not {value:g}" if 1 < value <= 100 else ""
                raise ValueError(f"results[{table!r}][{i}][{field!r}] is {value!r}, "
                                 f"expected a fraction in [0, 1]{hint}")
    return [r for r in rows if record_stage(r) in stages]


def _upgraded_size(row):
    """A size record of a run before on-disk sizes existed: its ``bytes`` were the in-memory weight storage."""
    if isinstance(row, Mapping) and "in_memory_bytes" not in row and "bytes" in row:
        return {**row, "in_memory_bytes": row["bytes"]}
    return row


def select_records(results: Mapping, table: str, dataset: str, method: str | None = None) -> list[Mapping]:
    rows = checked_records(results, table)
    check_record_choice("dataset", dataset, {r["dataset"] for r in rows}, f"the {table} records")
    rows = [r for r in rows if r["dataset"] == dataset]
    if method is not None:
        check_record_choice("method", method, {r["method"] for r in rows}, f"the {table} records of {dataset!r}")
        rows = [r for r in rows if r["method"] == method]
    return rows


def latency_rows(results, dataset, method, threads) -> tuple[list[Mapping], int]:
    rows = select_records(results, "latency", dataset, method)
    return pick_threads(rows, threads, f"the latency records of {dataset!r}/{method}")


def pick_threads(rows, threads: int | None, where: str) -> tuple[list[Mapping], int]:
    found = {r["threads"] for r in rows}
    if threads is None and len(found) > 1:
        raise ValueError(f"{where} were taken at threads {sorted(found)}; pass threads= one of them")
    threads = next(iter(found)) if threads is None else threads
    check_record_choice("threads", threads, found, where)
    return [r for r in rows if r["threads"] == threads], threads


def check_record_choice(what: str, value, found: set, where: str) -> None:
    if value not in found:
        raise ValueError(f"unknown {what} {value!r}; {where} hold {sorted(found) if found else 'none'}")


def group_by(rows, *keys) -> dict:
    groups: dict = {}
    for r in rows:
        key = tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]
        groups.setdefault(key, []).append(r)
    return groups


def xy_points(rows, x: str, y: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays sorted by x; a missing or None y becomes NaN; one record per sparsity."""
    seen = [r["sparsity"] for r in rows]
    if len(set(seen)) < len(seen):
        dup = next(s for s in seen if seen.count(s) > 1)
        raise ValueError(f"{what}: {seen.count(dup)} records at sparsity {dup:g}; expected one")
    rows = sorted(rows, key=lambda r: (r[x], r["sparsity"]))
    xs = np.array([r[x] for r in rows], dtype=float)
    ys = np.array([np.nan if r.get(y) is None else r[y] for r in rows], dtype=float)
    return xs, ys
