"""The int8 formats (dense_int8, sparse_int8, shrunk_int8) against their float64 dequantized
reference, and the int8 compact file's round trip."""

import json
import zipfile

import numpy as np
import pytest

from sparsenet import FileFormatError, Layer, MaskedNetwork, Masks, Network, convert, load_pruned, prune, save_pruned
from sparsenet.export_int8 import decode_gaps, encode_gaps, load_quantized, load_sparse_int8, save_quantized
from sparsenet.formats import fused, sparse_int8
from sparsenet.formats.dense_int8 import DenseInt8Forward
from sparsenet.formats.shrunk_int8 import ShrunkInt8Forward
from sparsenet.formats.sparse_int8 import SparseInt8Forward
from sparsenet.quantize import MIN_CALIBRATION_SAMPLES, quantize
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net

INT8 = {cls.name: cls for cls in (DenseInt8Forward, SparseInt8Forward, ShrunkInt8Forward)}


def check(forward, x):
    """Output == the format's reference (within the float formats' tolerance), and that reference
    == the naive loops over the dequantized network."""
    y = forward(x)
    ref = forward.reference(x)
    assert_forward_close(y, ref)
    assert_forward_close(ref, naive.forward(forward.qnet.dequantized(), x))
    return y


@pytest.mark.parametrize("fmt", sorted(INT8))
@pytest.mark.parametrize("method", ["weight", "unit"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8, 0.97])
def test_int8_format_matches_its_reference(rng, fmt, method, sparsity):
    widths = (int(rng.integers(3, 90)),) + tuple(int(v) for v in rng.integers(1, 70, size=3)) + (7,)
    masked = prune(random_net(rng, widths, bias=bool(rng.integers(2))), method, sparsity)
    forward = INT8[fmt].build(masked)
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight) or fmt == "shrunk_int8"
    assert forward.in_memory_bytes > 0
    for n_batch in (1, 3, 64, 130):
        check(forward, rng.random((n_batch, widths[0])).astype(np.float32))


@pytest.mark.parametrize("fmt", sorted(INT8))
def test_int8_empty_rows_columns_and_layers(rng, fmt):
    """Hand-made masks: unused inputs, a hidden layer that keeps nothing (sparsity 1), a unit
    with nothing kept next to full ones, an all-zero input."""
    net = random_net(rng, (21, 13, 9, 4), bias=True)
    keep = [rng.random(layer.weight.shape) < 0.5 for layer in net.layers]
    keep[0][:, :6] = False
    keep[0][2] = False
    keep[1][:] = False
    masked = MaskedNetwork(net, Masks(tuple(keep), tuple(np.ones(l.n_out, bool) for l in net.layers)),
                           "weight", 0.5, "layer", (0, 1, 2))
    forward = INT8[fmt].build(masked)
    for x in (rng.random((1, 21)), rng.random((5, 21)), np.zeros((1, 21)), np.zeros((70, 21))):
        check(forward, x.astype(np.float32))


@pytest.mark.parametrize("layout", ["csc", "dense", "mixed"])
def test_sparse_int8_batch1_paths(rng, monkeypatch, layout):
    """Every layer CSC, every layer dense blocks, or a mix, each split across threads."""
    monkeypatch.setattr(fused, "PARALLEL_NNZ", 0)
    monkeypatch.setattr(fused, "PARALLEL_CSC_NNZ", 0)
    threshold = {"csc": 1.01, "dense": 0.0, "mixed": 0.5}[layout]
    monkeypatch.setattr(sparse_int8, "DENSE_DENSITY", dict.fromkeys((128, 256, 512), threshold))
    net = random_net(rng, (50, 41, 33, 10), bias=True)
    keep = tuple(rng.random(l.weight.shape) < d for l, d in zip(net.layers, (0.9, 0.1, 0.7)))
    masked = MaskedNetwork(net, Masks(keep, tuple(np.ones(l.n_out, bool) for l in net.layers)), "weight", 0.5,
                           "layer", (0, 1, 2))
    forward = SparseInt8Forward.build(masked)
    dense_layers = np.diff(forward.dense.part0) > 0
    assert dense_layers.tolist() == {"csc": [False] * 3, "dense": [True] * 3, "mixed": [True, False, True]}[layout]
    assert forward.dense.values.dtype == np.int8 and forward.csc.data.dtype == np.int8
    for x in (rng.random((1, 50)), np.zeros((1, 50))):
        check(forward, x.astype(np.float32))


@pytest.mark.parametrize("vector_bits", [256, 512])
def test_sparse_int8_batch1_dense_blocks_from_a_lower_density_than_float(rng, vector_bits):
    """Between the int8 and the float thresholds a layer is int8 dense blocks but float CSC."""
    density = (sparse_int8.DENSE_DENSITY[vector_bits] + fused.DENSE_DENSITY[vector_bits]) / 2
    net = random_net(rng, (300, 200, 10), bias=True)
    keep = (rng.random((200, 300)) < density, np.ones((10, 200), bool))
    masked = MaskedNetwork(net, Masks(keep, tuple(np.ones(l.n_out, bool) for l in net.layers)), "weight", 0.9,
                           "layer", (0, 1))
    int8 = SparseInt8Forward.build(masked, vector_bits)
    float32 = fused.FusedSparseForward.build(masked, vector_bits)
    assert np.diff(int8.dense.part0).tolist()[0] > 0 and np.diff(float32.dense.part0).tolist()[0] == 0
    check(int8, rng.random((1, 300)).astype(np.float32))


@pytest.mark.parametrize("vector_bits", [128, 256, 512])
def test_sparse_int8_tiles_and_input_blocks(rng, vector_bits):
    masked = prune(random_net(rng, (700, 300, 10), bias=True), "weight", 0.5)
    forward = SparseInt8Forward.build(masked, vector_bits)
    assert forward.csr.n_blocks[0] > 2 and forward.csr.data.dtype == np.int8
    x = rng.random((130, 700)).astype(np.float32)
    y = check(forward, x)
    for n in (2, 13, 64):  # other tile widths: the same bits per sample
        np.testing.assert_array_equal(forward(x[:n]), y[:n])
    with pytest.raises(ValueError, match="vector_bits must be 128, 256 or 512, found 384"):
        SparseInt8Forward.build(masked, 384)


@pytest.mark.parametrize("fmt", sorted(INT8))
def test_int8_formats_refuse_float64(rng, fmt):
    """float32 only (int8 weights are for speed and size; no float64 kernel copies to compile),
    refused by name at build; the float64 network's int8 reference still runs."""
    masked = prune(random_net(rng, (30, 20, 5), dtype=np.float64, bias=True), "weight", 0.7)
    with pytest.raises(NotImplementedError, match=f"format '{fmt}' runs float32 activations.*network is float64"):
        INT8[fmt].build(masked)
    with pytest.raises(NotImplementedError, match="float64: cast its layers' weights"):
        convert(masked, fmt)
    assert quantize(masked).reference(rng.random((2, 30))).dtype == np.float64


def test_int8_formats_store_a_quarter(rng):
    masked = prune(random_net(rng, (300, 200, 10)), "weight", 0.5)
    assert convert(masked, "dense").in_memory_bytes / DenseInt8Forward.build(masked).in_memory_bytes > 3.5
    assert convert(masked, "sparse").in_memory_bytes / SparseInt8Forward.build(masked).in_memory_bytes > 1.5


def test_shrunk_int8_deletes_units_and_keeps_the_function(rng):
    masked = prune(random_net(rng, (60, 40, 30, 8), bias=True), "unit", 0.5)
    forward = ShrunkInt8Forward.build(masked)
    assert forward.widths == (60, 20, 15, 8) and forward.packed.weights.weight_t.dtype == np.int8
    assert forward.in_memory_bytes < DenseInt8Forward.build(masked).in_memory_bytes
    for n in (1, 6):
        check(forward, rng.random((n, 60)).astype(np.float32))


@pytest.mark.parametrize("fmt", sorted(INT8))
def test_int8_format_refusals(rng, fmt):
    masked = prune(random_net(rng, (12, 8, 3)), "weight", 0.5)
    cls = INT8[fmt]
    static = quantize(masked, "static", rng.random((MIN_CALIBRATION_SAMPLES, 12)))
    with pytest.raises(NotImplementedError, match="runs weight-only int8.*mode='static'"):
        cls.build_quantized(static)
    with pytest.raises(TypeError, match="needs a QuantizedNetwork"):
        cls.build_quantized(masked)
    tanh = Network(tuple(Layer(l.weight, l.bias, "tanh" if i == 0 else l.activation)
                         for i, l in enumerate(masked.net.layers)))
    with pytest.raises(NotImplementedError, match=r"runs activations .*layer 0 is 'tanh'"):
        cls.build(prune(tanh, "weight", 0.5))
    forward = cls.build(masked)
    with pytest.raises(ValueError, match=r"input must have shape \(n_batch, 12\), found \(5, 11\)"):
        forward(np.zeros((5, 11), np.float32))
    with pytest.raises(TypeError, match="input dtype must be float32.*found float64"):
        forward(np.zeros((5, 12)))


# ------------------------------------------------------------------------------ int8 compact file
@pytest.mark.parametrize("n_in, density", [(7, 0.5), (300, 0.3), (2000, 0.002), (1000, 0.0)])
def test_gap_coding_round_trip(rng, n_in, density):
    keep = rng.random((9, n_in)) < density
    keep[0, -1] = True  # a gap longer than 255 where n_in allows
    rows, cols = np.nonzero(keep)
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    stream = encode_gaps(indptr, cols)
    assert stream.dtype == np.uint8
    np.testing.assert_array_equal(decode_gaps(stream, indptr), cols)
    with pytest.raises(ValueError, match="expected"):
        decode_gaps(stream[:-1], indptr)


@pytest.mark.parametrize("coding", ["auto", "plain", "delta8"])
@pytest.mark.parametrize("mode", ["weights", "static"])
def test_int8_file_round_trip(tmp_path, rng, coding, mode):
    net = random_net(rng, (300, 40, 17, 5), bias=True)
    masked = prune(net, "weight", 0.9)
    qnet = quantize(masked, mode, rng.random((MIN_CALIBRATION_SAMPLES, 300)) if mode == "static" else None)
    path = save_quantized(qnet, tmp_path / "net.spz", index_coding=coding, accuracy=0.5, source="test")
    back = load_quantized(path)
    assert (back.mode, back.method, back.sparsity, back.calibration) == (qnet.mode, "weight", 0.9, qnet.calibration)
    for a, b in zip(qnet.layers, back.layers):
        for name in ("q", "scale", "bias", "keep", "bias_keep"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.activation, a.input_scale) == (b.activation, b.input_scale)
    x = rng.random((4, 300))
    np.testing.assert_array_equal(back.reference(x), qnet.reference(x))
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["version"] == 2 and manifest["accuracy"] == 0.5
    codings = [spec["index_coding"] for spec in manifest["layers"]]
    assert codings == {"plain": ["plain"] * 3, "delta8": ["delta8"] * 3, "auto": ["delta8", "plain", "plain"]}[coding]
    if mode == "weights":
        forward = load_sparse_int8(path)
        for n in (1, 7):
            xb = x[:n].astype(np.float32)
            np.testing.assert_array_equal(forward(xb), SparseInt8Forward.build(masked)(xb))
        again = load_pruned(path)  # version 2 through the float loader: the dequantized network
        for w, d in zip(again.masked_weights(), qnet.dequantized().masked_weights()):
            np.testing.assert_array_equal(w, d)


def test_int8_file_is_smaller_and_version1_still_reads(tmp_path, rng):
    masked = prune(random_net(rng, (784, 300, 100, 10)), "weight", 0.95)
    v1 = save_pruned(masked, tmp_path / "f.spz")
    v2 = save_quantized(quantize(masked), tmp_path / "q.spz")
    assert v2.stat().st_size < 0.55 * v1.stat().st_size
    x = rng.random((3, 784)).astype(np.float32)
    assert_forward_close(convert(load_pruned(v1), "sparse")(x), convert(masked, "sparse")(x))
    with pytest.raises(FileFormatError, match="holds float weights, not int8; read it with sparsenet.load_pruned"):
        load_quantized(v1)


def _rewrite(src, dst, member, data):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            zout.writestr(item, data if item == member else zin.read(item))


def test_int8_file_corruption_is_named(tmp_path, rng):
    import io

    qnet = quantize(prune(random_net(rng, (300, 20, 4)), "weight", 0.9))
    path = save_quantized(qnet, tmp_path / "q.spz", index_coding="delta8")

    def npy(a):
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    with zipfile.ZipFile(path) as zf:
        gaps = np.load(io.BytesIO(zf.read("layer0/gaps.npy")))
        data = np.load(io.BytesIO(zf.read("layer0/data.npy")))
    cut = gaps.copy()
    cut[-1] = 255
    _rewrite(path, tmp_path / "a.spz", "layer0/gaps.npy", npy(cut))
    with pytest.raises(FileFormatError, match="layer0/gaps.npy: the gap stream holds"):
        load_quantized(tmp_path / "a.spz")
    bad = data.copy()
    bad[0] = -128
    _rewrite(path, tmp_path / "b.spz", "layer0/data.npy", npy(bad))
    with pytest.raises(FileFormatError, match="layer0/data.npy holds -128"):
        load_quantized(tmp_path / "b.spz")
    _rewrite(path, tmp_path / "c.spz", "layer1/scale.npy", npy(np.zeros(4, np.float32)))
    with pytest.raises(FileFormatError, match="layer1/scale.npy: scales must be positive"):
        load_quantized(tmp_path / "c.spz")
    with pytest.raises(ValueError, match="unknown index coding 'zip'"):
        save_quantized(qnet, tmp_path / "d.spz", index_coding="zip")
