"""The machine a measurement runs on: its CPU's name, and the library's one timing loop.

:func:`median_seconds` is the loop that everything outside pytest-benchmark uses (``auto``'s
choice between formats, the report's machine peaks), so warm-up, settling and the median are
decided once.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cpu_name(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``cpuinfo``; where that file is missing (not Linux),
    ``platform.processor()`` or ``platform.machine()`` (e.g. ``'arm64'``)."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def median_seconds(fn: Callable[..., object], *args, min_time: float, min_rounds: int,
                   settle_s: float = 0.0) -> float:
    """Median wall time of ``fn(*args)`` in seconds.

    One untimed call first (JIT compilation, first-touch allocation), then untimed calls for
    ``settle_s`` seconds, then timed calls until both ``min_rounds`` calls and ``min_time``
    seconds have passed. The median, not the mean: one preempted round on a shared machine
    moves it by at most one rank.

    Parameters
    ----------
    fn, args
        What is timed; ``args`` are passed as they are, so no closure sits inside the timing.
    min_time
        Timed seconds at least.
    min_rounds
        Timed calls at least (>= 1).
    settle_s
        Untimed seconds of calls before timing. After a BLAS call OpenBLAS' worker threads spin
        for tens of milliseconds and slow whatever runs next (measured: numba-parallel kernels
        up to 3x at batch 1024); settling lets a candidate be judged on its own tail.

    Examples
    --------
    >>> median_seconds(sum, range(100), min_time=0.0, min_rounds=3) < 1.0
    True
    """
    if min_rounds < 1:
        raise ValueError(f"min_rounds must be >= 1, found {min_rounds!r}")
    fn(*args)
    deadline = time.perf_counter() + settle_s
    while time.perf_counter() < deadline:
        fn(*args)
    times: list[float] = []
    deadline = time.perf_counter() + min_time
    while len(times) < min_rounds or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
