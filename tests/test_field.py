"""bench.report.field: `sparse` against the fastest other float format of each cell, on hand-made records."""

import pytest

from bench.report.field import field_rows, field_section

FORMATS = {
    "dense": {"kind": "baseline", "computes": "dense"},
    "sparse": {"kind": "sparse", "computes": "sparse", "operating_points": True},
    "ort": {"kind": "engine", "computes": "dense"},
    "torch_csr": {"kind": "engine", "computes": "sparse"},
    "sparse_int8": {"kind": "sparse", "computes": "sparse", "operating_points": True, "quantized": True},
    "auto": {"kind": "adaptive", "operating_points": True},
}
# (format, batch, sparsity) -> seconds; ort beats dense, torch_csr beats sparse at batch 64 and 0.9,
# the int8 format and auto are faster than everything but must not count as rivals
TIMES = {("dense", 1): 100e-6, ("ort", 1): 80e-6, ("dense", 64): 1e-3, ("ort", 64): 0.9e-3}
SPARSE = {(1, 0.5): 40e-6, (1, 0.9): 20e-6, (64, 0.5): 0.5e-3, (64, 0.9): 0.3e-3}
TORCH = {(1, 0.5): 90e-6, (1, 0.9): 60e-6, (64, 0.5): 0.8e-3, (64, 0.9): 0.2e-3}


def record(fmt, batch, sparsity, t, iqr=0.0):
    return {"dataset": "fashion_mnist", "method": "weight", "sparsity": sparsity, "format": fmt, "batch": batch,
            "threads": 2, "median_s": t, "iqr_s": iqr * t, "rounds": 10, "stage": "oneshot"}


def results(torch_iqr=0.0):
    latency = []
    for b in (1, 64):
        for s in (0.5, 0.9):
            latency += [record("dense", b, s, TIMES[("dense", b)]), record("ort", b, s, TIMES[("ort", b)]),
                        record("sparse", b, s, SPARSE[(b, s)]),
                        record("torch_csr", b, s, TORCH[(b, s)], torch_iqr if (b, s) == (64, 0.9) else 0.0),
                        record("sparse_int8", b, s, SPARSE[(b, s)] / 10), record("auto", b, s, SPARSE[(b, s)] / 2)]
    roofline = [{"dataset": "fashion_mnist", "method": "weight", "sparsity": 0.9, "format": "sparse", "batch": 64,
                 "efficiency": 0.25, "bound": "flops"}]
    return {"formats": FORMATS, "latency": latency, "roofline": roofline, "machine": {"vector_bits": 256},
            "environment": {"cpu_vector_isa": "AVX2"}}


def test_the_rival_is_the_fastest_other_float_format_of_the_cell():
    rows = {(r["batch"], r["sparsity"]): r for r in field_rows(results(), "sparse")}
    assert set(rows) == {(1, 0.5), (1, 0.9), (64, 0.5), (64, 0.9)}
    assert rows[(1, 0.5)]["rival"] == "ort" and rows[(1, 0.5)]["vs_rival"] == pytest.approx(80 / 40)
    assert rows[(1, 0.5)]["vs_baseline"] == pytest.approx(100 / 40)
    assert rows[(64, 0.9)]["rival"] == "torch_csr" and rows[(64, 0.9)]["vs_rival"] == pytest.approx(0.2 / 0.3)
    assert rows[(64, 0.9)]["efficiency"] == 0.25 and rows[(64, 0.9)]["bound"] == "flops"
    assert rows[(1, 0.9)]["efficiency"] is None
    assert not any(r["flagged"] for r in rows.values())


def test_a_flagged_rival_marks_the_cell():
    rows = {(r["batch"], r["sparsity"]): r for r in field_rows(results(torch_iqr=0.5), "sparse")}
    assert rows[(64, 0.9)]["flagged"] and not rows[(64, 0.5)]["flagged"]


def test_section_names_the_vector_width_and_leaves_out_quantized_and_adaptive_formats():
    text = field_section(results())
    assert "## `sparse` against the field" in text and "`sparse_int8` against" not in text
    assert "256-bit vectors" in text and "AVX2" in text
    assert "`torch_csr` 200 µs | 0.67×" in text
    assert "`auto`" not in text.split("|", 1)[1] and "`sparse_int8` " not in text
