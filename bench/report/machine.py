"""Measure the machine's ceilings for the roofline view: FLOP peak and read bandwidth.

Measured in the run that uses them (same threads, same load), with the library's one timing
loop (:func:`sparsenet.host.median_seconds`). Two FLOP peaks: BLAS' float32 GEMM (what a dense
library reaches) and the FMA peak, a register-only loop of fused multiply-adds on as many
independent vector registers as the FMA units need to stay busy (:func:`fma_peak_gflops`); the
roofline uses the higher, so no cell can sit above 100% of a real limit. The bandwidth kernel is
a plain parallel sum over a float32 array: one read of every byte, the cheapest thing a forward
pass could do with its weights.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from sparsenet.host import median_seconds
from sparsenet.kernels.simd import VECTOR_BITS, register_lanes, vfma, vsplat, vstore

L3_FALLBACK_BYTES = 32 << 20
# The cache probe reads a quarter of L3, at most this much per thread. Some virtual machines
# report the whole socket's L3 (480 MiB on a 2-core Sapphire Rapids guest): a quarter of that
# (120 MiB) read at 40 GB/s there, DRAM's speed, and the probe then measured no cache at all.
CACHE_PROBE_BYTES_PER_THREAD = 8 << 20
# The DRAM probe reads 16x L3 (at least 512 MiB), at most this much: 16x that 480 MiB is 7.5 GiB.
DRAM_PROBE_MAX_BYTES = 2 << 30


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


FMA_CHAINS = 12  # independent registers: FMA latency (4-5 cycles) x FMA ports (2) < 12 on current x86 and ARM
FMA_ITERATIONS = 2_000_000


@numba.njit(inline="always")
def _spin(n_iter, start, lanes_a, lanes_b):
    """``n_iter`` fused multiply-adds on two vectors, ``lanes_a + lanes_b`` = FMA_CHAINS registers
    wide (powers of two: LLVM scalarizes other widths), each register its own dependency chain:
    a <- a + w * a. ``start`` and ``w`` arrive at run time and the result is stored, so that LLVM
    can neither fold nor drop the loop."""
    a = vsplat(start, lanes_a)
    b = vsplat(start, lanes_b)
    w = start * np.float32(-1e-7)  # a shrinks by 20% over 2e6 steps: no overflow, no denormals
    for _ in range(n_iter):
        a = vfma(a, w, a)
        b = vfma(b, w, b)
    out = np.empty(lanes_a + lanes_b, np.float32)
    vstore(out, 0, a)
    vstore(out, lanes_a, b)
    return out.sum()


@numba.njit(parallel=True, nogil=True, cache=True)
def _fma_peak(n_iter, n_threads, start, vector_bits):
    """:func:`_spin` on every thread at FMA_CHAINS registers of ``vector_bits`` (8 + 4 of them); the
    widths are literals in each branch, as _spin's must be. One kernel for all three widths, cached
    on disk like the others: the three closures it replaces were compiled afresh by every report,
    ~4.7 s of each (ten report runs in make test)."""
    out = np.zeros(n_threads, np.float32)
    for t in numba.prange(n_threads):
        if vector_bits == 512:
            out[t] = _spin(n_iter, start, 128, 64)
        elif vector_bits == 256:
            out[t] = _spin(n_iter, start, 64, 32)
        else:
            out[t] = _spin(n_iter, start, 32, 16)
    return out.sum()


def fma_peak_gflops(vector_bits: int = VECTOR_BITS, n_iter: int = FMA_ITERATIONS) -> float:
    """float32 GFLOP/s of fused multiply-adds from registers on every numba thread (2 FLOP per lane)."""
    if vector_bits not in (128, 256, 512):
        raise ValueError(f"vector_bits must be 128, 256 or 512, found {vector_bits!r}")
    threads = numba.get_num_threads()
    lanes = FMA_CHAINS * register_lanes(np.float32, vector_bits)
    seconds = median_seconds(_fma_peak, n_iter, threads, np.float32(1.0), vector_bits, min_time=0.2, min_rounds=5)
    return 2 * lanes * n_iter * threads / seconds / 1e9


def cache_bytes(level: int = 3) -> int:
    """Size of the CPU's cache ``level`` (index3 is L3 on x86 Linux), or a 32 MiB guess."""
    try:
        with open(f"/sys/devices/system/cpu/cpu0/cache/index{level}/size") as f:
            text = f.read().strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]]
    except (OSError, ValueError, KeyError):
        return L3_FALLBACK_BYTES


def probe_bytes(l3: int, threads: int) -> tuple[int, int]:
    """``(cache, dram)``: bytes the bandwidth probes read. The cache probe: a quarter of L3, at
    most CACHE_PROBE_BYTES_PER_THREAD per thread; the DRAM probe: far beyond L3 (16x, at least
    512 MiB and 4x L3, at most DRAM_PROBE_MAX_BYTES unless 4x L3 needs more)."""
    return (min(l3 // 4, CACHE_PROBE_BYTES_PER_THREAD * threads),
            max(min(16 * l3, DRAM_PROBE_MAX_BYTES), 512 << 20, 4 * l3))


# A ceiling timed while something else held a core comes out low, and nothing in a roofline then
# looks wrong except cells above 100%: a 2-core Zen 4 EPYC measured GEMM 107 and FMA 117 GFLOP/s at
# the end of a report run whose dense engines reached 190-213 GFLOP/s (a quiet moment: GEMM 187,
# FMA 215-231). A ceiling is a maximum, so each one is timed PEAK_PASSES times, a pass of all four
# after another, and the highest kept (a disturbed pass can only lower a figure); the report also
# measures before its latency stage and after it, and keeps the higher of the two (merge_ceilings).
PEAK_PASSES = 3
CEILINGS = ("gemm_gflops", "fma_gflops", "cache_gbps", "dram_gbps")


def measure_machine(quick: bool = False, passes: int = PEAK_PASSES) -> dict:
    """GEMM peak (float32, 2048^3), FMA peak, and read bandwidth from L3-sized and DRAM-sized arrays,
    each the highest of ``passes`` timings (``samples`` keeps every one, in the order taken).

    ``quick`` (smoke runs, whose latencies are rounds of a few milliseconds and mean nothing either)
    times each ceiling for a tenth as long: the same kernels, fewer rounds, noisier figures, and
    the record says so (``"quick": true``)."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, found {passes!r}")
    scale, rounds = (0.1, 2) if quick else (1.0, 5)
    rng = np.random.default_rng(0)
    a = rng.random((2048, 2048), dtype=np.float32)
    b = rng.random((2048, 2048), dtype=np.float32)
    l3 = cache_bytes(3)
    cache_probe, dram_probe = probe_bytes(l3, numba.get_num_threads())
    small = np.ones(cache_probe // 4, dtype=np.float32)  # stays cached
    big = np.ones(dram_probe // 4, dtype=np.float32)  # far beyond L3: DRAM
    chunks = 8 * numba.get_num_threads()
    samples: dict[str, list[float]] = {k: [] for k in CEILINGS}
    for _ in range(passes):
        gemm_s = median_seconds(np.matmul, a, b, min_time=0.2 * scale, min_rounds=rounds)
        samples["gemm_gflops"].append(2 * 2048**3 / gemm_s / 1e9)
        samples["fma_gflops"].append(fma_peak_gflops(n_iter=int(FMA_ITERATIONS * scale)))
        cache_s = median_seconds(_read_all, small, chunks, min_time=0.2 * scale, min_rounds=rounds)
        samples["cache_gbps"].append(small.nbytes / cache_s / 1e9)
        dram_s = median_seconds(_read_all, big, chunks, min_time=0.5 * scale, min_rounds=rounds)
        samples["dram_gbps"].append(big.nbytes / dram_s / 1e9)
    return {
        **{k: max(v) for k, v in samples.items()},
        "samples": samples,
        "vector_bits": VECTOR_BITS,
        "l3_bytes": l3,
        "cache_probe_bytes": small.nbytes,
        "threads": numba.get_num_threads(),
        "cores": os.cpu_count(),
        "quick": quick,
    }


def merge_ceilings(*measured: dict) -> dict:
    """One machine record from several :func:`measure_machine` records of the same run: each ceiling
    the highest of all, ``samples`` all of them in order, ``quick`` if any was."""
    if not measured:
        raise ValueError("merge_ceilings needs at least one measure_machine record")
    merged = dict(measured[-1])
    merged["samples"] = {k: [v for m in measured for v in m.get("samples", {}).get(k, [m[k]])] for k in CEILINGS}
    merged.update({k: max(v) for k, v in merged["samples"].items()})
    merged["quick"] = any(m.get("quick") for m in measured)
    return merged
