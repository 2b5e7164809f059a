"""Read one run for a comparison: a run folder or its ``results.json``, bounded and checked.

A comparison needs a run's latency records (``dataset, method, sparsity, format, batch, threads,
median_s``, optionally ``iqr_s`` and ``stage``) and reads its ``environment``, ``machine``,
``grid`` and ``formats`` where present. Everything else in the file is ignored.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from bench.report.plots.records import checked_records
from bench.report.stages import STAGES
from sparsenet.errors import FileFormatError

__all__ = ["MAX_RESULTS_BYTES", "Run", "read_run"]

# the committed full-grid run's results.json is 0.7 MB; a user with a larger one can raise this:
# bench.compare.runs.MAX_RESULTS_BYTES = ...
MAX_RESULTS_BYTES = 64 << 20


class Run:
    """A run's name (its folder's), where it was read from, and its results dict."""

    def __init__(self, name: str, path: Path, results: dict):
        self.name, self.path, self.results = name, path, results

    def __repr__(self) -> str:
        return f"Run({self.name!r}, {str(self.path)!r})"


def read_run(path: str | os.PathLike, label: str = "run") -> Run:
    """The run at ``path`` (a run folder holding ``results.json``, or the file itself).

    Raises
    ------
    FileNotFoundError
        nothing at ``path``, or a folder without ``results.json``.
    FileFormatError (a ValueError)
        the file is larger than :data:`MAX_RESULTS_BYTES`, not JSON, not a JSON object, has no
        latency records, or a latency record lacks a field or holds a bad median or spread.
    """
    path = Path(path).expanduser()
    file = path / "results.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{label} {path}: no such run folder or results.json")
    if not file.is_file():
        raise FileNotFoundError(f"{label} {path}: a folder without results.json; give a run folder written by "
                                "python -m bench.report (reports/<UTC>-<grid>/) or its results.json")
    size = file.stat().st_size
    if size > MAX_RESULTS_BYTES:
        raise FileFormatError(file, f"is {size} bytes, more than the {MAX_RESULTS_BYTES} a results.json may have "
                                    "(bench.compare.runs.MAX_RESULTS_BYTES)")
    with open(file, "rb") as f:
        blob = f.read(MAX_RESULTS_BYTES + 1)
    try:
        results = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(file, f"is not JSON ({exc}); expected the results.json of a run") from None
    if not isinstance(results, dict):
        raise FileFormatError(file, f"holds a JSON {type(results).__name__}, expected an object with 'latency' "
                                    "records")
    _check_latency(file, results)
    name = (file.parent.name if file.name == "results.json" else file.stem) or str(file)
    return Run(name, file, results)


def _check_latency(file: Path, results: dict) -> None:
    records = results.get("latency")
    if not isinstance(records, list) or not records:
        raise FileFormatError(file, "holds no latency records ('latency' is missing or empty); a comparison needs "
                                    "a run that timed its formats (python -m bench.report)")
    if not all(isinstance(r, dict) for r in records):
        raise FileFormatError(file, "latency must be a list of objects", field="latency")
    try:
        checked_records({"latency": records}, "latency", stages=STAGES)
    except (ValueError, TypeError) as exc:
        raise FileFormatError(file, str(exc)) from None
    for i, r in enumerate(records):
        for field, required in (("median_s", True), ("iqr_s", False)):
            value = r.get(field)
            if value is None and not required:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
                    value <= 0 if field == "median_s" else value < 0):
                rule = "a positive number of seconds" if field == "median_s" else "a number of seconds >= 0"
                raise FileFormatError(file, f"is {value!r}, expected {rule}", field=f"latency[{i}].{field}")
