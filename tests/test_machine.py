"""The roofline's ceilings: the FMA peak kernel does what it claims, and the floor uses the higher peak."""

import re

import numba
import numpy as np
import pytest

from bench.report import machine
from bench.report.roofline import flop_peak, roofline_records
from sparsenet.kernels.simd import VECTOR_BITS


def llvm_host_features() -> str:
    from llvmlite import binding as llvm

    return llvm.get_host_cpu_features().flatten()


def test_fma_kernel_is_independent_fused_multiply_adds_in_registers():
    @numba.njit
    def spin(n, start):
        return machine._spin(n, start, 64, 32)

    n = 1000
    got = spin(n, np.float32(1.0))
    want = 96 * np.float32(1.0 + np.float32(-1e-7)) ** n  # every lane: a * (1 + w), n times
    assert got == pytest.approx(want, rel=1e-4)
    if "+fma" in llvm_host_features():
        ops = re.findall(r"^\s+(v\w+)", next(iter(spin.inspect_asm().values())), re.M)
        assert sum(op.startswith("vfmadd") for op in ops) >= 12  # 12 registers, each its own chain
        assert "vinsertps" not in ops  # not scalarized


def test_fma_peak_runs_at_the_hosts_width():
    assert machine.fma_peak_gflops(VECTOR_BITS, n_iter=10_000) > 0


def test_the_floor_uses_the_higher_peak_and_says_which():
    assert flop_peak({"gemm_gflops": 100.0, "fma_gflops": 180.0}) == (180.0, "FMA peak 180 GFLOP/s")
    assert flop_peak({"gemm_gflops": 100.0, "fma_gflops": 80.0}) == (100.0, "GEMM peak 100 GFLOP/s")
    assert flop_peak({"gemm_gflops": 100.0}) == (100.0, "GEMM peak 100 GFLOP/s")  # runs before the FMA peak
    lat = [{"dataset": "d", "method": "weight", "sparsity": 0.0, "format": "dense", "batch": 1024,
            "median_s": 1.0}]
    size = [{"dataset": "d", "method": "weight", "sparsity": 0.0, "format": "dense", "in_memory_bytes": 4_000_000,
             "nnz": 1_000_000}]
    m = {"gemm_gflops": 100.0, "fma_gflops": 200.0, "cache_gbps": 1e9, "dram_gbps": 1e9, "l3_bytes": 1 << 30}
    (rec,) = roofline_records(lat, size, m, {"dense": "baseline"})
    assert rec["flop_floor_s"] == pytest.approx(2 * 1_000_000 * 1024 / 200e9)


def test_integer_engines_get_the_int8_ceiling_and_one_byte_a_weight():
    m = {"gemm_gflops": 100.0, "fma_gflops": 200.0, "cache_gbps": 1e9, "dram_gbps": 1e9, "l3_bytes": 1 << 30}
    lat = [{"dataset": "d", "method": "weight", "sparsity": 0.0, "format": f, "batch": 1024, "median_s": 1.0}
           for f in ("dense", "dense_int8", "tflite_int8")]
    size = [{"dataset": "d", "method": "weight", "sparsity": 0.0, "format": f, "in_memory_bytes": b, "nnz": 1_000_000}
            for f, b in (("dense", 4_000_000), ("dense_int8", 1_000_000), ("tflite_int8", 1_000_000))]
    formats = {"dense": {"kind": "baseline"}, "dense_int8": {"kind": "structured", "quantized": True},
               "tflite_int8": {"kind": "engine", "computes": "dense", "quantized": True, "integer_math": True}}
    recs = {r["format"]: r for r in roofline_records(lat, size, m, formats)}
    assert recs["dense_int8"]["flop_floor_s"] == pytest.approx(2 * 1_000_000 * 1024 / 200e9)  # widened to float
    assert recs["tflite_int8"]["flop_floor_s"] == pytest.approx(2 * 1_000_000 * 1024 / 800e9)
    assert recs["tflite_int8"]["memory_floor_s"] == pytest.approx(1_000_000 / 1e18)


def test_cpu_vector_isa_from_llvm_features():
    from bench.runtime import cpu_vector_isa

    assert cpu_vector_isa("+sse2,+avx,+avx2,+fma,+avx512f,+avx512bw") == "AVX-512"
    assert cpu_vector_isa("+sse2,+avx,+avx2,+fma,-avx512f") == "AVX2"
    assert cpu_vector_isa("+sse2,+avx,-avx2") == "AVX"
    assert cpu_vector_isa("+neon,+fp-armv8") is None  # not ranked: no warning on ARM
    assert cpu_vector_isa() in ("AVX-512", "AVX2", "AVX", "SSE", None)


def test_a_blas_below_the_cpu_is_named_and_warned_about_at_the_top():
    from bench.report.render import render_markdown, warnings_section
    from bench.runtime import blas_below_cpu

    haswell = {"internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell", "num_threads": 2}
    mkl = {"internal_api": "mkl", "version": "2024", "architecture": None, "num_threads": 2}
    assert blas_below_cpu([haswell, mkl], "AVX2") == []
    (line,) = blas_below_cpu([haswell, mkl], "AVX-512")
    assert line == "openblas 0.3.30 runs its Haswell (AVX2) kernels on a CPU with AVX-512"
    env = {"blas_below_cpu": [line], "blas_env": {"OPENBLAS_CORETYPE": "Haswell"}}
    warning = warnings_section({"environment": env})
    assert "below this CPU" in warning and "`OPENBLAS_CORETYPE=Haswell`" in warning
    assert warnings_section({"environment": {"blas_below_cpu": []}}) == ""
    import json
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "reports" / "2026-11-21T170434Z-full"
    results = json.loads((run / "results.json").read_text())
    results["environment"] |= env
    md = render_markdown(results, [])
    assert md.index("below this CPU") < md.index("## Machine and run")


def test_bandwidth_probes_stay_in_cache_and_leave_it():
    """A 32 MiB L3 (a desktop, the EPYC): a quarter of it, and 512 MiB for DRAM. A virtual machine
    reporting a whole socket's 480 MiB L3: the cache probe stays at 8 MiB per thread (a quarter,
    120 MiB, read at DRAM speed), and the DRAM probe does not allocate 7.5 GiB."""
    from bench.report.machine import probe_bytes

    assert probe_bytes(32 << 20, 2) == (8 << 20, 512 << 20)
    assert probe_bytes(480 << 20, 2) == (16 << 20, 2 << 30)
    assert probe_bytes(4 << 30, 1)[1] == 16 << 30, "beyond L3 even where L3 is huge"


def test_each_ceiling_is_the_highest_of_its_timings():
    """A ceiling is a maximum: a timing disturbed by another process can only lower it, so the record
    keeps the highest pass and every pass's figure, and the report says how many and their range."""
    from bench.report.render import _ceiling_samples

    m = machine.measure_machine(quick=True, passes=2)
    assert set(m["samples"]) == set(machine.CEILINGS)
    for key in machine.CEILINGS:
        assert len(m["samples"][key]) == 2 and m[key] == max(m["samples"][key]) > 0
    before = {**m, "gemm_gflops": 107.0, "fma_gflops": 230.0,
              "samples": {**m["samples"], "gemm_gflops": [107.0], "fma_gflops": [230.0]}}
    after = {**m, "gemm_gflops": 187.0, "fma_gflops": 117.0, "quick": False,
             "samples": {**m["samples"], "gemm_gflops": [187.0, 150.0], "fma_gflops": [117.0, 100.0]}}
    merged = machine.merge_ceilings(before, after)
    assert merged["gemm_gflops"] == 187.0 and merged["fma_gflops"] == 230.0  # the best of each, not of one pass
    assert merged["samples"]["gemm_gflops"] == [107.0, 187.0, 150.0]
    assert merged["quick"] is True  # one smoke-length measurement makes the record a rough one
    text = _ceiling_samples(merged)
    assert "highest of 4 timings" in text and "GEMM 107-187 GFLOP/s" in text and "FMA 100-230 GFLOP/s" in text
    with pytest.raises(ValueError, match="passes"):
        machine.measure_machine(quick=True, passes=0)
