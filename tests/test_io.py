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


# --- issue 15: bounded, total readers -------------------------------------------------------------

def _good_arrays(rng):
    net = random_net(rng, (6, 5, 3), bias=True)
    return {"format_version": np.array(1), "activations": np.array(["relu", "softmax"]),
            **{f"layer{i}/{p}": getattr(layer, p) for i, layer in enumerate(net.layers) for p in ("weight", "bias")}}


def _huge_header_npz(path, shape=(1 << 20, 1 << 20)):
    """A .npz whose one member's header declares ``shape`` float64 but holds a few bytes."""
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("format_version.npy", _npy(np.array(1)))
        z.writestr("activations.npy", _npy(np.array(["relu"])))
        z.writestr("layer0/weight.npy", buf.getvalue() + b"\0" * 64)
    return path


def _npy(a):
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_huge_declared_shape_is_refused_before_allocating(tmp_path):
    from sparsenet.errors import FileFormatError

    with pytest.raises(FileFormatError, match=r"layer0/weight.*cap"):
        load_network(_huge_header_npz(tmp_path / "huge.npz"))


def test_deflate_bomb_is_capped(tmp_path, monkeypatch):
    """Compressed zeros that inflate past the cap (lowered to 16 MiB here, 1 GiB by default):
    refused from the zip directory, before anything is inflated."""
    import zipfile

    from sparsenet.errors import FileFormatError

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("format_version.npy", _npy(np.array(1)))
        z.writestr("activations.npy", _npy(np.array(["relu"])))
        with z.open("layer0/weight.npy", "w", force_zip64=True) as f:
            f.write(_npy(np.zeros((0,), np.float64)))
            chunk = bytes(1 << 24)
            for _ in range(2):
                f.write(chunk)
    monkeypatch.setattr("sparsenet.io.MAX_BYTES", 16 << 20)
    with pytest.raises(FileFormatError, match="cap of 16777216"):
        load_network(path)
    small = save_network(tmp_path / "small.npz", random_net(np.random.default_rng(0), (10, 7, 3)))
    with pytest.raises(FileFormatError, match="max_bytes"):
        load_network(small, max_bytes=100)
    assert load_network(small, max_bytes=10_000).widths == (10, 7, 3)


@pytest.mark.parametrize("change, match", [
    ({"format_version": np.array([1, 1])}, "format_version must be an integer scalar"),
    ({"format_version": np.array(1.5)}, "format_version must be an integer scalar"),
    ({"activations": np.array([1, 2])}, "activations must be a 1-D str array"),
    ({"layers_meta": np.array(1)}, r"unexpected keys \['layers_meta'\]"),
    ({"layer0/weight": np.array([["a", "b"]] * 5)}, "layer 0"),
])
def test_malformed_fields_raise_the_library_error(rng, tmp_path, change, match):
    from sparsenet.errors import FileFormatError

    path = _write(tmp_path / "bad.npz", **{**_good_arrays(rng), **change})
    with pytest.raises(FileFormatError, match=match):
        load_network(path)


def test_object_dtype_and_non_npz_files_are_named(rng, tmp_path):
    from sparsenet.errors import FileFormatError

    text = tmp_path / "text.npz"
    text.write_text("hello, not a network\n")
    with pytest.raises(FileFormatError, match="not a readable .npz"):
        load_network(text)
    obj = _write(tmp_path / "obj.npz", **{**_good_arrays(rng), "activations": np.array(["relu", None], dtype=object)})
    with pytest.raises(FileFormatError, match="activations: dtype object"):
        load_network(obj)


@pytest.mark.parametrize("change, match", [
    ({"pruned_layers": np.array([99])}, "pruned_layers must be distinct layer indices in 0..1"),
    ({"pruned_layers": np.array([-1])}, "pruned_layers must be distinct layer indices"),
    ({"pruned_layers": np.array([0, 0])}, "pruned_layers must be distinct"),
    ({"sparsity": np.array(np.nan)}, r"sparsity must be a float scalar in \[0, 1\)"),
    ({"sparsity": np.array([0.5])}, "sparsity must be a float scalar"),
    ({"pruning": np.array(["bogus", "layer"])}, "unknown pruning method 'bogus'"),
    ({"pruning": np.array(["weight", "planet"])}, "unknown scope 'planet'"),
    ({"pruning": np.array([1, 2])}, "pruning must be a str array"),
    ({"masks/weight0": np.ones((5, 6), np.uint8)}, "masks/weight0 must be a bool array"),
    ({"masks/weight7": np.ones((5, 6), bool)}, "name layers the network does not have"),
])
def test_masked_metadata_is_validated(rng, tmp_path, change, match):
    from sparsenet.errors import FileFormatError

    masked = prune(random_net(rng, (6, 5, 3)), "weight", 0.5)
    path = save_masked(tmp_path / "m.npz", masked)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    bad = _write(tmp_path / "bad.npz", **{**arrays, **change})
    with pytest.raises(FileFormatError, match=match):
        load_masked(bad)
