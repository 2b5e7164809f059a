import numpy as np
import pytest

from conftest import random_net
from sparsenet import load_network, save_network
from sparsenet.io import from_keras


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
    np.testing.assert_allclose(np.maximum(x @ k0, 0) @ k1, np.maximum(x @ net.layers[0].weight.T, 0)
                               @ net.layers[1].weight.T, rtol=1e-6)


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
