"""bench.report.render and bench.report.render_recovery on a small hand-made results dict: the recovery
section's numbers, and that recovered records leave every one-shot section as it was."""

import copy

import pytest

from bench.report.render import render_markdown
from bench.report.render_recovery import recovery_section
from bench.report.stages import stage_budgets

FORMATS = ("dense", "sparse", "shrunk")


def seconds(fmt, batch, sparsity, stage="oneshot"):
    """shrunk is the fastest up to 95% sparsity, sparse at 98%; each stage's timings differ."""
    base = {"dense": 100e-6, "sparse": 1000e-6 * (1 - sparsity) ** 2, "shrunk": 200e-6 * (1 - sparsity) ** 1.5}[fmt]
    return base * (1 + batch / 10) * {"oneshot": 1.0, "finetuned": 0.8, "gradual": 0.9}[stage]


def make_results():
    """One dataset, one method, old-style records (no stage fields): what results.json held before."""
    env = {"cpu": "test cpu", "cores": 2, "numba_threads": 2, "blas_threads": 2, "blas": [], "python": "3.11",
           "numpy": "2", "scipy": "1", "numba": "0.60", "tensorflow": "2", "platform": "linux", "git_commit": "abc"}
    grid = (0.0, 0.5, 0.8, 0.9, 0.95)
    return {
        "command": "python -m bench.report", "created": "2026-01-01T00:00:00Z", "elapsed_s": 10.0,
        "grid": {"max_time_s": 0.25}, "environment": env,
        "models": [{"dataset": "mnist", "architecture": [784, 10], "epochs": 10, "dense_accuracy": 0.98,
                    "manifest": {"train_seconds": 60.0}}],
        "accuracy": [{"dataset": "mnist", "method": "weight", "scope": "layer", "sparsity": s,
                      "achieved_sparsity": s, "accuracy": 0.98 - 0.5 * s ** 4} for s in grid],
        "latency": [{"dataset": "mnist", "method": "weight", "sparsity": s, "format": f, "batch": b, "threads": 2,
                     "median_s": seconds(f, b, s), "iqr_s": 0.0, "rounds": 10}
                    for s in grid for f in FORMATS for b in (1, 64, 1024)],
        "size": [{"dataset": "mnist", "method": "weight", "sparsity": s, "format": f, "bytes": 1000}
                 for s in grid for f in FORMATS],
        "machine": {"threads": 2, "gemm_gflops": 100.0, "cache_gbps": 50.0, "l3_bytes": 32 << 20,
                    "dram_gbps": 10.0},
        "roofline": [{"dataset": "mnist", "method": "weight", "sparsity": 0.9, "format": f, "batch": b,
                      "efficiency": 0.5, "floor_s": 1e-5, "bound": "memory"} for f in FORMATS for b in (1, 64)],
    }


RECOVERY = {"stages": ["oneshot", "finetuned", "gradual"], "sparsities": [0.9, 0.95, 0.98], "scopes": ["layer"],
            "finetune": {"epochs": 5, "learning_rate": 5e-4, "description": "FT-DESCRIPTION"},
            "gradual": {"epochs": 4, "description": "GRADUAL-DESCRIPTION"}, "dense_epochs": {"mnist": 10}}
ACCURACY = {("finetuned", 0.9): 0.975, ("finetuned", 0.95): 0.97, ("finetuned", 0.98): 0.96,
            ("gradual", 0.9): 0.9765, ("gradual", 0.98): 0.9612}  # no gradual run at 0.95


def add_recovery(results):
    """Recovered accuracy and latency, the latency colliding with one-shot cells at 0.9 and 0.95."""
    for (stage, s), acc in ACCURACY.items():
        budget = {"finetuned": 5, "gradual": 4}[stage]
        results["accuracy"].append({"dataset": "mnist", "method": "weight", "scope": "layer", "sparsity": s,
                                    "achieved_sparsity": s, "accuracy": acc, "stage": stage,
                                    "epochs": 10 + budget, "recovery_epochs": budget})
        results["latency"] += [{"dataset": "mnist", "method": "weight", "sparsity": s, "format": f, "batch": b,
                                "threads": 2, "median_s": seconds(f, b, s, stage), "iqr_s": 0.0, "rounds": 10,
                                "stage": stage} for f in FORMATS for b in (1, 64)]
    results["recovery"] = copy.deepcopy(RECOVERY)
    return results


def table_rows(text, first_cell):
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell} |")]


def test_recovered_records_leave_the_one_shot_sections_unchanged():
    figures = ["accuracy-mnist.png", "latency-mnist-weight.png", "recovery-mnist.png", "tradeoff-mnist.png"]
    before = render_markdown(make_results(), figures)
    after = render_markdown(add_recovery(make_results()), figures)
    section = recovery_section(add_recovery(make_results()), figures)
    assert section.startswith("## Accuracy recovery")
    assert after == before.replace("\n\n## Break-even", f"\n\n{section}\n\n## Break-even")


def test_without_recovery_key_or_recovered_records_there_is_no_recovery_section():
    results = make_results()
    assert recovery_section(results, []) == ""
    assert "recovery" not in render_markdown(results, []).lower()
    results["recovery"] = copy.deepcopy(RECOVERY)  # a run with --stages oneshot
    assert recovery_section(results, []) == ""


def test_recovery_table_shows_each_stage_and_a_dash_for_gaps():
    section = recovery_section(add_recovery(make_results()), ["recovery-mnist.png", "tradeoff-mnist.png"])
    assert "Dense network: 98.00% after 10 epochs. Budgets: one-shot + fine-tune 10+5, gradual 10+4." in section
    assert "`fine-tuned`, 5 epochs: FT-DESCRIPTION. `gradual`, 4 epochs: GRADUAL-DESCRIPTION." in section
    one_shot = {s: f"{100 * (0.98 - 0.5 * s ** 4):.2f}%" for s in (0.9, 0.95)}
    assert table_rows(section, "weight") == [
        ["weight", "0.90", one_shot[0.9], "97.50%", "97.65%"],
        ["weight", "0.95", one_shot[0.95], "97.00%", "—"],
        ["weight", "0.98", "—", "96.00%", "96.12%"],  # 0.98 is not in the one-shot grid
    ]
    assert "![recovery-mnist](recovery-mnist.png)" in section and "![tradeoff-mnist](tradeoff-mnist.png)" in section


def test_operating_points_name_the_fastest_format_its_median_and_speed_up():
    rows = table_rows(recovery_section(add_recovery(make_results()), []), "mnist")
    # the dense network: one-shot dense format at sparsity 0, 100 µs x (1 + batch / 10)
    assert rows[0] == ["mnist", "—", "dense", "0.00", "98.00%",
                       "`dense` 110 µs (1.00×)", "`dense` 740 µs (1.00×)"]
    # fine-tuned at 0.9: shrunk 200 µs x 0.1**1.5 x 0.8 x (1 + batch / 10) = 5.57 / 37.4 µs
    assert rows[1] == ["mnist", "weight", "finetuned", "0.90", "97.50%", "`shrunk` 6 µs (19.76×)",
                       "`shrunk` 37 µs (19.76×)"]
    assert [r[2:4] for r in rows[1:]] == [["finetuned", "0.90"], ["finetuned", "0.95"], ["finetuned", "0.98"],
                                          ["gradual", "0.90"], ["gradual", "0.98"]]
    dense, best = seconds("dense", 64, 0.0), seconds("sparse", 64, 0.98, "gradual")
    assert rows[-1][-1] == f"`sparse` {best * 1e6:.0f} µs ({dense / best:.2f}×)"


def test_budgets_come_from_the_records():
    results = add_recovery(make_results())
    assert stage_budgets(results, "mnist") == {"dense": "10 epochs", "finetuned": "10+5", "gradual": "10+4"}
    results["models"][0]["epochs"] = None  # a user-supplied network: dense_epochs is the fallback
    for r in results["accuracy"]:
        if r.get("stage") == "gradual":
            r["epochs"] = None
    assert stage_budgets(results, "mnist") == {"dense": "10 epochs", "finetuned": "10+5", "gradual": "?+4"}


def test_unknown_stage_is_named():
    results = add_recovery(make_results())
    results["latency"][-1]["stage"] = "retrained"
    with pytest.raises(ValueError, match=r"unknown stage 'retrained' in record mnist/weight/0.98; "
                                         r"expected one of \['oneshot', 'finetuned', 'gradual'\]"):
        render_markdown(results, [])


def test_the_committed_reference_report_re_renders_with_the_same_numbers():
    """Every table row and heading of the committed reference report comes back from its results.json."""
    import json
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "reports" / "2026-11-21T170434Z-full"
    results = json.loads((run / "results.json").read_text())
    figures = sorted(p.name for p in run.glob("*.png"))
    old, new = (run / "report.md").read_text().splitlines(), render_markdown(results, figures).splitlines()
    kept = [line for line in old if line.startswith(("|", "#", "!["))]
    assert kept == [line for line in new if line.startswith(("|", "#", "!["))]
    assert len(kept) > 300


def test_formats_that_cannot_run_the_network_are_named_not_silently_missing():
    import json
    from pathlib import Path

    from bench.report.formats import describe_registry

    run = Path(__file__).resolve().parents[1] / "reports" / "2026-11-21T170434Z-full"
    results = json.loads((run / "results.json").read_text())
    assert "Not timed on" not in render_markdown(results, [])  # relu networks: every format runs
    results["formats"] = describe_registry()
    results["models"][0]["manifest"]["activations"] = ["tanh", "softmax"]
    md = render_markdown(results, [])
    assert "`sparse` (runs linear, relu, softmax only)" in md and "Not timed on fashion_mnist" in md


def test_file_table_shows_the_tflite_int8_file_and_its_accuracy():
    """The size chain's last step: TFLite's full-integer file, with the accuracy of that conversion."""
    results = make_results()
    results["formats"] = {"dense": {"kind": "baseline"}, "sparse": {"kind": "sparse"}, "shrunk": {"kind": "structured"},
                          "tflite_int8": {"kind": "engine", "quantized": True}}
    results["size"] = [{"dataset": "mnist", "method": "weight", "scope": "layer", "sparsity": s, "format": f,
                        "nnz": 10, "in_memory_bytes": 1000, "on_disk_bytes": disk, "zipped_bytes": disk // 2,
                        "saved_as": saved}
                       for s in (0.5, 0.9)
                       for f, saved, disk in (("dense", "dense", 9_546_000), ("tflite_int8", "tflite_int8", 2_421_000))]
    for r in results["accuracy"]:
        r["tflite_int8_accuracy"] = r["accuracy"] - 0.01
    md = render_markdown(results, [])
    assert "TFLite int8 accuracy" in md and "TFLite int8: on disk / zipped" in md
    row = next(line for line in md.splitlines() if line.startswith("| 0.90 |") and "2.421 / 1.210 MB" in line)
    acc = next(r for r in results["accuracy"] if r["sparsity"] == 0.9)
    assert f"{100 * acc['tflite_int8_accuracy']:.2f}%" in row


def test_file_table_shows_the_int8_static_accuracy():
    """sparse_int8_static's accuracy (calibrated on training samples) gets its own column."""
    results = make_results()
    results["formats"] = {"dense": {"kind": "baseline"}, "sparse": {"kind": "sparse"}}
    results["size"] = [{"dataset": "mnist", "method": "weight", "scope": "layer", "sparsity": s, "format": "dense",
                        "nnz": 10, "in_memory_bytes": 1000, "on_disk_bytes": 9_546_000, "zipped_bytes": 4_000_000,
                        "saved_as": "dense"} for s in (0.5, 0.9)]
    for r in results["accuracy"]:
        r["int8_static_accuracy"] = r["accuracy"] - 0.0123
    md = render_markdown(results, [])
    assert "| int8 static accuracy |" in md and "TFLite int8 accuracy" not in md
    acc = next(r for r in results["accuracy"] if r["sparsity"] == 0.9)
    row = next(line for line in md.splitlines() if line.startswith("| 0.90 |") and "9.546" in line)
    assert f"{100 * acc['int8_static_accuracy']:.2f}%" in row
