import dataclasses

import numpy as np
import pytest

from sparsenet import load_network, prune, save_network
from sparsenet.io import from_keras, load_masked, save_masked
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net


def test_round_trip_with_and_without_bias(rng, tmp_path):
    for bias in (False, True):
        net = random_net(rng, (10, 7, 3), bias=bias)
        path = save_network(tmp_path / f"net{bias}.npz", net)
        back = load_network(path)
        assert back.widths == net.widths
        for a, b in zip(net.layers, back.layers):
            np.testing.assert_array_equal(a.weight, b.weight)
            assert a.activation == b.activation
            assert (a.bias is None) == (b.bias is None)
    assert not list(tmp_path.glob(".*tmp*")), "no temp files left behind"


def test_from_keras_transposes_once(rng):
    k0, k1 = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    net = from_keras([k0, k1], [None, np.zeros(2, np.float32)], ["relu", "softmax"])
    assert net.widths == (5, 4, 2)
    np.testing.assert_array_equal(net.layers[0].weight, k0.T)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert_forward_close(naive.forward_net(net, x), np.maximum(x @ k0, 0) @ k1)  # Keras' (n_in, n_out) math


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, match", [
    ({"activations": np.array(["relu"])}, "missing key 'format_version'"),
    ({"format_version": np.array(1), "activations": np.array(["relu", "softmax"]),
      "layer0/weight": np.ones((3, 2), np.float32)}, "missing key 'layer1/weight'"),
    ({"format_version": np.array(1), "activations": np.array(["relu", "softmax"]),
      "layer0/weight": np.ones((3, 2), np.float32), "layer1/weight": np.ones((2, 4), np.float32)},
     "layer 1: expects 4 inputs but layer 0 has 3 outputs"),
    ({"format_version": np.array(1), "activations": np.array(["relu"]),
      "layer0/weight": np.full((3, 2), np.nan, np.float32)}, "NaN"),
    ({"format_version": np.array(7), "activations": np.array(["relu"])}, "format_version 7, expected 1"),
    ({"format_version": np.array(1), "activations": np.array(["relu"]),
      "layer0/weight": np.ones(3, np.float32)}, "weight must be a 2-D array"),
    ({"format_version": np.array(1), "activations": np.array(["softmax", "softmax"]),
      "layer0/weight": np.eye(2, dtype=np.float32), "layer1/weight": np.ones((1, 2), np.float32)},
     r"layer 0: softmax is only supported as the output layer's activation \(forward passes return logits\)"),
])
def test_bad_files_name_the_problem(tmp_path, arrays, match):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_network(path)


def test_missing_and_corrupt_files(rng, tmp_path):
    with pytest.raises(FileNotFoundError, match="no network file at"):
        load_network(tmp_path / "nope.npz")
    good = save_network(tmp_path / "good.npz", random_net(rng, (10, 7, 3)))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_network(truncated)


def test_failed_save_keeps_the_old_file(rng, tmp_path):
    path = save_network(tmp_path / "net.npz", random_net(rng, (10, 7, 3)))
    before = path.read_bytes()

    class Boom:  # an array-like whose conversion fails mid-write
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    net = random_net(rng, (10, 7, 3))
    object.__setattr__(net.layers[0], "bias", Boom())
    with pytest.raises(RuntimeError, match="disk full"):
        save_network(path, net)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]


def test_save_and_load_masked_round_trip(rng, tmp_path):
    for bias in (False, True):
        masked = prune(random_net(rng, (20, 12, 8, 5), bias=bias), "unit", 0.5, "global")
        path = save_masked(tmp_path / f"pruned{bias}.npz", masked)
        back = load_masked(path)
        assert (back.method, back.scope, back.sparsity, back.pruned_layers) == ("unit", "global", 0.5, (0, 1))
        for a, b in zip(masked.masks.weight, back.masks.weight):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(masked.masks.bias, back.masks.bias):
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))
        for a, b in zip(masked.net.layers, back.net.layers):
            np.testing.assert_array_equal(a.weight, b.weight)
        assert back.achieved_sparsity() == masked.achieved_sparsity()
        assert load_network(path).widths == masked.net.widths  # still a plain network file


def test_load_masked_names_what_is_wrong(rng, tmp_path):
    net = random_net(rng, (20, 12, 8, 5))
    plain = save_network(tmp_path / "plain.npz", net)
    with pytest.raises(ValueError, match="missing key 'pruning'"):
        load_masked(plain)
    masked = prune(net, "weight", 0.5)
    bad = dataclasses.replace(masked, masks=dataclasses.replace(
        masked.masks, weight=(masked.masks.weight[0][:, :10],) + masked.masks.weight[1:]))
    path = save_masked(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError, match=r"masks/weight0 must be a bool array of shape \(12, 20\)"):
        load_masked(path)
    with_bias = prune(random_net(rng, (20, 12, 8, 5), bias=True), "weight", 0.5)
    no_bias_masks = dataclasses.replace(with_bias, masks=dataclasses.replace(
        with_bias.masks, bias=(None,) + with_bias.masks.bias[1:]))
    path = save_masked(tmp_path / "bad_bias.npz", no_bias_masks)
    with pytest.raises(ValueError, match="masks/bias0 must exist exactly where layer 0 has a bias"):
        load_masked(path)
