"""The end-of-run second look at flagged latency cells (:mod:`bench.report.noise`).

Each flagged cell is timed again after the whole grid, right after the dense case of the same
network and batch (interleaved: a disturbance that lasts hits both), and its record is replaced
by the new measurement, marked ``remeasured`` with the first median kept as ``first_median_s``.
A cell still flagged afterwards stays marked in the report. At most :data:`MAX_CELLS` cells are
re-measured, the most disturbed first (a machine busy all along is reported, not re-run forever).
"""

from __future__ import annotations

from bench.grid import Case

__all__ = ["MAX_CELLS", "merge_remeasured", "remeasure_cases"]

MAX_CELLS = 48
_KEY = ("dataset", "method", "sparsity", "format", "batch", "stage", "threads")


def _case(r: dict, fmt: str | None = None) -> Case:
    return Case(r["dataset"], r["method"], r["sparsity"], r["batch"], fmt or r["format"], r.get("stage", "oneshot"))


def remeasure_cases(latency: list[dict], flags: dict[int, str], baseline: str,
                    max_cells: int = MAX_CELLS) -> list[Case]:
    """The cases to run again, in order: per flagged cell (worst spread first, ``max_cells`` at
    most), its network's baseline case and then the cell itself; each case once."""
    worst = sorted(flags, key=lambda i: -(latency[i].get("iqr_s") or 0) / latency[i]["median_s"])[:max_cells]
    out: list[Case] = []
    for i in worst:
        for case in (_case(latency[i], baseline), _case(latency[i])):
            if case not in out:
                out.append(case)
    return out


def merge_remeasured(latency: list[dict], again: list[dict], flags: dict[int, str]) -> list[dict]:
    """``latency`` with each flagged record replaced by its new measurement from ``again``."""
    fresh = {tuple(r.get(k, "oneshot" if k == "stage" else None) for k in _KEY): r for r in again}
    out = []
    for i, r in enumerate(latency):
        new = fresh.get(tuple(r.get(k, "oneshot" if k == "stage" else None) for k in _KEY)) if i in flags else None
        out.append(r if new is None else new | {"remeasured": True, "first_median_s": r["median_s"],
                                               "first_flag": flags[i]})
    return out
