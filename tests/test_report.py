"""python -m bench.report end to end on the CI grid: a real (1-epoch) model, real timings, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsenet import FORMATS, PRUNERS
from sparsenet.formats import available, describe, formats_for

REPO = Path(__file__).resolve().parents[1]


def run_report(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "bench.report", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    common = ["--grid", "ci", "--max-time", "0.01", "--quiet-wait", "0", "--out", str(out), "--sparsities", "0,0.9",
              "--batch-sizes", "1,8"]
    first = run_report(*common)
    # the second run only has to find the first one's folder: the smallest grid there is
    second = run_report("--grid", "ci", "--max-time", "0.01", "--quiet-wait", "0", "--out", str(out),
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
    assert {"latency-mnist-weight.png", "speedup-mnist-unit.png", "size-mnist-unit.png",
            "roofline-mnist-weight.png", "recovery-mnist.png", "tradeoff-mnist.png", "weights-mnist.png"} <= files
    raw = json.loads((runs[0] / f"raw-{runs[0].name}.json").read_text())
    assert raw["benchmarks"] and all("data" not in b["stats"] and "median" in b["stats"] for b in raw["benchmarks"])
    for b in raw["benchmarks"]:  # one parameter per case field, one group per network and batch
        params = b["params"]
        assert set(params) == {"dataset", "method", "sparsity", "batch", "fmt", "stage"}
        assert b["group"] == (f"{params['dataset']} {params['method']} {params['stage']} "
                              f"sparsity={params['sparsity']:g} batch={params['batch']}")
    assert {b["extra_info"]["choice"] for b in raw["benchmarks"] if b["params"]["fmt"] == "auto"} <= {
        "dense", "sparse", "shrunk"}
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
        (m, s, k, "oneshot") for m in ("unit", "weight") for s in ("global", "layer") for k in (0.0, 0.9)} | {
        (m, "layer", 0.9, stage) for m in ("unit", "weight") for stage in ("finetuned", "gradual")}
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
    worth = {m: set(formats_for(PRUNERS[m].structured)) for m in PRUNERS}  # what the registries ask for
    assert {(r["method"], r["format"], r["batch"], r["stage"]) for r in lat_recovered} == {
        (m, f, b, stage) for m in PRUNERS for f in worth[m] if FORMATS[f].operating_points
        for b in (1, 64) for stage in ("finetuned", "gradual")}
    for m in PRUNERS:
        assert {r["format"] for r in lat if r["method"] == m} == worth[m]
    assert "shrunk" in worth["unit"] and "shrunk" not in worth["weight"]
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
    modelled = {f for f, cls in FORMATS.items() if cls.kind != "adaptive" and available(cls)}
    assert {r["format"] for r in roof} == modelled
    assert len(roof) == len([r for r in lat if r["format"] in modelled])
    assert results["formats"] == {f: describe(cls) for f, cls in FORMATS.items()}
    for r in roof:
        assert r["floor_s"] == max(r["flop_floor_s"], r["memory_floor_s"]) > 0
        assert r["efficiency"] == pytest.approx(r["floor_s"] / r["median_s"])
    size = {(r["method"], r["sparsity"], r["format"]): r for r in results["size"]}
    memory = {k: r["in_memory_bytes"] for k, r in size.items()}
    assert memory[("weight", 0.9, "csr_numba")] < memory[("weight", 0.9, "dense")] / 3
    assert memory[("unit", 0.9, "shrunk")] < memory[("unit", 0.9, "dense")] / 5
    dense_file = size[("weight", 0.0, "dense")]["on_disk_bytes"]
    assert size[("weight", 0.9, "csr_numba")]["on_disk_bytes"] < dense_file / 5  # the compact file
    assert size[("weight", 0.9, "dense")]["zipped_bytes"] < dense_file / 3  # zeros in place zip well
    assert size[("weight", 0.9, "dense")]["on_disk_bytes"] == dense_file  # ... but not unzipped
    assert {r["saved_as"] for r in results["size"]} == {"dense", "shrunk", "compact", "compact_int8"}


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


@pytest.mark.parametrize("args, message", [
    (["--sparsities", "0,1.2"], "sparsity must be in [0, 1)"),
    (["--formats", "dense,bsr"], "unknown format 'bsr'"),
    (["--methods", "random"], "unknown pruning method 'random'"),
    (["--datasets", "cifar10"], "unknown dataset 'cifar10'"),
    (["--batch-sizes", "1,x"], "--batch-sizes expects a comma-separated list of int"),
    (["--stages", "oneshot,finetune"], "unknown stage 'finetune'"),
    (["--recovery-sparsities", "0.9,99"], "0.9 means 90%"),
    (["--recovery-epochs", "0"], "recovery epochs must be positive"),
])
def test_report_rejects_bad_options_before_doing_work(tmp_path, args, message):
    result = run_report("--out", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_with_corrupt_data_fails_cleanly(tmp_path):
    """A truncated data file stops the run with a message naming it, and leaves no run folder."""
    from sparsenet.data import load_dataset

    source = Path(load_dataset("mnist").source)
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    for f in source.glob("*-ubyte.gz"):
        blob = f.read_bytes()
        (data / f.name).write_bytes(blob[: len(blob) // 2] if f.name.startswith("t10k-images") else blob)
    out = tmp_path / "reports"
    result = run_report("--grid", "ci", "--out", str(out), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2  # a usage-level error: one line, exit 2 (issue 15)
    assert "t10k-images-idx3-ubyte.gz" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_report_on_the_users_own_weights(tmp_path):
    """--weights benchmarks a network trained elsewhere; no training, its accuracy measured here."""
    import numpy as np

    from sparsenet import Layer, Network, save_network

    rng = np.random.default_rng(0)
    net = Network((Layer((rng.standard_normal((64, 784)) / 28).astype(np.float32), None, "relu"),
                   Layer((rng.standard_normal((10, 64)) / 8).astype(np.float32), None, "softmax")))
    path = save_network(tmp_path / "mine.npz", net)
    out = tmp_path / "reports"
    result = run_report("--grid", "ci", "--max-time", "0.01", "--quiet-wait", "0", "--out", str(out),
                        "--weights", f"mnist={path}", "--formats", "dense,sparse,shrunk,auto")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"using your mnist network from {path}" in result.stdout
    (run,) = out.iterdir()
    results = json.loads((run / "results.json").read_text())
    (model,) = results["models"]
    assert model["architecture"] == [784, 64, 10] and model["epochs"] is None
    finetuned = [r for r in results["accuracy"] if r["stage"] == "finetuned"]
    assert finetuned and all(r["epochs"] is None and r["recovery_epochs"] == 1 for r in finetuned)
    assert 0.0 <= model["dense_accuracy"] <= 0.3, "an untrained random network is near chance"
    assert {r["format"] for r in results["latency"]} >= {"dense", "sparse", "shrunk"}
    assert "user weights" in (run / "report.md").read_text()


@pytest.mark.parametrize("weights, message", [
    ("mnist", "--weights expects DATASET=PATH.npz"),
    ("mnist=/nonexistent/net.npz", "--weights: no file at /nonexistent/net.npz"),
    ("cifar=/x.npz", "unknown dataset 'cifar'"),
])
def test_report_rejects_bad_weights_option(tmp_path, weights, message):
    result = run_report("--grid", "ci", "--out", str(tmp_path), "--weights", weights)
    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def small_classifier(tmp_path, rng, n_in=30, hidden=48, classes=5, activation="relu"):
    """A network and labelled data it classifies well (labels are its own argmax), as a user brings them."""
    import numpy as np

    from sparsenet import Layer, Network, save_network

    w1 = (rng.standard_normal((hidden, n_in)) / 5).astype(np.float32)
    w2 = (rng.standard_normal((classes, hidden)) / 7).astype(np.float32)
    net = Network((Layer(w1, np.zeros(hidden, np.float32), activation),
                   Layer(w2, np.zeros(classes, np.float32), "softmax")))
    x = rng.standard_normal((600, n_in)).astype(np.float32)
    y = (np.maximum(x @ w1.T, 0) @ w2.T).argmax(axis=1)
    np.savez(tmp_path / "test.npz", x=x[:200], y=y[:200])
    np.savez(tmp_path / "train.npz", x=x[200:], y=y[200:])
    return save_network(tmp_path / "model.npz", net)


def test_report_on_a_users_own_model_and_data(tmp_path):
    """--model with --data and --train-data: that network alone, none of ours trained, recovery on the
    user's training data, and the report says what the model is."""
    import numpy as np

    model = small_classifier(tmp_path, np.random.default_rng(1))
    out = tmp_path / "reports"
    result = run_report("--model", str(model), "--data", str(tmp_path / "test.npz"), "--train-data",
                        str(tmp_path / "train.npz"), "--grid", "ci", "--max-time", "0.01", "--quiet-wait", "0",
                        "--sparsities", "0,0.9", "--batch-sizes", "1,8", "--formats", "dense,sparse,shrunk",
                        "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "training mnist" not in result.stdout, "none of our networks is trained"
    (run,) = out.iterdir()
    results = json.loads((run / "results.json").read_text())
    (m,) = results["models"]
    assert m["dataset"] == "test" and m["architecture"] == [30, 48, 5] and m["dense_accuracy"] == 1.0
    assert m["manifest"]["classes"] == 5 and m["manifest"]["activations"] == ["relu", "softmax"]
    stages = {r["stage"] for r in results["accuracy"]}
    assert stages == {"oneshot", "finetuned", "gradual"}
    assert {r["dataset"] for r in results["latency"]} == {"test"}
    md = (run / "report.md").read_text()
    assert "Your model" in md and "30 inputs, 5 classes" in md and "(200 samples)" in md


@pytest.mark.parametrize("args, message", [
    (["--model", "MODEL"], "--model needs --data"),
    (["--model", "MODEL", "--data", "WIDE"], "samples have 20 values"),
    (["--model", "MODEL", "--data", "TEST", "--datasets", "mnist"], "leave out --datasets"),
    (["--model", "/nonexistent.keras", "--data", "TEST"], "--model: no file at /nonexistent.keras"),
])
def test_report_refuses_a_bad_own_model_or_data_before_any_work(tmp_path, args, message):
    import numpy as np

    model = small_classifier(tmp_path, np.random.default_rng(2))
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 20), np.float32), y=np.zeros(4, int))
    names = {"MODEL": str(model), "TEST": str(tmp_path / "test.npz"), "WIDE": str(tmp_path / "wide.npz")}
    out = tmp_path / "reports"
    result = run_report("--out", str(out), *[names.get(a, a) for a in args])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_the_sparsenet_command_reports_on_and_exports_a_model(tmp_path, capsys):
    import numpy as np

    from bench.report.cli import console
    from sparsenet import load_network, load_pruned

    assert console(["--help"]) == 0
    assert console(["frobnicate"]) == 2
    assert console(["report", str(tmp_path / "missing.npz"), "--data", "x.npz", "--out", str(tmp_path)]) == 2
    model = small_classifier(tmp_path, np.random.default_rng(3))
    assert console(["export", str(model), "--sparsity", "0.9", "--out", str(tmp_path / "m.spz")]) == 0
    pruned = load_pruned(tmp_path / "m.spz")
    assert pruned.achieved_sparsity() == 0.9 and pruned.net.widths == load_network(model).widths
    assert console(["export", str(model), "--sparsity", "1.5", "--out", str(tmp_path / "x.spz")]) == 2
    assert "sparsity must be in [0, 1)" in capsys.readouterr().err and not (tmp_path / "x.spz").exists()
