"""sparse_int8_static: int8 weights and static int8 activations summed in int32, against the
float64 static network. On networks whose scales are powers of two nothing rounds in float, so
the output must equal the reference bit for bit (every shape, sparsity, batch, code path)."""

import numpy as np
import pytest

from sparsenet import MaskedNetwork, Masks, convert, prune
from sparsenet.formats import FORMATS
from sparsenet.formats.sparse_int8_static import (
    MAX_INPUTS,
    TOLERANCE,
    SparseInt8StaticForward,
    assert_static_close,
    input_blocks,
)
from sparsenet.kernels.int8_static import HAS_VNNI
from sparsenet.quantize import QuantizedLayer, QuantizedNetwork, quantize

from conftest import random_net


def dyadic_network(rng, widths, density, activations=None, empty=False) -> QuantizedNetwork:
    """A static network with power-of-two weight scales and input steps and biases on a 2**-10 grid."""
    activations = activations or ["relu"] * (len(widths) - 2) + ["linear"]
    layers = []
    for n_in, n_out, act in zip(widths[:-1], widths[1:], activations):
        keep = rng.random((n_out, n_in)) < density
        if empty:
            keep[0] = False  # an empty row
            keep[:, -1] = False  # an empty column
        q = np.where(keep, rng.integers(-127, 128, (n_out, n_in)), 0).astype(np.int8)
        scale = (2.0 ** -rng.integers(3, 8, n_out)).astype(np.float32)
        bias = (rng.integers(-512, 512, n_out) * 2.0 ** -10).astype(np.float32)
        step = float(2.0 ** -rng.integers(-2, 4))
        layers.append(QuantizedLayer(q, scale, bias, keep, np.ones(n_out, bool), act, step))
    return QuantizedNetwork(tuple(layers), "static", np.dtype(np.float32), "weight", 1 - density)


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("widths,density", [((37, 23, 9), 0.5), ((300, 101, 77, 10), 0.1), ((5, 3), 1.0),
                                            ((64, 33, 11), 0.0), ((130, 257, 6), 0.9)])
def test_exact_on_power_of_two_scales(rng, widths, density, portable):
    qnet = dyadic_network(rng, widths, density, empty=density not in (0.0, 1.0))
    forward = SparseInt8StaticForward.build_quantized(qnet, portable=portable)
    for n in (1, 2, 17, 64, 65, 130):
        x = (rng.standard_normal((n, widths[0])) * 3).astype(np.float32)
        np.testing.assert_array_equal(forward(x), forward.reference(x))


@pytest.mark.parametrize("blocks", [2, 3, 1000])
def test_input_blocks_sum_the_same(rng, blocks):
    """Rows summed over 2, 3 or one block per group give the reference exactly."""
    qnet = dyadic_network(rng, (101, 45, 30, 7), 0.6)
    forward = SparseInt8StaticForward.build_quantized(qnet, blocks=blocks)
    n_blocks = forward.ints[forward.ints[5]:forward.ints[6]]
    assert n_blocks.tolist() == [min(blocks, -(-w // 4)) for w in (101, 45, 30)]
    x = rng.standard_normal((70, 101)).astype(np.float32)
    np.testing.assert_array_equal(forward(x), forward.reference(x))


def test_blocks_only_where_rows_keep_enough_groups():
    assert input_blocks(np.ones((10, 1000), np.int32)) == 8  # 128 groups of 64 samples fill 32 KiB
    sparse = np.zeros((10, 1000), np.int32)
    sparse[:, ::25] = 1  # 40 groups per row: one block of at least 32
    assert input_blocks(sparse) == 1
    assert input_blocks(np.zeros((4, 8), np.int32)) == 1


def test_signed_hidden_layers_and_negative_inputs(rng):
    """A linear hidden layer's outputs are signed: its bytes carry the +128 offset, taken back exactly."""
    qnet = dyadic_network(rng, (50, 30, 21, 7), 0.4, ["linear", "relu", "linear"])
    for portable in (False, True):
        forward = SparseInt8StaticForward.build_quantized(qnet, portable=portable)
        x = (rng.standard_normal((33, 50)) * 4).astype(np.float32)
        np.testing.assert_array_equal(forward(x), forward.reference(x))


def test_saturation_clips_like_the_reference(rng):
    """Inputs far beyond the calibrated range saturate at +-127 steps, as the reference rounds them."""
    qnet = dyadic_network(rng, (20, 16, 5), 0.7)
    forward = SparseInt8StaticForward.build_quantized(qnet)
    x = (rng.standard_normal((9, 20)) * 1e4).astype(np.float32)
    np.testing.assert_array_equal(forward(x), forward.reference(x))


def test_vnni_path_where_the_cpu_has_it():
    from sparsenet.kernels import int8_static

    if HAS_VNNI:
        assert int8_static._has_vnni("+avx512f,+avx512vnni,+evex512")
    assert not int8_static._has_vnni("+avx2,-avx512f,-avx512vnni")
    assert not int8_static._has_vnni("+avx512f,+avx512vnni,-evex512")


def test_calibrated_network_within_tolerance(rng):
    """Real (non power-of-two) scales: within the documented tolerance of the float64 reference,
    and a perturbed output fails it."""
    net = random_net(rng, (60, 40, 30, 10), bias=True)
    masked = prune(net, "weight", 0.7)
    forward = SparseInt8StaticForward.build(masked, rng.random((300, 60)).astype(np.float32))
    assert forward.calibration == "training samples (300)"
    x = rng.random((50, 60)).astype(np.float32)
    y, ref = forward(x), forward.reference(x)
    assert_static_close(y, ref)
    assert np.mean(np.abs(y - ref) <= 1e-4 * np.abs(ref).max()) > 0.95  # most outputs round identically
    bad = y.copy()
    bad[3, 2] += 2 * TOLERANCE * np.abs(ref).max()
    with pytest.raises(AssertionError, match="max"):
        assert_static_close(bad, ref)


def test_convert_uses_the_stand_in_calibration(rng):
    masked = prune(random_net(rng, (30, 20, 5), bias=True), "weight", 0.5)
    forward = convert(masked, "sparse_int8_static")
    assert isinstance(forward, SparseInt8StaticForward) and forward.calibration == "stand-in (300)"
    assert FORMATS["sparse_int8_static"].integer_math and FORMATS["sparse_int8_static"].quantized
    x = rng.random((3, 30)).astype(np.float32)
    forward.assert_close(forward(x), forward.reference(x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight) and forward.in_memory_bytes > 0


def test_refuses_what_it_cannot_run(rng):
    masked = prune(random_net(rng, (30, 20, 5), bias=True), "weight", 0.5)
    with pytest.raises(NotImplementedError, match="static int8 activations"):
        SparseInt8StaticForward.build_quantized(quantize(masked))
    with pytest.raises(TypeError, match="QuantizedNetwork"):
        SparseInt8StaticForward.build_quantized(masked)
    wide = dyadic_network(rng, (MAX_INPUTS + 4, 2), 0.0)
    with pytest.raises(NotImplementedError, match="at most"):
        SparseInt8StaticForward.build_quantized(wide)
    forward = SparseInt8StaticForward.build_quantized(dyadic_network(rng, (8, 4), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        forward(np.full((2, 8), np.nan, np.float32))
    with pytest.raises(ValueError):
        forward(np.zeros((2, 9), np.float32))


def test_masks_hold_pruned_weights_at_zero(rng):
    """A pruned weight never enters a word: the packed groups cover only kept inputs."""
    net = random_net(rng, (40, 12, 3), bias=True)
    keep = (np.zeros((12, 40), bool), np.ones((3, 12), bool))
    keep[0][:, :4] = True  # only group 0 kept in layer 0
    masked = MaskedNetwork(net, Masks(keep, tuple(np.ones(l.n_out, bool) for l in net.layers)), "weight", 0.9,
                           "layer", (0, 1))
    forward = SparseInt8StaticForward.build(masked, rng.random((300, 40)).astype(np.float32))
    n_layer0 = int(forward.gptr[12])
    assert set(forward.groups[:n_layer0].tolist()) <= {0}


def test_accuracy_records_carry_the_static_accuracy(rng):
    """The report's accuracy records gain int8_static_accuracy where the run times the format."""
    from types import SimpleNamespace

    from bench.report.accuracy import accuracy_records

    net = random_net(rng, (20, 16, 4), bias=True)
    x = rng.random((400, 20)).astype(np.float32)
    labels = np.argmax(x[:, :4], axis=1)
    data = {"toy": SimpleNamespace(x_train=x, x_test=x[:200], y_test=labels[:200])}
    models = {"toy": (net, {"epochs": 1})}
    with_static = accuracy_records(models, data, ["weight"], ["layer"], [0.5], progress=lambda *_: None,
                                   formats=("dense", "sparse_int8_static"))
    without = accuracy_records(models, data, ["weight"], ["layer"], [0.5], progress=lambda *_: None,
                               formats=("dense",))
    assert 0 <= with_static[0]["int8_static_accuracy"] <= 1 and "int8_static_accuracy" not in without[0]


def test_batch1_dense_path_serial_and_split(rng):
    """Batch 1 runs its own kernel (dense int8 rows); a layer of PARALLEL_WORDS words or more is
    split across threads, smaller ones not: one thread and all threads give the reference."""
    import numba

    from sparsenet.kernels.int8_static import PARALLEL_WORDS

    qnet = dyadic_network(rng, (400, 300, 10), 0.3, empty=True)
    forward = SparseInt8StaticForward.build_quantized(qnet)
    assert forward.n_pad.tolist() == [112, 80] and 300 * 112 >= PARALLEL_WORDS > 10 * 80
    x = (rng.standard_normal((1, 400)) * 3).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, threads}):
            numba.set_num_threads(n)
            np.testing.assert_array_equal(forward(x), forward.reference(x))
    finally:
        numba.set_num_threads(threads)
