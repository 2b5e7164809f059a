"""sparsenet.save_pruned / load_pruned: every export format round-trips with equal outputs."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from sparsenet import FORMATS, Layer, Network, convert, load_model, load_pruned, prune, save_pruned
from sparsenet.activations import softmax
from sparsenet.errors import FileFormatError
from sparsenet.export import read_manifest
from sparsenet.formats import formats_for
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net


def _net(rng, widths, activation="relu", output="softmax", bias=True, dtype=np.float32):
    base = random_net(rng, widths, bias=bias, dtype=dtype, scale=2.0)
    last = len(base.layers) - 1
    return Network(tuple(Layer(layer.weight, layer.bias, output if i == last else activation)
                         for i, layer in enumerate(base.layers)))


def _same_masks(a, b):
    for ka, kb in zip(a.masks.weight, b.masks.weight):
        np.testing.assert_array_equal(ka, kb)
    for ba, bb in zip(a.masks.bias, b.masks.bias):
        assert (ba is None) == (bb is None)
        if ba is not None:
            np.testing.assert_array_equal(ba, bb)


# -------------------------------------------------------------------------------------- compact
@pytest.mark.parametrize("method", ["weight", "unit"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("bias", [False, True])
def test_compact_round_trip_has_the_same_masks_and_outputs(rng, tmp_path, method, activation, bias):
    net = _net(rng, (300, 41, 17, 6), activation, bias=bias)
    masked = prune(net, method, 0.7)
    path = save_pruned(masked, tmp_path / "net.spz", accuracy=0.93, source="model.keras")
    back = load_pruned(path)
    _same_masks(masked, back)
    assert (back.method, back.sparsity, back.scope, back.pruned_layers) == (
        masked.method, masked.sparsity, masked.scope, masked.pruned_layers)
    x = rng.standard_normal((7, 300)).astype(np.float32)
    expected = naive.forward(masked, x)
    for fmt in formats_for(True, activations={layer.activation for layer in net.layers}):
        if FORMATS[fmt].kind == "engine" or FORMATS[fmt].quantized:  # engines, int8: their own tests
            continue
        assert_forward_close(convert(back, fmt)(x), expected)
    manifest = read_manifest(path)
    assert manifest["version"] == 1 and manifest["accuracy"] == 0.93 and manifest["source"] == "model.keras"
    assert [spec["index_dtype"] for spec in manifest["layers"]] == ["uint16", "uint8", "uint8"]
    assert manifest["achieved_sparsity"] == pytest.approx(masked.achieved_sparsity())
    assert [spec["activation"] for spec in manifest["layers"]] == [activation, activation, "softmax"]


def test_compact_float64_and_kept_zero_weights(rng, tmp_path):
    net = random_net(rng, (20, 9, 4), dtype=np.float64, bias=True)
    net.layers[0].weight[0, :3] = 0.0  # kept weights that happen to be 0 are stored: masks survive
    masked = prune(net, "weight", 0.0)
    back = load_pruned(save_pruned(masked, tmp_path / "f64.spz"))
    _same_masks(masked, back)
    assert back.net.dtype == np.float64
    x = rng.standard_normal((3, 20))
    assert_forward_close(convert(back, "sparse")(x), naive.forward(masked, x))


def test_compact_size_target_for_the_classic_shape(rng, tmp_path):
    """The 784-1000-1000-500-200-10 network (9.54 MB dense float32) at 95% weight sparsity: <= 0.7 MB."""
    net = random_net(rng, (784, 1000, 1000, 500, 200, 10))
    masked = prune(net, "weight", 0.95)
    path = save_pruned(masked, tmp_path / "classic.spz")
    assert path.stat().st_size <= 700_000
    x = rng.random((2, 784)).astype(np.float32)
    assert_forward_close(convert(load_pruned(path), "sparse")(x), convert(masked, "dense")(x))


def _rewrite(src, dst, change):
    """Copy the zip at src to dst with change(name, bytes) -> bytes | None (None drops the member)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def test_compact_bad_files_are_named(rng, tmp_path):
    masked = prune(random_net(rng, (12, 8, 3), bias=True), "weight", 0.5)
    good = save_pruned(masked, tmp_path / "good.spz")
    (tmp_path / "text.spz").write_text("hello")
    with pytest.raises(FileFormatError, match=r"text\.spz.*not a zip archive"):
        load_pruned(tmp_path / "text.spz")
    data = good.read_bytes()
    (tmp_path / "cut.spz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FileFormatError, match=r"cut\.spz"):
        load_pruned(tmp_path / "cut.spz")
    with pytest.raises(FileFormatError, match="layer1/data.npy.*missing"):
        load_pruned(_rewrite(good, tmp_path / "missing.spz", lambda n, b: None if n == "layer1/data.npy" else b))

    def newer(name, b):
        return json.dumps({**json.loads(b), "version": 99}).encode() if name == "manifest.json" else b

    with pytest.raises(FileFormatError, match="version 99.*upgrade"):
        load_pruned(_rewrite(good, tmp_path / "newer.spz", newer))

    def out_of_range(name, b):
        if name != "layer0/indices.npy":
            return b
        import io

        buf = io.BytesIO()
        np.save(buf, np.full(np.load(io.BytesIO(b)).shape, 200, np.uint8))
        return buf.getvalue()

    with pytest.raises(FileFormatError, match=r"layer0/indices\.npy: column indices must be in \[0, 12\)"):
        load_pruned(_rewrite(good, tmp_path / "range.spz", out_of_range))
    network_file = tmp_path / "net.npz"
    np.savez(network_file, a=np.ones(3))
    with pytest.raises(FileFormatError, match="manifest.json.*missing"):
        load_pruned(network_file)


def test_compact_write_is_atomic(rng, tmp_path, monkeypatch):
    masked = prune(random_net(rng, (12, 8, 3)), "weight", 0.5)
    path = save_pruned(masked, tmp_path / "net.spz")
    before = path.read_bytes()

    def boom(self, name, data, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        save_pruned(prune(random_net(rng, (12, 8, 3)), "weight", 0.9), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["net.spz"]


def test_bad_arguments(rng, tmp_path):
    masked = prune(random_net(rng, (12, 8, 3)), "weight", 0.5)
    with pytest.raises(ValueError, match=r"unknown export format 'tflite'; choose one of \['compact', 'keras'"):
        save_pruned(masked, tmp_path / "x", format="tflite")
    with pytest.raises(ValueError, match="shrink=True is for the keras and onnx"):
        save_pruned(masked, tmp_path / "x.spz", shrink=True)
    with pytest.raises(TypeError, match="needs a MaskedNetwork"):
        save_pruned(masked.net, tmp_path / "x.spz")


# ----------------------------------------------------------------------------------- Keras, ONNX
def _framework_view(masked, x):
    """What the exported model returns: probabilities where the output layer is softmax."""
    y = naive.forward(masked, x)
    return softmax(y) if masked.net.layers[-1].activation == "softmax" else y


CASES = [  # (activation, output activation, bias, method)
    ("relu", "softmax", True, "weight"),
    ("sigmoid", "linear", False, "unit"),
    ("tanh", "softmax", True, "unit"),
    ("gelu", "tanh", True, "weight"),
]


@pytest.mark.parametrize("shrink", [False, True])
@pytest.mark.parametrize("activation, output, bias, method", CASES)
def test_onnx_export_matches_and_imports_back(rng, tmp_path, activation, output, bias, method, shrink):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    masked = prune(_net(rng, (30, 21, 13, 5), activation, output, bias), method, 0.6)
    path = save_pruned(masked, tmp_path / "net.onnx", shrink=shrink)
    x = rng.standard_normal((6, 30)).astype(np.float32)
    assert_forward_close(ReferenceEvaluator(str(path)).run(None, {"x": x})[0], _framework_view(masked, x))
    back = load_model(path)
    widths = convert(masked, "shrunk").widths if shrink else masked.net.widths
    assert back.network.widths == widths
    assert [layer.activation for layer in back.network.layers] == [layer.activation for layer in masked.net.layers]
    assert_forward_close(convert(prune(back.network, "weight", 0.0), "dense")(x), naive.forward(masked, x))


def test_onnx_export_of_gelu_tanh(rng, tmp_path):
    pytest.importorskip("onnx")
    masked = prune(_net(rng, (10, 7, 3), "gelu_tanh"), "weight", 0.3)
    back = load_model(save_pruned(masked, tmp_path / "g.onnx"))
    assert [layer.activation for layer in back.network.layers] == ["gelu_tanh", "softmax"]


@pytest.fixture(scope="module")
def keras_exports(tmp_path_factory):
    """Every Keras case exported once (TensorFlow's import dominates): name -> (masked, path)."""
    pytest.importorskip("keras", reason="Keras export needs the 'train' extra")
    rng = np.random.default_rng(11)
    out = tmp_path_factory.mktemp("keras_export")
    exports = {}
    for k, (activation, output, bias, method) in enumerate(CASES):
        masked = prune(_net(rng, (30, 21, 13, 5), activation, output, bias), method, 0.6)
        for shrink in (False, True):
            name = f"{k}-{'shrunk' if shrink else 'zeros'}"
            exports[name] = (masked, save_pruned(masked, out / f"{name}.keras", shrink=shrink), shrink)
    return exports


def test_keras_export_loads_in_plain_keras_with_the_same_outputs(keras_exports, tmp_path):
    """Plain ``keras.models.load_model`` (built-in layers only) gives the masked network's outputs;
    one fresh interpreter that never imports sparsenet loads two of the files too."""
    import keras

    x = np.random.default_rng(5).standard_normal((6, 30)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    fresh = {name: str(path) for name, (_, path, _) in keras_exports.items() if name.startswith("0-")}
    code = (f"import json, sys, numpy as np, keras\n"
            f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
            f"for name, path in json.loads({json.dumps(fresh)!r}).items():\n"
            f"    np.save({str(tmp_path)!r} + '/' + name + '.npy', np.asarray(keras.models.load_model(path)(x)))\n"
            f"assert not any(m.startswith('sparsenet') for m in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    for name, (masked, path, shrink) in keras_exports.items():
        y = np.load(tmp_path / f"{name}.npy") if name in fresh else np.asarray(keras.models.load_model(path)(x))
        assert_forward_close(y, _framework_view(masked, x))
        back = load_model(path)
        assert back.network.widths == (convert(masked, "shrunk").widths if shrink else masked.net.widths)
        if not shrink:  # zeros in place: the reloaded network has the pruned weights at exactly 0
            for layer, keep in zip(back.network.layers, masked.masks.weight):
                assert (layer.weight[~keep] == 0).all()


def test_keras_export_refuses_gelu_tanh_and_other_suffixes(rng, tmp_path):
    pytest.importorskip("keras")
    masked = prune(_net(rng, (10, 7, 3), "gelu_tanh"), "weight", 0.3)
    with pytest.raises(NotImplementedError, match="gelu_tanh"):
        save_pruned(masked, tmp_path / "g.keras")
    with pytest.raises(ValueError, match="must end in .keras"):
        save_pruned(masked, tmp_path / "g.h5", format="keras")
    assert not list(tmp_path.iterdir()) and set(FORMATS)
