"""python -m bench.report and the sparsenet command on bad input and on a user's own model and data
(a file of its own, so that pytest-xdist runs it beside test_report.py's long end-to-end run)."""

import json
from pathlib import Path

import pytest
from test_report import QUICK, run_report


def report_main(capsys, *args) -> tuple[int, str]:
    """``python -m bench.report ARGS``'s exit code and stderr, run in this process: the checks of bad
    options happen before any work, and a subprocess per case cost ~3 s of start-up each in make test
    (the corrupt-data and user-weights tests below go through the real command line)."""
    from bench.report.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--sparsities", "0,1.2"], "sparsity must be in [0, 1)"),
    (["--formats", "dense,bsr"], "unknown format 'bsr'"),
    (["--methods", "random"], "unknown pruning method 'random'"),
    (["--datasets", "imagenet"], "unknown dataset 'imagenet'"),
    (["--batch-sizes", "1,x"], "--batch-sizes expects a comma-separated list of int"),
    (["--stages", "oneshot,finetune"], "unknown stage 'finetune'"),
    (["--recovery-sparsities", "0.9,99"], "0.9 means 90%"),
    (["--recovery-epochs", "0"], "recovery epochs must be positive"),
])
def test_report_rejects_bad_options_before_doing_work(tmp_path, capsys, args, message):
    code, err = report_main(capsys, "--out", tmp_path, *args)
    assert code == 2
    assert message in err
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
    # one method (unit: shrunk runs too), scope and recovered stage: --weights changes where the network comes
    # from, not what runs on it (every format reaches the report in test_report.py; sparse and auto here cost
    # ~40 s of cold compiles in make test)
    result = run_report("--grid", "ci", *QUICK, "--out", str(out),
                        "--weights", f"mnist={path}", "--formats", "dense,shrunk", "--methods", "unit",
                        "--scopes", "layer", "--stages", "oneshot,finetuned", "--batch-sizes", "1,8")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"using your mnist network from {path}" in result.stdout
    (run,) = out.iterdir()
    results = json.loads((run / "results.json").read_text())
    (model,) = results["models"]
    assert model["architecture"] == [784, 64, 10] and model["epochs"] is None
    finetuned = [r for r in results["accuracy"] if r["stage"] == "finetuned"]
    assert finetuned and all(r["epochs"] is None and r["recovery_epochs"] == 1 for r in finetuned)
    assert 0.0 <= model["dense_accuracy"] <= 0.3, "an untrained random network is near chance"
    assert {r["format"] for r in results["latency"]} == {"dense", "shrunk"}
    memory = {(r["sparsity"], r["format"]): r["in_memory_bytes"] for r in results["size"]}
    assert memory[(0.9, "shrunk")] < memory[(0.9, "dense")] / 5  # unit pruning pays in shrunk's bytes
    assert {r["saved_as"] for r in results["size"]} == {"dense", "shrunk"}
    assert "speedup-mnist-unit.png" in {p.name for p in run.iterdir()}
    assert "user weights" in (run / "report.md").read_text()


@pytest.mark.parametrize("weights, message", [
    ("mnist", "--weights expects DATASET=PATH.npz"),
    ("mnist=/nonexistent/net.npz", "--weights: no file at /nonexistent/net.npz"),
    ("cifar=/x.npz", "unknown dataset 'cifar'"),
])
def test_report_rejects_bad_weights_option(tmp_path, capsys, weights, message):
    code, err = report_main(capsys, "--grid", "ci", "--out", tmp_path, "--weights", weights)
    assert code == 2 and message in err
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
    # run from the user's folder with the paths as typed there: relative to it, not to the repository
    result = run_report("--model", model.name, "--data", "test.npz", "--train-data", "train.npz", "--grid", "ci",
                        *QUICK, "--sparsities", "0,0.9", "--batch-sizes", "1,8",
                        "--formats", "dense,csr_numba", "--methods", "weight", "--scopes", "layer",
                        "--out", "reports", cwd=tmp_path)
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
def test_report_refuses_a_bad_own_model_or_data_before_any_work(tmp_path, capsys, args, message):
    import numpy as np

    model = small_classifier(tmp_path, np.random.default_rng(2))
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 20), np.float32), y=np.zeros(4, int))
    names = {"MODEL": str(model), "TEST": str(tmp_path / "test.npz"), "WIDE": str(tmp_path / "wide.npz")}
    out = tmp_path / "reports"
    code, err = report_main(capsys, "--out", out, *[names.get(a, a) for a in args])
    assert code == 2 and message in err and "Traceback" not in err
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


def test_progress_prints_plain_lines_where_stderr_is_no_terminal(monkeypatch):
    """rich draws no bar into a log file; the benchmark run then says where it is in plain lines."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from bench import progress

    sink = io.StringIO()
    bar = progress.GridProgress(0.25)
    bar.console = Console(file=sink, force_terminal=False, width=200)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    bar.pytest_collection_finish(SimpleNamespace(items=[object()] * 4))
    assert bar.progress is None and "4 benchmark cases" in sink.getvalue()
    for i in range(2):
        bar.pytest_runtest_logstart(f"bench/test_forward.py::test_forward[mnist-sparse-s0.9-b{i}]", None)
        bar.pytest_runtest_logreport(SimpleNamespace(when="call", outcome="passed", passed=True, skipped=False,
                                                     failed=False))
    lines = sink.getvalue().splitlines()
    assert lines[-1].startswith("latency 2/4 cases, 0 min so far, about 0 min left (now: mnist-sparse-s0.9-b1)")
