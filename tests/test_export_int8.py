"""``sparsenet export --int8`` and :func:`sparsenet.export_int8.save_int8`: the int8 compact file
written atomically, loaded straight into sparse_int8, bad input and tampered files refused by name."""

import zipfile

import numpy as np
import pytest

from bench.report.cli import console
from sparsenet import FileFormatError, prune, save_network
from sparsenet.export_int8 import load_quantized, load_sparse_int8, load_sparse_int8_static, save_int8, save_quantized
from sparsenet.formats.sparse_int8 import SparseInt8Forward
from sparsenet.quantize import quantize

from conftest import random_net

WIDTHS = (60, 40, 25, 7)


@pytest.fixture
def masked(rng):
    return prune(random_net(rng, WIDTHS, bias=True), "weight", 0.8)


def test_save_int8_round_trip_into_sparse_int8(tmp_path, rng, masked):
    path = save_int8(masked, tmp_path / "sub" / "net.spz", accuracy=0.9, source="test")
    assert [p.name for p in path.parent.iterdir()] == ["net.spz"]  # no temporary file left
    back = load_quantized(path)
    for a, b in zip(quantize(masked).layers, back.layers):
        np.testing.assert_array_equal(a.q, b.q)
        np.testing.assert_array_equal(a.scale, b.scale)
    forward = load_sparse_int8(path)
    built = SparseInt8Forward.build(masked)
    for n in (1, 5, 64):
        x = rng.random((n, WIDTHS[0]), dtype=np.float32)
        np.testing.assert_array_equal(forward(x), built(x))


def test_static_file_loads_into_sparse_int8_static(tmp_path, rng, masked):
    """A static network's file keeps its calibrated steps: the loaded format computes exactly what
    the one built from the network does; the weight-only loader refuses it by name."""
    from sparsenet.formats.sparse_int8_static import SparseInt8StaticForward

    qnet = quantize(masked, "static", rng.random((300, WIDTHS[0]), dtype=np.float32))
    path = save_quantized(qnet, tmp_path / "static.spz")
    forward = load_sparse_int8_static(path)
    built = SparseInt8StaticForward.build_quantized(qnet)
    for n in (1, 7, 64):
        x = rng.random((n, WIDTHS[0]), dtype=np.float32)
        np.testing.assert_array_equal(forward(x), built(x))
    with pytest.raises(NotImplementedError, match="sparse_int8_static"):
        load_sparse_int8(path)


def test_save_int8_refuses_bad_input(tmp_path, rng, masked):
    with pytest.raises(ValueError, match="net.keras: the int8 export writes sparsenet's compact int8 file"):
        save_int8(masked, tmp_path / "net.keras")
    with pytest.raises(TypeError, match="save_int8 needs a MaskedNetwork.*found Network"):
        save_int8(masked.net, tmp_path / "a.spz")
    with pytest.raises(ValueError, match="unknown index coding 'zip'"):
        save_int8(masked, tmp_path / "a.spz", index_coding="zip")
    f64 = prune(random_net(rng, (8, 4, 3), dtype=np.float64), "weight", 0.5)
    with pytest.raises(NotImplementedError, match="run float32 networks; this one is float64"):
        save_int8(f64, tmp_path / "a.spz")
    assert not list(tmp_path.iterdir())


def test_save_int8_is_atomic(tmp_path, masked, monkeypatch):
    """A write that fails half-way leaves the earlier file intact and no temporary file."""
    path = save_int8(masked, tmp_path / "net.spz")
    before = path.read_bytes()
    calls = []

    def failing_writestr(self, name, data, *args, **kwargs):
        calls.append(name)
        if len(calls) > 2:
            raise OSError("disk full")
        return original(self, name, data, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        save_int8(masked, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["net.spz"]


def test_tampered_int8_files_are_refused_by_name(tmp_path, masked):
    path = save_int8(masked, tmp_path / "net.spz", index_coding="plain")
    raw = path.read_bytes()
    (tmp_path / "cut.spz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(FileFormatError, match="cut.spz"):
        load_sparse_int8(tmp_path / "cut.spz")
    with zipfile.ZipFile(path) as zf:  # a byte flipped inside a stored member: the CRC names it
        info = zf.getinfo("layer1/data.npy")
        members = {name: zf.read(name) for name in zf.namelist()}
    with zipfile.ZipFile(tmp_path / "flip.spz", "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    flipped = bytearray((tmp_path / "flip.spz").read_bytes())
    with zipfile.ZipFile(tmp_path / "flip.spz") as zf:
        info = zf.getinfo("layer1/data.npy")
    at = info.header_offset + 30 + len(info.filename) + info.file_size - 1  # last byte of the member's data
    flipped[at] ^= 0xFF
    (tmp_path / "flip.spz").write_bytes(bytes(flipped))
    with pytest.raises(FileFormatError, match="layer1/data.npy"):
        load_sparse_int8(tmp_path / "flip.spz")
    with pytest.raises(FileFormatError, match="no such file"):
        load_sparse_int8(tmp_path / "missing.spz")


def test_export_cli_int8(tmp_path, rng, masked, capsys):
    model = save_network(tmp_path / "model.npz", masked.net)
    out = tmp_path / "pruned-int8.spz"
    assert console(["export", str(model), "--sparsity", "0.8", "--out", str(out), "--int8"]) == 0
    assert "int8 weights" in capsys.readouterr().out
    x = rng.random((3, WIDTHS[0]), dtype=np.float32)
    np.testing.assert_array_equal(load_sparse_int8(out)(x), SparseInt8Forward.build(masked)(x))
    for args, message in (
            (["--out", str(tmp_path / "m.keras"), "--int8"], "m.keras: the int8 export writes sparsenet's compact"),
            (["--out", str(tmp_path / "m.spz"), "--int8", "--shrink"], "--shrink is for Keras and ONNX exports"),
            (["--out", str(tmp_path / "m.spz"), "--int8", "--method", "nope"], "unknown pruning method 'nope'"),
    ):
        assert console(["export", str(model), "--sparsity", "0.8"] + args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert console(["export", str(tmp_path / "none.npz"), "--sparsity", "0.8", "--out", str(out), "--int8"]) == 2
    assert "no model file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "pruned-int8.spz"]
