"""python -m bench.report end to end on the CI grid: a real (1-epoch) model, real timings, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsenet import FORMATS, PRUNERS
from sparsenet.formats import available, describe, formats_for

REPO = Path(__file__).resolve().parents[1]
# every kind of format of our own once (one int8 format, not all: each adds a compile to the run);
# tests/test_registry.py proves that any registered format, engines included, reaches the report, and
# tests/test_compare.py runs the engines through the comparison command
TIMED = ("dense", "csr_scipy", "csr_numba", "csr_numba_par", "sparse", "shrunk", "auto", "sparse_int8")
# One pruning method: weight pruning, every stage. Unit pruning through the report (shrunk, its sizes) is
# tests/test_report_inputs.py's, on a smaller network: both methods here took a third of make test's
# 10 minutes on a 2-core EPYC, most of it on one worker.
METHODS = ("weight",)
# What every report run of the tests passes: rounds of milliseconds, no waiting for a quiet machine, and
# one thread (beside the other xdist worker a second numba and BLAS thread only spins for a core that is
# not free: make test's 10 minutes are CPU-bound).
QUICK = ("--max-time", "0.01", "--quiet-wait", "0", "--threads", "1")


def run_report(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "bench.report", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    common = ["--grid", "ci", *QUICK, "--out", str(out),
              "--sparsities", "0,0.9", "--batch-sizes", "1,8", "--formats", ",".join(TIMED),
              "--methods", ",".join(METHODS)]
    first = run_report(*common)
    # the second run only has to find the first one's folder: the smallest grid there is
    second = run_report("--grid", "ci", *QUICK, "--out", str(out),
                        "--sparsities", "0", "--batch-sizes", "1", "--methods", "weight", "--formats", "dense",
                        "--stages", "oneshot", "--scopes", "layer")
    return out, first, second


def test_report_writes_a_complete_run_folder(report_runs):
    out, first, _ = report_runs
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    runs = sorted(p for p in out.iterdir())
    assert all(not p.name.startswith(".incomplete") for p in runs), "no temp folder left behind"
    files = {p.name for p in runs[0].iterdir()}
    assert {"results.json", "report.md", f"raw-{runs[0].name}.json", "accuracy-mnist.png"} <= files
    assert {"latency-mnist-weight.png", "speedup-mnist-weight.png", "size-mnist-weight.png",
            "roofline-mnist-weight.png", "recovery-mnist.png", "tradeoff-mnist.png", "weights-mnist.png"} <= files
    raw = json.loads((runs[0] / f"raw-{runs[0].name}.json").read_text())
    assert raw["benchmarks"] and all("data" not in b["stats"] and "median" in b["stats"] for b in raw["benchmarks"])
    for b in raw["benchmarks"]:  # one parameter per case field, one group per network and batch
        params = b["params"]
        assert set(params) == {"dataset", "method", "sparsity", "batch", "fmt", "stage"}
        assert b["group"] == (f"{params['dataset']} {params['method']} {params['stage']} "
                              f"sparsity={params['sparsity']:g} batch={params['batch']}")
    assert {b["extra_info"]["choice"] for b in raw["benchmarks"] if b["params"]["fmt"] == "auto"} <= {
        "dense", "sparse", "shrunk", "sparse_block"}  # sparse_block: at sparsity 0 every block is whole
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in first.stdout, "progress is printed"


def test_report_results_schema(report_runs):
    out, _, _ = report_runs
    results = json.loads((sorted(out.iterdir())[0] / "results.json").read_text())
    env = results["environment"]
    for key in ("cpu", "cores", "numba_threads", "blas_threads", "python", "numpy", "scipy", "numba",
                "tensorflow", "git_commit"):
        assert key in env
    (model,) = results["models"]
    assert model["dataset"] == "mnist" and model["architecture"] == [784, 1000, 1000, 500, 200, 10]
    assert model["epochs"] == 1 and model["dense_accuracy"] > 0.9
    acc = results["accuracy"]
    assert {(r["method"], r["scope"], r["sparsity"], r["stage"]) for r in acc} == {
        (m, s, k, "oneshot") for m in METHODS for s in ("global", "layer") for k in (0.0, 0.9)} | {
        (m, "layer", 0.9, stage) for m in METHODS for stage in ("finetuned", "gradual")}
    dense_acc = [r["accuracy"] for r in acc if r["sparsity"] == 0.0]
    assert all(a == pytest.approx(model["dense_accuracy"], abs=1e-3) for a in dense_acc)
    for r in acc:
        assert (r["epochs"], r["recovery_epochs"]) == ((1, 0) if r["stage"] == "oneshot" else (2, 1))
    recovered = {(r["method"], r["stage"]): r for r in acc if r["stage"] != "oneshot"}
    oneshot = {r["method"]: r for r in acc if r["stage"] == "oneshot" and r["scope"] == "layer" and r["sparsity"]}
    for (method, _), r in recovered.items():
        assert r["achieved_sparsity"] == pytest.approx(oneshot[method]["achieved_sparsity"], abs=1e-3)
    # one recovery epoch on a sixth of the data wins back accuracy lost to one-shot weight pruning
    assert recovered[("weight", "finetuned")]["accuracy"] > oneshot["weight"]["accuracy"] + 0.02
    rec = results["recovery"]
    assert rec["stages"] == ["oneshot", "finetuned", "gradual"] and rec["sparsities"] == [0.9]
    assert rec["finetune"]["epochs"] == rec["gradual"]["epochs"] == 1
    assert 0 == rec["gradual"]["begin_step"] < rec["gradual"]["end_step"] < rec["gradual"]["steps"] == 79
    lat = [r for r in results["latency"] if r["stage"] == "oneshot"]
    lat_recovered = [r for r in results["latency"] if r["stage"] != "oneshot"]
    methods = METHODS
    worth = {m: set(formats_for(PRUNERS[m].structured, method_blocks=PRUNERS[m].block_rows is not None))
             & set(TIMED) for m in methods}  # what the registries ask for
    assert {(r["method"], r["format"], r["batch"], r["stage"]) for r in lat_recovered} == {
        (m, f, b, stage) for m in methods for f in worth[m] if FORMATS[f].operating_points
        for b in (1, 64) for stage in ("finetuned", "gradual")}
    for m in methods:
        assert {r["format"] for r in lat if r["method"] == m} == worth[m]
    assert "shrunk" not in worth["weight"]
    assert len(lat) == 2 * 2 * sum(len(w) for w in worth.values())
    for r in lat:
        assert r["median_s"] > 0 and r["rounds"] >= 5 and r["threads"] == env["numba_threads"]
        assert set(r) >= {"dataset", "method", "sparsity", "format", "batch", "threads", "median_s", "iqr_s",
                          "rounds"}
    machine = results["machine"]
    # measured values only: which is faster is a timing, and timings are not gated (a loaded machine
    # measured L3 below DRAM here once)
    assert machine["gemm_gflops"] > 0 and machine["cache_gbps"] > 0 and machine["dram_gbps"] > 0
    assert machine["fma_gflops"] > 0 and machine["vector_bits"] in (128, 256, 512)
    roof = results["roofline"]
    modelled = {f for f, cls in FORMATS.items() if cls.kind != "adaptive" and available(cls)
                and any(f in w for w in worth.values())}
    assert {r["format"] for r in roof} == modelled
    assert len(roof) == len([r for r in lat if r["format"] in modelled])
    assert results["formats"] == {f: describe(cls) for f, cls in FORMATS.items()}
    for r in roof:
        assert r["floor_s"] == max(r["flop_floor_s"], r["memory_floor_s"]) > 0
        assert r["efficiency"] == pytest.approx(r["floor_s"] / r["median_s"])
    size = {(r["method"], r["sparsity"], r["format"]): r for r in results["size"]}
    memory = {k: r["in_memory_bytes"] for k, r in size.items()}
    assert memory[("weight", 0.9, "csr_numba")] < memory[("weight", 0.9, "dense")] / 3
    dense_file = size[("weight", 0.0, "dense")]["on_disk_bytes"]
    assert size[("weight", 0.9, "csr_numba")]["on_disk_bytes"] < dense_file / 5  # the compact file
    assert size[("weight", 0.9, "dense")]["zipped_bytes"] < dense_file / 3  # zeros in place zip well
    assert size[("weight", 0.9, "dense")]["on_disk_bytes"] == dense_file  # ... but not unzipped
    assert {r["saved_as"] for r in results["size"]} == {"dense", "compact", "compact_int8"}


def test_report_never_overwrites_an_earlier_run(report_runs):
    out, first, second = report_runs
    assert second.returncode == 0
    assert len([p for p in out.iterdir()]) == 2


def test_report_markdown_states_machine_and_embeds_plots(report_runs):
    out, _, _ = report_runs
    md = (sorted(out.iterdir())[0] / "report.md").read_text()
    assert "## Machine and run" in md and "numba" in md and "BLAS" in md
    assert "![accuracy-mnist](accuracy-mnist.png)" in md
    assert "batch 8:" in md and "csr_numba_par" in md
    assert "## Break-even: where sparse beats dense" in md
    assert "## Roofline" in md and "GFLOP/s" in md
