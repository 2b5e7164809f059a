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


# The instruction set of each OpenBLAS kernel family (threadpoolctl's "architecture", OpenBLAS'
# core names), ranked like the CPU's best vector extension below: what the dense baseline really ran.
BLAS_KERNEL_ISA = {
    **dict.fromkeys(("Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Opteron", "Opteron_SSE3",
                     "Barcelona", "Bobcat", "Atom", "Nano"), "SSE"),
    **dict.fromkeys(("Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"), "AVX"),
    **dict.fromkeys(("Haswell", "Zen"), "AVX2"),
    **dict.fromkeys(("SkylakeX", "Cooperlake", "SapphireRapids"), "AVX-512"),
}
ISA_RANK = {"SSE": 1, "AVX": 2, "AVX2": 3, "AVX-512": 4}
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def cpu_vector_isa(features: str | None = None) -> str | None:
    """The CPU's widest x86 vector extension (``"AVX-512"``, ``"AVX2"``, ``"AVX"``, ``"SSE"``) from LLVM's
    host features (``"+avx2,+fma,..."``); None on other architectures (ARM: NEON, no ranking here)."""
    if features is None:
        from llvmlite import binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    have = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in have:
        return "AVX-512"
    if "avx2" in have and "fma" in have:
        return "AVX2"
    if "avx" in have:
        return "AVX"
    return "SSE" if "sse2" in have else None


def blas_below_cpu(blas: list[dict], cpu_isa: str | None) -> list[str]:
    """One line per BLAS library whose kernels use a narrower instruction set than the CPU has."""
    out = []
    for b in blas:
        isa = BLAS_KERNEL_ISA.get(b.get("architecture") or "")
        if isa and cpu_isa in ISA_RANK and ISA_RANK[isa] < ISA_RANK[cpu_isa]:
            out.append(f"{b.get('internal_api')} {b.get('version')} runs its {b.get('architecture')} ({isa}) kernels "
                       f"on a CPU with {cpu_isa}")
    return out


def environment() -> dict:
    """Everything a reader needs to judge a latency: CPU, cores, threads, BLAS, versions, commit."""
    blas = [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    for b in blas:
        b["kernel_isa"] = BLAS_KERNEL_ISA.get(b.get("architecture") or "")
    isa = cpu_vector_isa()
    return {
        "cpu": cpu_name(),
        "cpu_vector_isa": isa,
        "blas_env": {k: os.environ[k] for k in BLAS_ENV if k in os.environ},
        "blas_below_cpu": blas_below_cpu(blas, isa),
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
        "engines": {name: _version(name) for name in ("onnxruntime", "torch", "ai-edge-litert")},
        "engines_absent": _absent_engines(),
        "git_commit": git_commit(),
    }


def _absent_engines() -> dict[str, str]:
    from sparsenet.formats import unavailable_engines

    return dict(unavailable_engines())


def _threading_layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return None
