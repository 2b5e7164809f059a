"""Fix thread counts for a run and describe the machine; shared by the pytest suite and the report."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numba
import numpy as np
import scipy
from threadpoolctl import threadpool_info, threadpool_limits

from sparsenet.host import cpu_name

_limits = None  # keeps threadpoolctl's limiter alive for the rest of the process


def fix_threads(n_threads: int | None) -> int:
    """Set numba's and BLAS' thread counts to ``n_threads`` (default: all cores) for this process."""
    global _limits
    n = n_threads or os.cpu_count() or 1
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], found {n}")
    numba.set_num_threads(n)
    _limits = threadpool_limits(limits=n)
    return n


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    for dist in (module, f"{module}-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def environment() -> dict:
    """Everything a reader needs to judge a latency: CPU, cores, threads, BLAS, versions, commit."""
    blas = [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _threading_layer(),
        "blas": blas,
        "blas_threads": blas[0]["num_threads"] if blas else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "tensorflow": _version("tensorflow"),
        "git_commit": git_commit(),
    }


def _threading_layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return None
