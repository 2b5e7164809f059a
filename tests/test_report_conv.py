"""python -m bench.report's conv section end to end on a tiny budget: a real MobileNetV2 (width
0.35) trained on a few hundred Fashion-MNIST 32x32 images for 1 epoch, pruned flat and per layer,
timed at batch 1 in every format that runs it, and reported. (Recovery of conv networks:
tests/test_recover_conv.py, on a smaller model: tracing MobileNetV2's masked training step
alone takes 30-70 s on 2 busy cores.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import QUICK

from sparsenet.formats import formats_for
from sparsenet.train_conv import MOBILENET_ACTIVATIONS, MOBILENET_LAYER_KINDS

pytest.importorskip("tensorflow", reason="the conv section trains MobileNetV2 with the 'train' extra")

REPO = Path(__file__).resolve().parents[1]
TINY = ["--datasets", "fashion_mnist_32", "--conv-alpha", "0.35", "--conv-epochs", "1", "--conv-samples", "256",
        "--conv-test-samples", "128", "--conv-recovery-sparsities", "0.9", "--conv-recovery-samples", "256",
        "--sparsities", "0.9", "--batch-sizes", "1", "--methods", "weight", "--stages", "oneshot",
        "--scopes", "global,layer", *QUICK, "--formats", "dense"]
# timed in dense only: sparse_conv's correctness is tests/test_sparse_conv.py's, and its cold compile
# in the report's benchmark child cost another ~90 s of make test's 10 minutes


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv_reports")
    done = subprocess.run([sys.executable, "-m", "bench.report", *TINY, "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = [p for p in out.iterdir()]
    return run, json.loads((run / "results.json").read_text()), (run / "report.md").read_text()


def test_conv_section_accuracy_flat_and_per_layer(conv_run):
    _, results, _ = conv_run
    acc = [r for r in results["accuracy"] if r["dataset"] == "fashion_mnist_32"]
    assert {(r["scope"], r["stage"]) for r in acc if r["sparsity"] == 0.9} == {
        ("global", "oneshot"), ("layer", "oneshot")}
    for r in acc:
        assert 0.0 <= r["accuracy"] <= 1.0
        if r["sparsity"] == 0.9:
            assert r["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    info = results["conv"]["fashion_mnist_32"]
    assert info["alpha"] == 0.35 and info["epochs"] == 1 and info["train_samples"] == 256
    assert info["test_images_in_report"] == 128 and "not CIFAR-10" in info["dataset_words"]


def test_conv_section_times_every_format_that_runs_mobilenet(conv_run):
    _, results, report = conv_run
    timed = {r["format"] for r in results["latency"] if r["dataset"] == "fashion_mnist_32"}
    assert timed == {"dense"} and "sparse_conv" in formats_for(False, MOBILENET_LAYER_KINDS, MOBILENET_ACTIVATIONS)
    assert {r["batch"] for r in results["latency"]} == {1}
    assert {r["stage"] for r in results["latency"]} == {"oneshot"}
    sizes = [r for r in results["size"] if r["dataset"] == "fashion_mnist_32"]
    assert sizes and all(r["on_disk_bytes"] > 0 and r["zipped_bytes"] > 0 for r in sizes)
    assert "## Conv networks: MobileNetV2" in report and "fashion_mnist_32: Fashion-MNIST padded to 32x32" in report
    assert "conv-recovery-fashion_mnist_32.png" in report


def test_conv_section_figure_is_written(conv_run):
    run, _, _ = conv_run
    assert (run / "conv-recovery-fashion_mnist_32.png").stat().st_size > 10_000


def test_conv_section_breaks_the_time_down_by_layer(conv_run):
    run, results, report = conv_run
    recs = results["layers"]
    n_layers = results["conv"]["fashion_mnist_32"]["layers"]
    assert {(r["format"], r["sparsity"], r["batch"]) for r in recs} == {("dense", 0.9, 1)}
    assert sorted(r["layer"] for r in recs) == list(range(n_layers))
    assert {r["role"] for r in recs} == {"stem conv", "1x1 expand", "depthwise", "1x1 project", "1x1 other",
                                         "pooling", "classifier"}
    assert all(r["whole_s"] > 0 for r in recs)  # a layer's own time is a difference: may be slightly negative
    first = min(recs, key=lambda r: r["layer"])  # its paired difference is with nothing (paired_differences)
    assert first["median_s"] == first["whole_s"]
    assert "Time per layer (fashion_mnist_32" in report and "| whole network (suite) |" in report
    assert (run / "conv-layers-fashion_mnist_32.png").stat().st_size > 10_000
