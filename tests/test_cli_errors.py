"""Both command lines turn bad paths, empty lists, unusable values and corrupt data into one
``error: ...`` line and exit 2, never a traceback (issue 15)."""

from __future__ import annotations

import shutil

import pytest

from bench.report.cli import main as report_main
from sparsenet.data import IDX_FILES, load_dataset
from sparsenet.train_cli import main as train_main


def _one_error_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err


@pytest.mark.parametrize("args, needle", [
    (["--datasets", ","], "--datasets needs at least one value"),
    (["--sparsities", " , "], "--sparsities needs at least one value"),
    (["--threads", "0"], "threads must be positive"),
    (["--data-dir", "/nonexistent/sparsenet-data"], "--data-dir: no such directory or file: /nonexistent"),
    (["--weights", "mnist=/nonexistent.npz"], "--weights: no file at /nonexistent.npz"),
])
def test_report_refuses_bad_options_with_one_line(tmp_path, capsys, args, needle):
    assert report_main([*args, "--out", str(tmp_path / "out")]) == 2
    _one_error_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_report_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    """Before: a NotADirectoryError traceback."""
    target = tmp_path / "a-file"
    target.write_text("x")
    assert report_main(["--datasets", "mnist", "--out", str(target)]) == 2
    _one_error_line(capsys.readouterr().err, str(target))


def test_report_on_a_corrupt_user_network_is_one_line(tmp_path, capsys):
    bad = tmp_path / "net.npz"
    bad.write_text("not a zip")
    code = report_main(["--weights", f"mnist={bad}", "--datasets", "mnist", "--stages", "oneshot",
                        "--out", str(tmp_path / "out")])
    assert code == 2
    _one_error_line(capsys.readouterr().err, str(bad), "not a readable .npz")
    assert not list((tmp_path / "out").glob(".incomplete-*")), "the failed run removed its folder"


@pytest.fixture
def corrupt_mnist(tmp_path):
    src = load_dataset("mnist", download=False).source
    d = tmp_path / "data"
    d.mkdir()
    for name in IDX_FILES.values():
        shutil.copyfile(f"{src}/{name}", d / name)
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    return d


def test_train_cli_on_corrupt_data_is_one_line(corrupt_mnist, tmp_path, capsys):
    """Before: a traceback (only "not found" was caught)."""
    code = train_main(["--dataset", "mnist", "--widths", "784,8,10", "--epochs", "1", "--train-samples", "100",
                       "--data-dir", str(corrupt_mnist), "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    _one_error_line(capsys.readouterr().err, "t10k-labels-idx1-ubyte.gz")


@pytest.mark.parametrize("args, needle", [
    (["--data-dir", "/nonexistent/sparsenet-data"], "--data-dir: no such directory or file"),
    (["--out", "__FILE__"], "is a file, expected a directory"),
])
def test_train_cli_refuses_bad_paths(tmp_path, capsys, args, needle):
    target = tmp_path / "a-file"
    target.write_text("x")
    args = [str(target) if a == "__FILE__" else a for a in args]
    with pytest.raises(SystemExit) as info:
        train_main(["--dataset", "mnist", "--cache-dir", str(tmp_path / "cache"), *args])
    assert info.value.code == 2
    _one_error_line(capsys.readouterr().err, needle)
