"""sparsenet.quantize: the int8 rule (scales, zeros, rounding), both modes' references, calibration, accuracy."""

import numpy as np
import pytest

from sparsenet import Layer, MaskedNetwork, Masks, Network, prune
from sparsenet.quantize import MIN_CALIBRATION_SAMPLES, QMAX, int8_accuracy, quantize, quantize_weights
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net


def hand_masked(net, keeps):
    return MaskedNetwork(net, Masks(tuple(keeps), tuple(None if l.bias is None else np.ones(l.n_out, bool)
                                                        for l in net.layers)), "weight", 0.5, "layer",
                         tuple(range(len(keeps))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_weights_rule(rng, dtype):
    w = rng.standard_normal((9, 13)).astype(dtype)
    keep = rng.random(w.shape) < 0.6
    keep[3] = False  # a unit with nothing kept
    w[5] = 0.0  # a unit whose kept weights are all exactly 0
    q, scale = quantize_weights(w, keep)
    assert q.dtype == np.int8 and scale.dtype == dtype and scale.shape == (9,)
    assert (q[~keep] == 0).all(), "pruned weights stay exactly zero"
    assert scale[3] == 1.0 and scale[5] == 1.0 and (q[3] == 0).all() and (q[5] == 0).all()
    assert (scale > 0).all() and q.min() >= -QMAX
    for i in set(range(9)) - {3, 5}:
        kept = np.abs(np.where(keep[i], w[i], 0))
        j = int(kept.argmax())
        assert abs(int(q[i, j])) == QMAX, "each unit's largest kept |w| sits on the grid's end"
        np.testing.assert_allclose(scale[i], kept.max() / QMAX, rtol=1e-6)
    err = np.abs(q * scale.astype(np.float64)[:, None] - np.where(keep, w, 0))
    assert (err <= scale.astype(np.float64)[:, None] / 2 * (1 + 1e-6)).all(), "rounding to nearest"


def test_weight_only_reference_is_the_dequantized_network(rng):
    net = random_net(rng, (17, 23, 11, 5), bias=True)
    masked = prune(net, "weight", 0.6)
    qnet = quantize(masked)
    assert qnet.mode == "weights" and qnet.widths == net.widths and qnet.nnz == sum(int(k.sum())
                                                                                   for k in masked.masks.weight)
    x = rng.random((6, 17)).astype(np.float32)
    ref = qnet.reference(x)
    assert ref.dtype == np.float64
    deq = qnet.dequantized()
    assert all((w[~k] == 0).all() for w, k in zip(deq.masked_weights(), deq.masks.weight))
    np.testing.assert_allclose(ref, naive.forward(deq, x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    # int8 is close to, not equal to, the float network: about one grid step per weight
    float_out = naive.forward(masked, x.astype(np.float64))
    assert 0 < np.abs(ref - float_out).max() < 0.05 * np.abs(float_out).max()


def test_static_reference_rounds_every_layer_input(rng):
    net = random_net(rng, (12, 9, 4), bias=True)
    masked = prune(net, "weight", 0.3)
    calib = rng.random((MIN_CALIBRATION_SAMPLES, 12)) * 2.0
    qnet = quantize(masked, "static", calib)
    assert qnet.mode == "static" and qnet.calibration == "max"
    l0, l1 = qnet.layers
    assert l0.input_scale == pytest.approx(np.abs(calib).max() / QMAX)
    h1 = np.maximum(np.clip(np.rint(calib / l0.input_scale), -QMAX, QMAX) * l0.input_scale @ l0.dequantized().T
                    + l0.bias, 0)
    assert l1.input_scale == pytest.approx(h1.max() / QMAX)
    x = rng.random((5, 12))
    xq = np.clip(np.rint(x / l0.input_scale), -QMAX, QMAX) * l0.input_scale
    h = np.maximum(xq @ l0.dequantized().T + l0.bias, 0)
    hq = np.clip(np.rint(h / l1.input_scale), -QMAX, QMAX) * l1.input_scale
    np.testing.assert_allclose(qnet.reference(x), hq @ l1.dequantized().T + l1.bias, rtol=1e-12)
    # every layer's input is a multiple of its step: the dot products are integer ones
    assert np.allclose(xq / l0.input_scale, np.rint(xq / l0.input_scale))


def test_static_percentile_clips_outliers(rng):
    net = random_net(rng, (10, 6, 3))
    masked = prune(net, "weight", 0.0)
    calib = rng.random((200, 10))
    calib[0, 0] = 50.0  # one outlier
    by_max = quantize(masked, "static", calib).layers[0].input_scale
    by_pct = quantize(masked, "static", calib, calibration=99.0)
    assert by_pct.calibration == "percentile=99"
    assert by_pct.layers[0].input_scale < by_max / 10
    assert by_max == pytest.approx(50.0 / QMAX)


def test_static_all_zero_layer_input_gets_a_safe_scale(rng):
    net = random_net(rng, (8, 5, 3))
    keep = [np.zeros((5, 8), bool), np.ones((3, 5), bool)]  # layer 0 keeps nothing, no bias: zeros out
    qnet = quantize(hand_masked(net, keep), "static", rng.random((MIN_CALIBRATION_SAMPLES, 8)))
    assert qnet.layers[1].input_scale == 1.0
    assert np.isfinite(qnet.reference(rng.random((3, 8)))).all()


def test_errors_name_the_problem(rng):
    masked = prune(random_net(rng, (8, 5, 3)), "weight", 0.5)
    ok = rng.random((MIN_CALIBRATION_SAMPLES, 8))
    with pytest.raises(ValueError, match="unknown quantization mode 'int4'"):
        quantize(masked, "int4")
    with pytest.raises(TypeError, match="needs a MaskedNetwork"):
        quantize(masked.net)
    with pytest.raises(ValueError, match="mode='static' needs calibration_x"):
        quantize(masked, "static")
    with pytest.raises(ValueError, match=f"has 99 samples; static quantization needs at least "
                                         f"{MIN_CALIBRATION_SAMPLES}"):
        quantize(masked, "static", ok[:99])
    with pytest.raises(ValueError, match=r"calibration_x must have shape \(n_samples, 8\), found \(100, 7\)"):
        quantize(masked, "static", ok[:, :7])
    bad = ok.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="calibration_x holds 1 NaN/inf values"):
        quantize(masked, "static", bad)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
        quantize(masked, "static", ok, calibration=0)
    with pytest.raises(ValueError, match="unknown calibration rule 'mean'"):
        quantize(masked, "static", ok, calibration="mean")
    with pytest.raises(ValueError, match="calibration_x is for mode='static'"):
        quantize(masked, "weights", ok)
    with pytest.raises(ValueError, match=r"reference must have shape \(n_samples, 8\), found \(2, 9\)"):
        quantize(masked).reference(np.zeros((2, 9)))


def test_int8_accuracy_next_to_float(rng):
    """Labels are the float network's own predictions, so float accuracy is 1 and the int8
    networks lose only what quantization flips (few, on a network this size)."""
    net = random_net(rng, (40, 64, 32, 10), bias=True)
    masked = prune(net, "weight", 0.5)
    x = rng.random((600, 40)).astype(np.float32)
    y = naive.forward(masked, x).argmax(axis=1)
    acc = int8_accuracy(masked, x, y, calibration_x=x[:300])
    assert set(acc) == {"float", "int8_weights", "int8_static"} and acc["float"] == 1.0
    assert 0.9 <= acc["int8_weights"] <= 1.0 and 0.8 <= acc["int8_static"] <= 1.0
    assert acc["int8_weights"] == np.mean(quantize(masked).reference(x).argmax(axis=1) == y)
    assert set(int8_accuracy(masked, x, y)) == {"float", "int8_weights"}
    with pytest.raises(ValueError, match=r"y_test must have shape \(600,\)"):
        int8_accuracy(masked, x, y[:5])


def test_dequantized_network_runs_in_float_formats(rng):
    net = Network((Layer(rng.standard_normal((6, 4)).astype(np.float32), None, "relu"),
                   Layer(rng.standard_normal((3, 6)).astype(np.float32), None, "softmax")))
    qnet = quantize(prune(net, "weight", 0.25))
    from sparsenet import convert

    x = rng.random((4, 4)).astype(np.float32)
    assert_forward_close(convert(qnet.dequantized(), "sparse")(x), qnet.reference(x).astype(np.float32))
