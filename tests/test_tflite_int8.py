"""tflite_int8: TensorFlow Lite full-integer conversion, run by LiteRT/XNNPACK, against its float64
simulation of TFLite's int8 arithmetic; the conversion cache, the size-chain file, refusals.

One conversion per network (TensorFlow's import and the converter take ~10 s on 2 cores), in a
module fixture; every other build reads the cache."""

import numpy as np
import pytest

from sparsenet import FORMATS, Layer, Network, convert, prune
from sparsenet.formats.engines.tflite import conversion_key
from sparsenet.formats.engines.tflite_int8 import (
    TOLERANCE_STEPS,
    TFLiteInt8Forward,
    assert_int8_close,
    stand_in_calibration,
)
from sparsenet.sizes import SAVED_AS, file_bytes

import naive
from conftest import random_net

pytestmark = pytest.mark.skipif(not FORMATS["tflite_int8"].available(),
                                reason="tflite_int8 needs tensorflow and ai-edge-litert")

WIDTHS = (40, 30, 24, 6)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(13)
    net = random_net(rng, WIDTHS, bias=True)
    masked = prune(net, "weight", 0.7)
    keep = [k.copy() for k in masked.masks.weight]
    cal = rng.random((200, WIDTHS[0]), dtype=np.float32)
    cache = tmp_path_factory.mktemp("tflite-cache")
    return masked, keep, cal, cache, TFLiteInt8Forward.build(masked, cal, cache_dir=cache)


def test_tflite_int8_matches_its_simulation(built, rng):
    """XNNPACK's int8 kernels == TFLite's int8 arithmetic simulated in float64, within the
    documented tolerance, at batch 1, odd batches, a zero input; and close to the float network."""
    masked, _, _, _, forward = built
    assert forward.quantized and forward.kind == "engine" and forward.calibration == "training samples (200)"
    for n in (1, 3, 64, 257):
        x = rng.random((n, WIDTHS[0]), dtype=np.float32)
        y = forward(x)
        ref = forward.reference(x)
        forward.assert_close(y, ref)
        assert y.dtype == np.float32 and y.shape == (n, WIDTHS[-1])
        # int8 activations: a few steps of each layer's grid away from the float network
        want = naive.forward(masked, x)
        assert np.abs(y - want).max() <= 0.05 * np.abs(want).max() + 4 * forward.output_scale
    zero = np.zeros((2, WIDTHS[0]), np.float32)
    forward.assert_close(forward(zero), forward.reference(zero))
    with pytest.raises(AssertionError, match="more than 2 output steps"):
        assert_int8_close(ref + (TOLERANCE_STEPS + 1) * forward.output_scale, ref, forward.output_scale)


def test_tflite_int8_weights_are_per_unit_and_zeros_stay_zero(built):
    """The converter did what the docstring says: one scale per output unit, symmetric, pruned
    weights exactly 0, each kept weight within half a step of its float value."""
    masked, keep, _, _, forward = built
    assert len(forward.ops) == len(WIDTHS) - 1
    for op, k, w in zip(forward.ops, keep, masked.masked_weights()):
        assert op.weight.dtype == np.int8 and op.weight.shape == w.shape
        assert op.weight_scale.shape == (w.shape[0],)
        assert (op.weight[~k] == 0).all()
        assert (np.abs(op.weight * op.weight_scale[:, None] - w) <= 0.501 * op.weight_scale[:, None]).all()
        assert np.abs(op.weight).max() == 127
        assert op.bias is not None and op.bias.dtype == np.int64


def test_tflite_int8_cache_and_calibration(built):
    masked, _, cal, cache, forward = built
    files = sorted((cache / "tflite").glob("*.tflite"))
    assert len(files) == 1 and files[0].read_bytes() == forward.model
    again = TFLiteInt8Forward.build(masked, cal, cache_dir=cache)  # read back, not converted again
    assert again.model == forward.model and len(list((cache / "tflite").glob("*.tflite"))) == 1
    # other samples, another entry (the key only: a second conversion would cost seconds)
    def key(m, x):
        return conversion_key(m, "tflite-int8", f"{x.shape}".encode() + x.tobytes())

    assert key(masked, cal) != key(masked, stand_in_calibration(WIDTHS[0]))
    assert key(masked, cal) != key(prune(masked.net, "weight", 0.5), cal)
    np.testing.assert_array_equal(stand_in_calibration(WIDTHS[0]), stand_in_calibration(WIDTHS[0]))


def test_tflite_int8_file_in_the_size_chain(built, tmp_path, monkeypatch):
    masked, _, _, cache, forward = built
    monkeypatch.setenv("SPARSENET_CACHE", str(cache))
    assert "tflite_int8" in SAVED_AS and forward.saved_as == "tflite_int8"
    on_disk, zipped = file_bytes(masked, "tflite_int8", tmp_path)
    assert on_disk == (tmp_path / "network-int8.tflite").stat().st_size
    # sized with the stand-in calibration: other scales, the same tensors (bytes of alignment apart)
    assert abs(on_disk - len(forward.model)) <= 128
    assert forward.in_memory_bytes == len(forward.model) and 0 < zipped < on_disk
    dense_on_disk, _ = file_bytes(masked, "dense", tmp_path)
    assert on_disk < dense_on_disk  # int8 weights (on a network this small the graph and headers dominate)


def test_tflite_int8_refusals(built, rng):
    masked, _, _, cache, forward = built
    n_in = WIDTHS[0]
    with pytest.raises(ValueError, match=rf"calibration_x must have shape \(n_samples, {n_in}\).*found \(5, 3\)"):
        TFLiteInt8Forward.build(masked, np.zeros((5, 3), np.float32), cache_dir=cache)
    bad = np.zeros((10, n_in), np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="calibration_x holds 1 NaN/inf values"):
        TFLiteInt8Forward.build(masked, bad, cache_dir=cache)
    with pytest.raises(TypeError, match="calibration_x must be a numpy array"):
        TFLiteInt8Forward.build(masked, [[0.0] * n_in], cache_dir=cache)
    tanh = Network(tuple(Layer(l.weight, l.bias, "tanh" if i == 0 else l.activation)
                         for i, l in enumerate(masked.net.layers)))
    with pytest.raises(NotImplementedError, match="format 'tflite_int8' runs activations"):
        convert(prune(tanh, "weight", 0.5), "tflite_int8")
    f64 = prune(random_net(rng, (8, 4, 3), dtype=np.float64), "weight", 0.5)
    with pytest.raises(NotImplementedError, match="runs \\['float32'\\] networks; this one is float64"):
        TFLiteInt8Forward.build(f64, cache_dir=cache)
    with pytest.raises(TypeError, match="input dtype must be float32"):
        forward(np.zeros((2, n_in)))
    with pytest.raises(TypeError, match="input dtype must be float32"):
        forward.reference(np.zeros((2, n_in)))
