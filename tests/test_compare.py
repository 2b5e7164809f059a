"""python -m bench.compare: verdicts under the noise rule, unmatched cells, setup differences, bad input, files."""

import json
import math
import re
from pathlib import Path

import pytest

from bench.compare import compare_runs, main, noise_band, read_run, verdict
from bench.compare.cli import build_comparison
from bench.compare.render import render_markdown
from bench.report.cli import console

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reports" / "2026-11-21T170434Z-full"
ENV = {"cpu": "AMD EPYC", "cores": 2, "platform": "Linux", "numba_threads": 2, "numba_threading_layer": "omp",
       "blas": [{"internal_api": "openblas", "version": "0.3.30", "num_threads": 2, "architecture": "Haswell"}],
       "blas_threads": 2, "python": "3.11.7", "numpy": "2.4.6", "scipy": "1.17.1", "numba": "0.68.1",
       "tensorflow": "2.21.0", "git_commit": "abc1234"}


def record(fmt="dense", sparsity=0.5, batch=1, median=1e-3, spread=0.02, threads=2, stage="oneshot",
           dataset="mnist", method="weight"):
    return {"dataset": dataset, "method": method, "sparsity": sparsity, "format": fmt, "batch": batch,
            "threads": threads, "median_s": median, "iqr_s": spread * median, "rounds": 100, "min_s": 0.9 * median,
            "stage": stage}


def results(latency, env=None, **extra):
    return {"schema_version": 1, "created": "2026-12-01T00:00:00+00:00", "command": "python -m bench.report --grid ci",
            "environment": {**ENV, **(env or {})}, "latency": latency, **extra}


def write_run(folder: Path, res) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))
    return folder


def one_cell(ratio, spread_a, spread_b, floor=0.05):
    cmp = compare_runs([record(median=1e-3, spread=spread_a)], [record(median=ratio * 1e-3, spread=spread_b)], floor)
    (cell,) = cmp["cells"]
    assert cell["ratio"] == pytest.approx(ratio)
    return cell


def test_compare_two_times_faster_with_small_spread_is_faster():
    cell = one_cell(0.5, 0.02, 0.02)
    assert cell["verdict"] == "faster" and cell["band"] == 0.05
    assert one_cell(2.0, 0.02, 0.02)["verdict"] == "slower"


def test_compare_small_change_within_spread_is_same():
    cell = one_cell(1.03, 0.10, 0.10)
    assert cell["verdict"] == "same"
    assert cell["band"] == pytest.approx(math.hypot(0.1, 0.1))


def test_compare_noisy_run_widens_the_band():
    assert one_cell(1.10, 0.02, 0.02)["verdict"] == "slower"  # band = 5% floor
    noisy = one_cell(1.10, 0.20, 0.02)
    assert noisy["verdict"] == "same" and noisy["band"] == pytest.approx(math.hypot(0.2, 0.02))
    assert one_cell(0.90, 0.02, 0.20)["verdict"] == "same"  # either run's noise counts


def test_compare_floor_applies_without_spread_and_is_settable():
    assert one_cell(1.03, 0.0, 0.0)["verdict"] == "same"
    assert one_cell(1.08, 0.0, 0.0)["verdict"] == "slower"
    assert one_cell(1.08, 0.0, 0.0, floor=0.10)["verdict"] == "same"
    assert one_cell(1.08, 0.0, 0.0, floor=0.0)["verdict"] == "slower"
    # the band is on ln(B/A): symmetric for a ratio and its inverse
    assert verdict(1.06, 0.05) == "slower" and verdict(1 / 1.06, 0.05) == "faster"
    assert verdict(math.exp(0.0499), noise_band(0.0, 0.0)) == "same"
    with pytest.raises(ValueError, match=r"threshold must be a fraction in \[0, 1\), got 5; give 0.05"):
        compare_runs([record()], [record()], floor=5)


def test_compare_lists_cells_only_in_one_run_and_summarizes():
    a = [record("dense", 0.5, 1, 1e-3), record("dense", 0.9, 1, 1e-3), record("sparse", 0.5, 64, 4e-3),
         record("sparse", 0.9, 64, 1e-3, stage="finetuned")]
    b = [record("dense", 0.5, 1, 2e-3), record("dense", 0.9, 1, 0.5e-3), record("sparse", 0.5, 64, 4e-3),
         record("shrunk", 0.5, 1, 1e-3)]
    cmp = compare_runs(a, b)
    assert len(cmp["cells"]) == 3
    assert [(c["format"], c["sparsity"], c["stage"]) for c in cmp["only_in_a"]] == [("sparse", 0.9, "finetuned")]
    assert [(c["format"], c["batch"]) for c in cmp["only_in_b"]] == [("shrunk", 1)]
    by_format = {r["format"]: r for r in cmp["summary"]["by_format"]}
    assert by_format["dense"]["geomean_ratio"] == pytest.approx(1.0)  # 2x slower and 2x faster
    assert (by_format["dense"]["faster"], by_format["dense"]["slower"], by_format["dense"]["same"]) == (1, 1, 0)
    assert by_format["sparse"]["same"] == 1
    by_batch = {r["batch"]: r for r in cmp["summary"]["by_batch"]}
    assert by_batch[1]["cells"] == 2 and by_batch[64]["cells"] == 1
    assert cmp["summary"]["all"]["cells"] == 3


def test_compare_reads_records_without_a_stage_as_oneshot():
    old = {k: v for k, v in record(median=2e-3).items() if k != "stage"}  # a run from before recovery existed
    cmp = compare_runs([old, {**old, "format": "sparse"}], [record(median=1e-3), record(stage="finetuned")])
    assert [(c["stage"], c["verdict"]) for c in cmp["cells"]] == [("oneshot", "faster")]
    assert [c["stage"] for c in cmp["only_in_a"]] == ["oneshot"] and [c["stage"] for c in cmp["only_in_b"]] == [
        "finetuned"]


def test_compare_pairs_across_a_thread_count_change():
    cmp = compare_runs([record(threads=1, median=2e-3)], [record(threads=2, median=1e-3)])
    (cell,) = cmp["cells"]
    assert cmp["across_threads"] and (cell["threads_a"], cell["threads_b"]) == (1, 2)
    assert cell["verdict"] == "faster"


def test_compare_refuses_runs_without_common_cells_naming_the_field():
    with pytest.raises(ValueError, match=r"no latency cell in common \(dataset: A has \['mnist'\], B has \['cifar"):
        compare_runs([record()], [record(dataset="cifar10")])
    with pytest.raises(ValueError, match="two latency records for the cell"):
        compare_runs([record(), record()], [record()])


def comparison(tmp_path, res_a, res_b, floor=0.05):
    a = read_run(write_run(tmp_path / "run-a", res_a))
    b = read_run(write_run(tmp_path / "run-b", res_b))
    return build_comparison(a, b, floor)


def test_compare_flags_different_machines(tmp_path):
    cmp = comparison(tmp_path, results([record()]),
                     results([record()], env={"cpu": "Intel Xeon", "cores": 8, "git_commit": "def5678"}))
    setup = cmp["setup"]
    assert setup["same_machine"] is False and setup["machine_differences"] == ["cpu", "cores"]
    assert "git commit" in setup["setup_differences"]
    assert "ratios compare machines, not code" in render_markdown(cmp, [])


def test_compare_facts_one_run_lacks_are_no_difference(tmp_path):
    newer = {"cpu_vector_isa": "AVX2", "blas_env": {"OPENBLAS_CORETYPE": "Haswell"},
             "blas": [{**ENV["blas"][0], "kernel_isa": "AVX2"}]}
    cmp = comparison(tmp_path, results([record()]), results([record()], env=newer))
    rows = {r["what"]: r for r in cmp["setup"]["rows"]}
    assert rows["CPU vector ISA"]["b"] == "AVX2" and rows["BLAS environment"]["b"] == "OPENBLAS_CORETYPE=Haswell"
    assert rows["BLAS kernel ISA"]["a"] is None and rows["BLAS kernel ISA"]["b"] == "AVX2"
    assert cmp["setup"]["same_machine"] is True and cmp["setup"]["setup_differences"] == []


def test_compare_marks_cells_resting_on_a_flagged_measurement(tmp_path):
    a = [record("dense", s, median=1e-3) for s in (0.0, 0.5)]
    b = [record("dense", 0.0, median=2e-3, spread=0.3), record("dense", 0.5, median=2e-3)]
    cmp = comparison(tmp_path, results(a), results(b))
    flags = {c["sparsity"]: (c["verdict"], c["flag_a"], c["flag_b"]) for c in cmp["cells"]}
    assert flags == {0.0: ("slower", None, "spread 30%"), 0.5: ("slower", None, None)}
    assert cmp["summary"]["all"]["flagged"] == 1
    text = render_markdown(cmp, [])
    assert "1 of the 2 changed cells rest on a measurement" in text and "B: spread 30%" in text


def test_compare_same_machine_is_not_flagged(tmp_path):
    # the same BLAS libraries listed in another order are no difference
    blas = ENV["blas"] + [{"internal_api": "openblas", "version": "0.3.31", "num_threads": 2, "architecture": "Zen"}]
    cmp = comparison(tmp_path, results([record()], env={"blas": blas}), results([record()], env={"blas": blas[::-1]}))
    assert cmp["setup"]["same_machine"] is True and cmp["setup"]["setup_differences"] == []
    assert "different machines" not in render_markdown(cmp, [])


def test_compare_reference_run_with_itself_is_same_everywhere():
    run = read_run(REFERENCE)
    cmp = build_comparison(run, run)
    assert len(cmp["cells"]) == len(run.results["latency"]) and not cmp["only_in_a"] and not cmp["only_in_b"]
    assert {c["verdict"] for c in cmp["cells"]} == {"same"} and {c["ratio"] for c in cmp["cells"]} == {1.0}
    assert cmp["setup"]["same_machine"] is True and not cmp["setup"]["setup_differences"]
    text = render_markdown(cmp, [])
    assert f"{len(cmp['cells'])} cells in both runs: 0 faster, {len(cmp['cells'])} the same, 0 slower" in text


BAD = {
    "missing": (None, "no such run folder or results.json"),
    "no_results": ({}, "a folder without results.json"),
    "not_json": ("{not json", "is not JSON"),
    "list": ([1, 2], "holds a JSON list, expected an object"),
    "no_latency": ({"environment": ENV}, "holds no latency records"),
    "empty_latency": ({"latency": []}, "holds no latency records"),
    "record_lacks_field": ({"latency": [{"dataset": "mnist"}]}, r"lacks \['method'"),
    "bad_median": ({"latency": [record(median=-1.0)]}, r"latency\[0\].median_s is -1.0, expected a positive"),
    "no_common_cell": ({"latency": [record(dataset="cifar10")]}, "no latency cell in common"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_compare_bad_input_exits_2_with_one_line_and_no_folder(tmp_path, capsys, case):
    content, message = BAD[case]
    good = write_run(tmp_path / "good", results([record()]))
    bad = tmp_path / "bad"
    if content is not None:
        bad.mkdir()
        if content != {}:
            (bad / "results.json").write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out"
    assert main([str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists() or not list(out.iterdir())


def test_compare_refuses_an_oversized_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bench.compare.runs.MAX_RESULTS_BYTES", 100)
    run = write_run(tmp_path / "big", results([record()] * 3))
    assert main([str(run), str(run), "--out", str(tmp_path / "out")]) == 2
    assert "more than the 100 a results.json may have" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    a = write_run(root / "2026-12-01T000000Z-ci", results(
        [record(f, s, b, 1e-3) for f in ("dense", "sparse") for s in (0.0, 0.9) for b in (1, 64)]))
    b = write_run(root / "2026-12-02T000000Z-ci", results(
        [record(f, s, b, (0.5 if f == "sparse" else 1.0) * 1e-3) for f in ("dense", "sparse") for s in (0.0, 0.9)
         for b in (1, 64)] + [record("shrunk")], env={"cpu": "Intel Xeon"}))
    first = main([str(a), str(b / "results.json")])  # default: next to RUN_B
    second = console(["compare", str(a), str(b)])  # the `sparsenet compare` console command; never overwrites
    return root, first, second


def test_compare_cli_writes_the_comparison_folder(cli_runs):
    root, first, _ = cli_runs
    assert first == 0
    folder = root / "compare-2026-12-01T000000Z-ci-vs-2026-12-02T000000Z-ci"
    assert {"comparison.md", "comparison.json", "comparison.png", "comparison-mnist.png"} <= {
        p.name for p in folder.iterdir()}
    cmp = json.loads((folder / "comparison.json").read_text())
    assert {c["format"]: c["verdict"] for c in cmp["cells"]} == {"dense": "same", "sparse": "faster"}
    assert [c["format"] for c in cmp["only_in_b"]] == ["shrunk"] and cmp["setup"]["same_machine"] is False
    text = (folder / "comparison.md").read_text()
    assert "![comparison](comparison.png)" in text and "ratios compare machines, not code" in text
    assert (folder / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_console_command_never_overwrites(cli_runs):
    root, _, second = cli_runs
    assert second == 0
    names = sorted(p.name for p in root.iterdir() if p.name.startswith(("compare-", ".incomplete")))
    assert names == ["compare-2026-12-01T000000Z-ci-vs-2026-12-02T000000Z-ci",
                     "compare-2026-12-01T000000Z-ci-vs-2026-12-02T000000Z-ci-2"]
