"""Other inference engines (sparsenet.formats.engines) against the float64 oracle, their threads,
their self-description, and what happens when an engine's package is missing.

Conversion is what costs here (TensorFlow's import and about a second per TFLite conversion), so
every engine meets two session-scoped networks that carry the edge cases between them: one layer
per activation with hand-made masks (a dense layer, a half-pruned one, empty rows and columns,
a layer with nothing kept, biases partly pruned), and a ReLU net pruned to 99%. The cheap engines
(ONNX Runtime, PyTorch) also run the random-shape grid of sparsities and pruning methods.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from sparsenet import FORMATS, PRUNERS, Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.activations import ACTIVATIONS
from sparsenet.formats import describe, engines, formats_for
from sparsenet.formats.engines import ENGINES, OrtForward, TFLiteForward, unavailable_engines
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net

NAMES = [cls.name for cls in ENGINES]
CHEAP = ["ort", "torch_dense", "torch_csr"]  # build in milliseconds once imported


def needs(name: str) -> None:
    cls = FORMATS[name]
    if not cls.available():
        pytest.skip(cls.unavailable_reason())


def edge_case_net(rng, activations) -> MaskedNetwork:
    """One hidden layer per activation (in sorted order) and a softmax output, weights scaled up so
    that the non-linear ranges are reached, masks by hand: layer 0 fully kept, layer 1 half, layer
    2 with every weight removed (only its bias reaches the next layer), the others 90% pruned with
    whole rows (dead units) and whole columns (unread inputs) cleared; a third of the biases pruned."""
    hidden = sorted(set(activations) - {"softmax"})
    widths = [23] + [int(w) for w in rng.integers(9, 31, size=len(hidden))] + [6]
    net = random_net(rng, widths, bias=True, scale=3.0)
    layers = tuple(Layer(layer.weight, layer.bias, act) for layer, act in zip(net.layers, hidden + ["softmax"]))
    keep = []
    for l, layer in enumerate(layers):
        k = rng.random(layer.weight.shape) < {0: 1.0, 1: 0.5, 2: 0.0}.get(l, 0.1)
        if l > 2:
            k[0, :], k[:, -1] = False, False
        keep.append(k)
    bias = tuple(rng.random(layer.n_out) > 1 / 3 for layer in layers)
    return MaskedNetwork(Network(layers), Masks(tuple(keep), bias), "weight", 0.5, "layer", tuple(range(len(layers))))


@pytest.fixture(scope="session")
def edge_cases():
    """{engine: (masked, forward)} built once per session (one TFLite conversion)."""
    rng = np.random.default_rng(11)
    built = {}

    def get(name):
        if name not in built:
            masked = edge_case_net(rng, FORMATS[name].activations & set(ACTIVATIONS))
            built[name] = masked, convert(masked, name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def sparse99():
    """{engine: (masked, forward)}: a ReLU net without biases pruned to 99% (global), one TFLite conversion."""
    masked = prune(random_net(np.random.default_rng(12), (50, 40, 30, 10)), "weight", 0.99, "global")
    built = {}

    def get(name):
        if name not in built:
            built[name] = masked, convert(masked, name)
        return built[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_engine_runs_every_activation_and_mask_edge_case(rng, edge_cases, name):
    needs(name)
    masked, forward = edge_cases(name)
    assert {layer.activation for layer in masked.net.layers} == FORMATS[name].activations & set(ACTIVATIONS)
    for n_batch in (1, 5, 64, 1):  # batch size changes both ways (TFLite resizes its input)
        x = rng.standard_normal((n_batch, 23)).astype(np.float32)
        y = forward(x)
        assert_forward_close(y, naive.forward(masked, x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)
    x = rng.standard_normal((9, 46)).astype(np.float32)[:, ::2]  # a strided view
    assert_forward_close(forward(x), naive.forward(masked, np.ascontiguousarray(x)))


@pytest.mark.parametrize("name", NAMES)
def test_engine_at_99_percent_and_an_all_zero_input(rng, sparse99, name):
    needs(name)
    masked, forward = sparse99(name)
    for x in (rng.random((1, 50)).astype(np.float32), rng.random((64, 50)).astype(np.float32),
              np.zeros((3, 50), np.float32)):
        x.flags.writeable = False  # as the benchmark's inputs are
        assert_forward_close(forward(x), naive.forward(masked, x))


@pytest.mark.parametrize("name", CHEAP)
@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_cheap_engine_matches_reference_on_random_shapes(rng, name, method, sparsity):
    needs(name)
    widths = tuple(int(v) for v in rng.integers(3, 70, size=4)) + (10,)
    masked = prune(random_net(rng, widths, bias=bool(rng.integers(2))), method, sparsity)
    forward = convert(masked, name)
    for n_batch in (1, 5, 64):
        x = rng.random((n_batch, widths[0])).astype(np.float32)
        assert_forward_close(forward(x), naive.forward(masked, x))


@pytest.mark.parametrize("name", ["ort", "torch_dense", "torch_csr"])
def test_engine_float64_network(rng, name):
    needs(name)
    masked = prune(random_net(rng, (30, 20, 5), dtype=np.float64, bias=True), "weight", 0.7)
    x = rng.random((4, 30))
    assert_forward_close(convert(masked, name)(x), naive.forward(masked, x))


def test_tflite_refuses_float64_before_converting(rng):
    masked = prune(random_net(rng, (6, 4, 3), dtype=np.float64), "weight", 0.5)
    with pytest.raises(NotImplementedError, match=r"format 'tflite' runs \['float32'\] networks; this one is float64"):
        convert(masked, "tflite")


@pytest.mark.parametrize("name", NAMES)
def test_engine_checks_its_input(sparse99, name):
    needs(name)
    _, forward = sparse99(name)
    with pytest.raises(ValueError, match=r"input must have shape \(n_batch, 50\), found \(5, 49\)"):
        forward(np.zeros((5, 49), np.float32))
    with pytest.raises(TypeError, match="input dtype must be float32.*found float64"):
        forward(np.zeros((5, 50)))


@pytest.mark.parametrize("name", NAMES)
def test_engine_sizes(sparse99, name):
    """Dense engines hold every weight (zeros too), torch_csr the kept ones and int32 indices."""
    needs(name)
    masked, forward = sparse99(name)
    dense_bytes = 4 * sum(layer.weight.size for layer in masked.net.layers)
    nnz, rows = forward.nnz, sum(layer.n_out + 1 for layer in masked.net.layers)
    if name == "torch_csr":
        assert forward.in_memory_bytes == 4 * nnz + 4 * nnz + 4 * rows
    elif name == "torch_dense":
        assert forward.in_memory_bytes == dense_bytes
    else:  # the serialized model: the weights plus the graph, which is small
        assert dense_bytes < forward.in_memory_bytes < dense_bytes + 20_000


def test_engine_threads_follow_numba(rng, sparse99):
    """Built with numba's thread count of the moment; torch's process-wide count is set back on
    every call where another format changed it."""
    masked, _ = sparse99("dense")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        built = {name: convert(masked, name) for name in CHEAP if FORMATS[name].available()}
    finally:
        numba.set_num_threads(before)
    x = rng.random((2, 50)).astype(np.float32)
    for name, forward in built.items():
        assert forward.threads == 1
        if name == "ort":
            import onnxruntime as ort

            options = forward.session.get_session_options()
            assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
            assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
            assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        else:
            forward.torch.set_num_threads(2)
            forward(x)
            assert forward.torch.get_num_threads() == 1
    if TFLiteForward.available():
        _, tflite = sparse99("tflite")
        assert tflite.threads == before
        one = TFLiteForward.from_bytes(tflite.model, 50, 1, tflite.nnz)
        assert_forward_close(one(x), naive.forward(masked, x))


class MissingEngine(OrtForward):
    """ONNX Runtime under a package name that is not installed anywhere."""

    name = "missing_engine"
    engine = "sparsenet-missing-engine"
    requires = ("sparsenet_missing_engine",)
    pip = "pip install sparsenet-missing-engine"
    style = ("tab:pink", "1")


def test_an_engine_whose_package_is_missing(monkeypatch, rng):
    monkeypatch.setitem(FORMATS, MissingEngine.name, MissingEngine)
    monkeypatch.setattr(engines, "ENGINES", engines.ENGINES + (MissingEngine,))
    assert not MissingEngine.available()
    assert MissingEngine.name not in formats_for(False) and MissingEngine.name not in formats_for(True)
    with pytest.raises(ImportError, match=r"format 'missing_engine' needs the sparsenet_missing_engine package.*"
                                          r"pip install sparsenet-missing-engine"):
        convert(prune(random_net(rng, (6, 4, 3)), "weight", 0.5), MissingEngine.name)
    reasons = unavailable_engines()
    assert "pip install sparsenet-missing-engine" in reasons["missing_engine"]
    assert "numpy < 2" in reasons["deepsparse"]
    assert describe(MissingEngine)["engine"] == "sparsenet-missing-engine"


def test_available_engines_are_offered_and_describe_themselves():
    styles = {name: tuple(cls.style) for name, cls in FORMATS.items()}
    for cls in ENGINES:
        d = describe(cls)
        assert (d["kind"], d["pruning"], d["operating_points"]) == ("engine", "any", False)
        assert d["computes"] == ("sparse" if cls.name == "torch_csr" else "dense") and d["engine"]
        assert d["saved_as"] == ("compact" if cls.name == "torch_csr" else "dense")
        assert list(styles.values()).count(styles[cls.name]) == 1, "a style of its own"
        assert {"relu", "linear", "softmax", "tanh", "sigmoid", "gelu", "gelu_tanh"} <= cls.activations
        assert (cls.name in formats_for(False)) == cls.available()
    assert describe(FORMATS["dense"])["computes"] == "dense" and describe(FORMATS["sparse"])["computes"] == "sparse"
    assert describe(FORMATS["shrunk"])["computes"] == "dense" and describe(FORMATS["dense"])["engine"] is None


def test_tflite_conversion_keeps_the_terminal_clean(rng, capfd):
    """TensorFlow prints a page per conversion (the Keras export's "Saved artifact" lines, C++
    warnings on file descriptor 2); the report's progress lines must not drown in it."""
    needs("tflite")
    from sparsenet.formats.engines.tflite import tflite_model_bytes

    capfd.readouterr()
    assert tflite_model_bytes(prune(random_net(rng, (8, 6, 3)), "weight", 0.5))[4:8] == b"TFL3"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_what_a_failed_conversion_printed_reaches_its_error(capfd):
    import os

    from sparsenet.formats.engines.tflite import _captured_output

    with pytest.raises(ValueError, match="boom") as info:
        with _captured_output():
            os.write(2, b"converter said: unsupported op\n")
            raise ValueError("boom")
    assert "converter said: unsupported op" in "".join(info.value.__notes__)
    assert capfd.readouterr() == ("", "")
