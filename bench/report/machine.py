"""Measure the machine's ceilings for the roofline view: dense GEMM peak and read bandwidth.

Measured in the run that uses them (same threads, same load), with the library's one timing
loop (:func:`sparsenet.host.median_seconds`). The bandwidth kernel is a plain parallel sum over
a float32 array: one read of every byte, the cheapest thing a forward pass could do with its weights.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from sparsenet.host import median_seconds

L3_FALLBACK_BYTES = 32 << 20


@numba.njit(parallel=True, nogil=True, fastmath=True, cache=True)
def _read_all(a, n_chunks):
    # fastmath: the sum's value is irrelevant, only that every element is loaded (vectorized)
    partial = np.zeros(n_chunks, dtype=np.float32)
    for c in numba.prange(n_chunks):
        chunk = a[c * a.size // n_chunks:(c + 1) * a.size // n_chunks]
        s = np.float32(0)
        for i in range(chunk.size):  # indexed from 0: no wrap-around code, so it vectorizes
            s += chunk[i]
        partial[c] = s
    return partial.sum()


def cache_bytes(level: int = 3) -> int:
    """Size of the CPU's cache ``level`` (index3 is L3 on x86 Linux), or a 32 MiB guess."""
    try:
        with open(f"/sys/devices/system/cpu/cpu0/cache/index{level}/size") as f:
            text = f.read().strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]]
    except (OSError, ValueError, KeyError):
        return L3_FALLBACK_BYTES


def measure_machine() -> dict:
    """GEMM peak (float32, 2048^3) and read bandwidth from L3-sized and DRAM-sized arrays."""
    rng = np.random.default_rng(0)
    a = rng.random((2048, 2048), dtype=np.float32)
    b = rng.random((2048, 2048), dtype=np.float32)
    gemm_s = median_seconds(np.matmul, a, b, min_time=0.2, min_rounds=5)
    l3 = cache_bytes(3)
    small = np.ones(l3 // 4 // 4, dtype=np.float32)  # a quarter of L3: stays cached
    big = np.ones(max(512 << 20, 16 * l3) // 4, dtype=np.float32)  # far beyond L3: DRAM
    chunks = 8 * numba.get_num_threads()
    cache_s = median_seconds(_read_all, small, chunks, min_time=0.2, min_rounds=5)
    dram_s = median_seconds(_read_all, big, chunks, min_time=0.5, min_rounds=5)
    return {
        "gemm_gflops": 2 * 2048**3 / gemm_s / 1e9,
        "cache_gbps": small.nbytes / cache_s / 1e9,
        "dram_gbps": big.nbytes / dram_s / 1e9,
        "l3_bytes": l3,
        "threads": numba.get_num_threads(),
        "cores": os.cpu_count(),
    }
