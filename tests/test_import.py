"""sparsenet.load_model: Keras and ONNX models in, checked, pruned, run in every format."""

import numpy as np
import pytest

import sparsenet
from sparsenet import FORMATS, PRUNERS, convert, load_model, prune
from sparsenet.errors import FileFormatError
from sparsenet.formats import formats_for
from sparsenet.importers import ImportCheckError, UnsupportedModelError
from sparsenet.testing import assert_forward_close

import naive
import onnx_graphs as og


def _run_everything(imported):
    """Prune (both methods) and run every format that declares the network's activations."""
    net = imported.network
    acts = {layer.activation for layer in net.layers}
    x = np.random.default_rng(1).standard_normal((5, net.widths[0])).astype(np.float32)
    one_layer = len(net.layers) == 1  # only its logits layer: weight pruning with prune_logits=True
    for method in ["weight"] if one_layer else sorted(PRUNERS):
        masked = prune(net, method, 0.5, prune_logits=one_layer)
        for fmt in formats_for(True, net.layer_kinds, acts):
            if FORMATS[fmt].kind == "engine":  # the engines' own tests convert once per session
                continue
            forward = convert(masked, fmt)
            # int8 formats match their own dequantized network (tests/test_int8_formats.py: every kernel)
            want = forward.reference(x) if FORMATS[fmt].quantized else naive.forward(masked, x)
            assert_forward_close(forward(x), want)
    assert formats_for(True, net.layer_kinds, acts), "some format runs it"


# ----------------------------------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """Built and saved once per module: (name -> path, expected widths, activations)."""
    keras = pytest.importorskip("keras", reason="Keras import needs the 'train' extra")
    from keras import layers

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("keras")
    models = {}
    seq = keras.Sequential([keras.Input((4, 5)), layers.Flatten(), layers.Dense(13, activation="tanh"),
                            layers.Dropout(0.3), layers.Dense(7, use_bias=False), layers.Activation("gelu"),
                            layers.Dense(9, activation="sigmoid"), layers.Dense(3, activation="softmax")])
    models["sequential"] = (seq, (20, 13, 7, 9, 3), ["tanh", "gelu", "sigmoid", "softmax"])
    inp = keras.Input((11,))
    h = layers.ReLU()(layers.Dense(17)(inp))
    h = layers.Dropout(0.5)(h)
    h = layers.Dense(6, activation="relu", use_bias=False)(h)
    h = layers.Reshape((6,))(h)
    fn = keras.Model(inp, layers.Softmax()(layers.Dense(4)(h)))
    models["functional"] = (fn, (11, 17, 6, 4), ["relu", "relu", "softmax"])
    lin = keras.Sequential([keras.Input((8,)), layers.Dense(5), layers.Dense(2, activation="linear")])
    models["linear"] = (lin, (8, 5, 2), ["linear", "linear"])
    paths = {}
    for name, (model, widths, acts) in models.items():
        for w in model.weights:  # non-zero biases, so that a dropped bias shows
            w.assign(np.random.default_rng(len(paths)).standard_normal(tuple(w.shape)).astype(np.float32) * 0.5)
        path = out / f"{name}.keras"
        model.save(path)
        paths[name] = (path, widths, acts)
    seq.save(out / "sequential.h5")
    paths["h5"] = (out / "sequential.h5",) + paths["sequential"][1:]
    conv = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.MaxPooling2D(), layers.Flatten(),
                             layers.Dense(3)])
    conv.save(out / "conv.keras")
    branch_in = keras.Input((6,))
    branch = keras.Model(branch_in, layers.Add()([layers.Dense(4)(branch_in), layers.Dense(4)(branch_in)]))
    branch.save(out / "branch.keras")
    swish = keras.Sequential([keras.Input((6,)), layers.Dense(4, activation="swish"), layers.Dense(2)])
    swish.save(out / "swish.keras")
    return paths, out


@pytest.mark.parametrize("name", ["sequential", "functional", "linear", "h5"])
def test_keras_import_matches_keras_and_runs_everywhere(keras_models, name):
    paths, _ = keras_models
    path, widths, acts = paths[name]
    imported = load_model(path)
    assert imported.framework == "keras" and imported.source == str(path)
    assert imported.network.widths == widths and [layer.activation for layer in imported.network.layers] == acts
    assert imported.n_classes == widths[-1] and len(imported.layer_names) == len(widths) - 1
    assert imported.max_abs_error < 1e-4
    if name == "sequential":
        assert imported.input_shape == (4, 5)
        assert imported.network.layers[1].bias is None and imported.network.layers[0].bias is not None
        assert imported.layer_names[1] == ("dense_1", "activation") or len(imported.layer_names[1]) == 2
    _run_everything(imported)


@pytest.mark.parametrize("name, match", [
    ("conv", r"layer 'max_pooling2d\w*' of type MaxPooling2D is not supported.*sparsenet imports convolutional"),
    ("branch", r"layer 'dense\w*' of type Dense is not supported \(its input is not the newest layer's current "
               r"output: the model branches"),
    ("swish", r"activation 'silu'.*supported activations: \['gelu'"),
])
def test_keras_refuses_what_it_cannot_run_by_name(keras_models, name, match):
    _, out = keras_models
    with pytest.raises(UnsupportedModelError, match=match):
        load_model(out / f"{name}.keras")


def test_keras_not_a_model_and_truncated_files(keras_models, tmp_path):
    paths, _ = keras_models
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(FileFormatError, match=r"notes\.keras.*not a \.keras zip archive"):
        load_model(text)
    good = paths["sequential"][0].read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(FileFormatError, match=r"cut\.keras"):
        load_model(cut)
    h5 = tmp_path / "fake.h5"
    h5.write_bytes(b"nope")
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        load_model(h5)


# ------------------------------------------------------------------------------------------ ONNX
@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    onnx = pytest.importorskip("onnx", reason="ONNX import needs the 'onnx' extra")
    from onnx import helper

    rng = np.random.default_rng(3)
    r = lambda *shape: rng.standard_normal(shape) * 0.7
    out = tmp_path_factory.mktemp("onnx")
    graphs = {}
    # Gemm with transB (torch's Linear), Flatten, Tanh, MatMul + Add, erf-GELU, Gemm without bias, Softmax
    graphs["torch_like"] = (og.graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1, name="flatten"),
         helper.make_node("Gemm", ["f", "W0", "b0"], ["g0"], transB=1, name="fc0"),
         helper.make_node("Tanh", ["g0"], ["a0"], name="tanh0"),
         helper.make_node("MatMul", ["a0", "W1"], ["m1"], name="fc1"),
         helper.make_node("Add", ["b1", "m1"], ["z1"], name="fc1_bias"),
         *og.erf_gelu("z1", "a1", "gelu1"),
         helper.make_node("Gemm", ["a1", "W2"], ["g2"], transB=1, name="fc2"),
         helper.make_node("Softmax", ["g2"], ["y"], axis=-1, name="softmax")],
        {"W0": r(13, 20), "b0": r(13), "W1": r(13, 7), "b1": r(7), "W2": r(3, 7)}, [4, 5], 3),
        (20, 13, 7, 3), ["tanh", "gelu", "softmax"])
    # Gemm without transB, alpha/beta, Sigmoid, Dropout, Identity, Relu, tanh-form GELU, Gelu node (opset 20)
    graphs["mixed"] = (og.graph(
        [helper.make_node("Gemm", ["x", "W0", "b0"], ["g0"], alpha=0.5, beta=2.0, name="fc0"),
         helper.make_node("Sigmoid", ["g0"], ["a0"], name="sig0"),
         helper.make_node("Dropout", ["a0"], ["d0"], name="drop"),
         helper.make_node("Gemm", ["d0", "W1"], ["g1"], name="fc1"),
         helper.make_node("Relu", ["g1"], ["a1"], name="relu1"),
         helper.make_node("Identity", ["a1"], ["i1"], name="id"),
         helper.make_node("MatMul", ["i1", "W2"], ["g2"], name="fc2"),
         *og.tanh_gelu("g2", "a2", "gt2"),
         helper.make_node("Gemm", ["a2", "W3", "b3"], ["g3"], transB=1, name="fc3"),
         helper.make_node("Gelu", ["g3"], ["a3"], name="gelu3"),
         helper.make_node("Gemm", ["a3", "W4", "b4"], ["y"], transB=1, name="fc4")],
        {"W0": r(9, 15), "b0": r(15), "W1": r(15, 8), "W2": r(8, 6), "W3": r(5, 6), "b3": r(5), "W4": r(2, 5),
         "b4": r(2)}, [9], 2, opset=20),
        (9, 15, 8, 6, 5, 2), ["sigmoid", "relu", "gelu_tanh", "gelu", "linear"])
    graphs["conv"] = (og.graph([helper.make_node("Conv", ["x", "K"], ["y"], name="conv0")], {"K": r(1, 1, 3, 3)},
                               [1, 5, 5], 9), None, None)
    graphs["reshape_one_layer"] = (og.graph(
        [helper.make_node("Reshape", ["x", "shape"], ["f"], name="reshape"),
         helper.make_node("Gemm", ["f", "W0"], ["y"], transB=1, name="fc0")],
        {"W0": r(3, 20)}, [4, 5], 3, ints={"shape": [-1, 20]}), (20, 3), ["linear"])
    graphs["unknown_op"] = (og.graph(
        [helper.make_node("Gemm", ["x", "W0"], ["g0"], transB=1, name="fc0"),
         helper.make_node("LeakyRelu", ["g0"], ["a0"], name="leaky"),
         helper.make_node("Gemm", ["a0", "W1"], ["y"], transB=1, name="fc1")],
        {"W0": r(4, 6), "W1": r(2, 4)}, [6], 2), None, None)
    sig = og.graph([helper.make_node("Gemm", ["x", "W0"], ["g0"], transB=1, name="fc0"),
                    helper.make_node("Sigmoid", ["g0"], ["s0"], name="sig"),
                    helper.make_node("Mul", ["g0", "s0"], ["a0"], name="silu"),
                    helper.make_node("Gemm", ["a0", "W1"], ["y"], transB=1, name="fc1")],
                   {"W0": r(4, 6), "W1": r(2, 4)}, [6], 2)
    graphs["silu"] = (sig, None, None)
    paths = {}
    for name, (model, widths, acts) in graphs.items():
        onnx.save(model, out / f"{name}.onnx")
        paths[name] = (out / f"{name}.onnx", widths, acts)
    return paths


@pytest.mark.parametrize("name", ["torch_like", "mixed", "reshape_one_layer"])
def test_onnx_import_matches_the_reference_evaluator_and_runs_everywhere(onnx_files, name):
    path, widths, acts = onnx_files[name]
    imported = load_model(path)
    assert imported.framework == "onnx"
    assert imported.network.widths == widths and [layer.activation for layer in imported.network.layers] == acts
    assert imported.max_abs_error < 1e-4
    if name == "torch_like":
        assert imported.input_shape == (4, 5)
        assert imported.layer_names[1][:2] == ("fc1", "fc1_bias")
        assert imported.network.layers[2].bias is None
    _run_everything(imported)


@pytest.mark.parametrize("name, match", [
    ("conv", r"layer 'conv0' of type ONNX Conv is not supported"),
    ("unknown_op", r"layer 'leaky' of type ONNX LeakyRelu is not supported"),
    ("silu", r"ONNX Sigmoid/Mul.*compute no supported activation"),
])
def test_onnx_refuses_what_it_cannot_run_by_name(onnx_files, name, match):
    with pytest.raises(UnsupportedModelError, match=match):
        load_model(onnx_files[name][0])


def test_onnx_not_a_model_and_truncated(onnx_files, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(FileFormatError, match=r"bad\.onnx.*cannot be read as an ONNX model"):
        load_model(bad)
    data = onnx_files["torch_like"][0].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(FileFormatError, match=r"cut\.onnx"):
        load_model(cut)


def test_a_wrong_import_is_caught_by_the_check(onnx_files, monkeypatch):
    """If the reader got something wrong (here: every bias dropped), the check says by how much."""
    from sparsenet.importers import _stack

    real = _stack.Stack.linear
    monkeypatch.setattr(_stack.Stack, "linear", lambda self, name, kind, w, b: real(self, name, kind, w, None))
    with pytest.raises(ImportCheckError, match=r"differ from the framework's by up to \d"):
        load_model(onnx_files["mixed"][0])


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(FileFormatError, match=r"unknown model file suffix '\.pt'.*\.keras.*\.onnx"):
        load_model(tmp_path / "m.pt")
    with pytest.raises(FileFormatError, match="no such model file"):
        load_model(tmp_path / "absent.onnx")


def test_import_sparsenet_needs_neither_framework():
    import subprocess
    import sys

    code = "import sys, sparsenet; sparsenet.load_model; assert not {'onnx', 'keras', 'tensorflow'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "load_model" in sparsenet.__all__ and set(FORMATS)
