"""Roofline floors per latency cell: the least time the machine could need for that work.

For one forward pass of ``batch`` samples:

- FLOP floor: ``2 * multiplied_weights * batch / peak``, the peak being the higher of BLAS' GEMM
  and the register-only FMA loop (:func:`flop_peak`; runs before the FMA peak existed use GEMM).
  Dense formats (kind "baseline" or "structured") multiply every stored weight (the zeros too);
  sparse formats (kind "sparse") only the kept ones (``nnz``).
- memory floor: ``weight_bytes / bandwidth``, with the cache bandwidth when the bytes fit in L3
  and the DRAM bandwidth otherwise. Dense formats read their matrices; sparse formats are
  charged ``nnz * (value + 2-byte index)``, the leanest CSR, whatever they actually store.

Which cost model a format gets comes from its ``computes`` (or its ``kind``,
:mod:`sparsenet.formats.base`); an "adaptive" format's work depends on its choice, and a format of
unknown kind has no cost model. int8 formats (``quantized``) read one byte per value; those that
multiply in integers (``integer_math``: int8 x int8 into int32, TFLite's full-integer path) get
INT8_PEAK_FACTOR times the float32 peak, an assumed ceiling, not a measured one: AVX2's
vpmaddubsw/vpmaddwd, AVX-512 VNNI's vpdpbusd and ARM's sdot do four int8 products per 32-bit lane
where an FMA does one float32 product (with the float32 peak such an engine plotted above 100%).
  Activations are not counted, so at large batches the true floor is somewhat higher.

``efficiency = max(floors) / measured``: 100% would be the machine's limit.
"""

from __future__ import annotations

DENSE_KINDS = ("baseline", "structured")
SPARSE_KINDS = ("sparse",)
VALUE_BYTES = 4  # float32 networks
INT8_PEAK_FACTOR = 4  # int8 products per 32-bit lane of one multiply-add instruction (see the docstring)
INDEX_BYTES = 2


def flop_peak(machine: dict) -> tuple[float, str]:
    """``(GFLOP/s, label)``: the higher of the measured GEMM and FMA peaks, and which it was."""
    gemm, fma = machine.get("gemm_gflops", 0.0), machine.get("fma_gflops")
    if fma is not None and fma > gemm:
        return fma, f"FMA peak {fma:.0f} GFLOP/s"
    return gemm, f"GEMM peak {gemm:.0f} GFLOP/s"


def _cost_model(description) -> tuple[str | None, int, str | None, float]:
    """``(computes, value bytes, kind, peak factor)`` of a format description (a kind string in older
    callers)."""
    d = {"kind": description} if isinstance(description, str) or description is None else description
    kind = d.get("kind")
    computes = d.get("computes") or ("dense" if kind in DENSE_KINDS else "sparse" if kind in SPARSE_KINDS else None)
    return computes, 1 if d.get("quantized") else VALUE_BYTES, kind, INT8_PEAK_FACTOR if d.get("integer_math") else 1


def roofline_records(latency: list[dict], size: list[dict], machine: dict, formats: dict) -> list[dict]:
    """One record per latency cell whose format has a cost model; ``formats`` maps names to their
    self-descriptions (``computes``, ``kind``, ``quantized``; or to a kind alone). A dense engine
    multiplies the full matrices, as the baseline stores them; a structured format its own (smaller)
    ones; a sparse one its kept weights; int8 formats read one byte per value."""
    sizes = {(r["dataset"], r["method"], r["sparsity"], r["format"]): r for r in size}
    kinds = {name: _cost_model(d)[2] for name, d in formats.items()}
    baseline = next((name for name, kind in kinds.items() if kind == "baseline"), None)
    peak = flop_peak(machine)[0] * 1e9
    out = []
    for r in latency:
        key = (r["dataset"], r["method"], r["sparsity"])
        s = sizes.get(key + (r["format"],))
        computes, value_bytes, kind, factor = _cost_model(formats.get(r["format"]))
        if s is None or computes is None:
            continue  # adaptive formats' work depends on their choice; unknown ones have no cost model
        if computes == "dense":
            own = kind == "structured" or r["format"] == baseline
            stored = s if own else sizes.get(key + (baseline,))
            if stored is None:
                continue
            weights = stored.get("in_memory_bytes", stored.get("bytes")) // (value_bytes if own else VALUE_BYTES)
            weight_bytes = weights * value_bytes  # (biases counted as weights: a rounding error)
        else:
            weights, weight_bytes = s["nnz"], s["nnz"] * (value_bytes + INDEX_BYTES)
        bandwidth = machine["cache_gbps"] if weight_bytes <= machine["l3_bytes"] else machine["dram_gbps"]
        flop_s = 2 * weights * r["batch"] / (peak * factor)
        memory_s = weight_bytes / (bandwidth * 1e9)
        floor = max(flop_s, memory_s)
        out.append({k: r[k] for k in ("dataset", "method", "sparsity", "format", "batch", "median_s")} | {
            "flop_floor_s": flop_s, "memory_floor_s": memory_s, "floor_s": floor,
            "bound": "flops" if flop_s >= memory_s else "memory", "efficiency": floor / r["median_s"],
        })
    return out
