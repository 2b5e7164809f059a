"""Conformance: every registered format x every pruning method agrees with the naive forward."""

import numpy as np
import pytest

from sparsenet import FORMATS, PRUNERS, Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.activations import ACTIVATIONS
from sparsenet.formats import auto, formats_for
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net

SPARSITIES = [0.0, 0.25, 0.5, 0.9, 0.99]
# sparsenet's own formats; the other engines (TFLite converts for a second) are tests/test_engines.py's
# and not the int8 ones, checked against their own dequantized reference in tests/test_int8_formats.py
# conv formats (needs_kinds) are checked on conv networks, MLPs included, in their own file (tests/test_sparse_conv.py)
OURS = sorted(name for name, cls in FORMATS.items() if cls.kind != "engine" and not cls.quantized
              and not cls.needs_kinds)


@pytest.fixture(autouse=True)
def quick_auto(monkeypatch):
    """auto returns its chosen candidate's output, and every candidate is checked here under its
    own name; so time each candidate once, without settling (~0.6 s less per auto case; what
    auto picks and how it measures is tests/test_auto.py's job)."""
    monkeypatch.setattr(auto, "MEASURE_S", 0.0)
    monkeypatch.setattr(auto, "MEASURE_ROUNDS", 1)
    monkeypatch.setattr(auto, "SETTLE_S", 0.0)


@pytest.mark.parametrize("fmt", OURS)
@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("n_batch", [1, 5, 64])
def test_format_matches_reference(rng, fmt, method, scope, sparsity, n_batch):
    widths = tuple(int(v) for v in rng.integers(3, 70, size=4)) + (10,)
    net = random_net(rng, widths, bias=bool(rng.integers(2)))
    masked = prune(net, method, sparsity, scope)
    x = rng.random((n_batch, widths[0])).astype(np.float32)
    forward = convert(masked, fmt)
    y = forward(x)
    assert_forward_close(y, naive.forward(masked, x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight) or fmt == "shrunk"
    assert forward.in_memory_bytes > 0


def with_activation(net: Network, activation: str, output: str | None = None) -> Network:
    """``net`` with every hidden layer's activation replaced (and the output layer's, if given)."""
    last = len(net.layers) - 1
    return Network(tuple(Layer(layer.weight, layer.bias, (output or layer.activation) if i == last else activation)
                         for i, layer in enumerate(net.layers)))


@pytest.mark.parametrize("fmt", OURS)
@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"softmax"}))
@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("n_batch", [1, 7])
def test_format_runs_the_activations_it_declares(rng, fmt, activation, method, n_batch):
    """Every activation on the hidden layers and on the output layer (a tanh output is no logit),
    weights scaled up so that the activations' non-linear ranges are reached."""
    net = with_activation(random_net(rng, (23, 31, 17, 5), bias=True, scale=3.0), activation, activation)
    masked = prune(net, method, 0.5)
    cls = FORMATS[fmt]
    used = {layer.activation for layer in net.layers}
    if activation not in cls.activations:
        assert fmt not in formats_for(PRUNERS[method].structured, activations=used)
        with pytest.raises(NotImplementedError, match=f"runs activations .*also uses \\['{activation}'\\]"):
            convert(masked, fmt)
        return
    # an MLP: a conv format is not offered; a block format only for a block method
    assert fmt in formats_for(True, activations=used, method_blocks=True) or cls.needs_kinds
    x = rng.standard_normal((n_batch, 23)).astype(np.float32)
    assert_forward_close(convert(masked, fmt)(x), naive.forward(masked, x))


def test_formats_for_keeps_todays_default():
    assert formats_for(False) == formats_for(False, activations={"relu", "softmax"})
    assert "sparse" in formats_for(False) and "sparse" not in formats_for(False, activations={"relu", "gelu"})
    assert "shrunk" in formats_for(True, activations={"sigmoid"}) and "shrunk" not in formats_for(False)


@pytest.mark.parametrize("fmt", [f for f in OURS if np.dtype(np.float64) in FORMATS[f].dtypes])
def test_format_float64_and_noncontiguous_input(rng, fmt):
    net = random_net(rng, (30, 20, 5), dtype=np.float64, bias=True)
    masked = prune(net, "weight", 0.7)
    x = rng.random((9, 60))[:, ::2]  # a strided view
    assert_forward_close(convert(masked, fmt)(x), naive.forward(masked, np.ascontiguousarray(x)))


@pytest.mark.parametrize("fmt", OURS)
def test_format_all_zero_layer_and_empty_columns(rng, fmt):
    """Masks built by hand: a hidden layer with nothing kept, and input columns nobody reads."""
    net = random_net(rng, (12, 8, 6, 3), bias=True)
    keep = [np.ones(layer.weight.shape, bool) for layer in net.layers]
    keep[0][:, :5] = False   # inputs 0..4 unused
    keep[1][:] = False       # layer 1 multiplies nothing: only its bias survives
    bias = [np.ones(layer.n_out, bool) for layer in net.layers]
    masked = MaskedNetwork(net, Masks(tuple(keep), tuple(bias)), "weight", 0.5, "layer", (0, 1))
    x = rng.random((4, 12)).astype(np.float32)
    assert_forward_close(convert(masked, fmt)(x), naive.forward(masked, x))


def test_shrunk_deletes_the_pruned_units_and_equals_masked(rng):
    net = random_net(rng, (784, 1000, 1000, 500, 200, 10), bias=True)
    masked = prune(net, "unit", 0.8)
    shrunk = convert(masked, "shrunk")
    assert shrunk.widths == (784, 200, 200, 100, 40, 10)
    assert shrunk.nnz == 784 * 200 + 200 * 200 + 200 * 100 + 100 * 40 + 40 * 10
    biases = 4 * (200 + 200 + 100 + 40 + 10)
    assert 4 * shrunk.nnz + biases <= shrunk.in_memory_bytes < 4 * shrunk.nnz + 3 * biases  # weights held once
    x = rng.random((8, 784)).astype(np.float32)
    assert_forward_close(shrunk(x), convert(masked, "dense")(x))


def test_csr_in_memory_bytes_counts_int32_indices(rng):
    net = random_net(rng, (100, 50, 10))
    masked = prune(net, "weight", 0.9)
    fwd = convert(masked, "csr_numba")
    nnz = 500 + 500  # layer 0 pruned to 10%, logits layer kept
    assert fwd.nnz == nnz
    assert fwd.in_memory_bytes == nnz * 4 + nnz * 4 + (51 + 11) * 4


def test_prune_then_convert_does_not_mutate_network(rng):
    net = random_net(rng, (20, 10, 4), bias=True)
    before = [layer.weight.copy() for layer in net.layers]
    for fmt in OURS:
        convert(prune(net, "unit", 0.5), fmt)(rng.random((3, 20)).astype(np.float32))
    for layer, w in zip(net.layers, before):
        np.testing.assert_array_equal(layer.weight, w)


def test_unknown_object_is_rejected():
    with pytest.raises(TypeError, match="needs a MaskedNetwork"):
        convert(Network((Layer(np.ones((2, 2), np.float32), None, "relu"),)), "dense")


@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("layout", ["csc", "dense", "mixed"])
def test_sparse_batch1_split_across_threads_matches(rng, monkeypatch, method, layout):
    """Force the batch-1 kernel's multi-block paths (normally only for large layers: PARALLEL_NNZ
    stored dense, PARALLEL_CSC_NNZ kept sparse), with every layer CSC, every layer dense blocks,
    or a mix."""
    import numba

    from sparsenet.formats import fused

    monkeypatch.setattr(fused, "PARALLEL_NNZ", 0)
    monkeypatch.setattr(fused, "PARALLEL_CSC_NNZ", 0)
    threshold = {"csc": 1.01, "dense": 0.0, "mixed": 0.5}[layout]
    monkeypatch.setattr(fused, "DENSE_DENSITY", dict.fromkeys((128, 256, 512), threshold))
    net = random_net(rng, (50, 41, 33, 10), bias=True)
    masked = prune(net, method, 0.6) if layout != "mixed" else MaskedNetwork(
        net, Masks(tuple(rng.random(layer.weight.shape) < d for layer, d in zip(net.layers, (0.9, 0.1, 0.7))),
                   tuple(np.ones(layer.n_out, bool) for layer in net.layers)), "weight", 0.5, "layer", (0, 1, 2))
    forward = convert(masked, "sparse")
    dense_layers = np.diff(forward.dense.part0) > 0
    assert dense_layers.tolist() == {"csc": [False] * 3, "dense": [True] * 3, "mixed": [True, False, True]}[layout]
    if numba.get_num_threads() > 1:
        assert (np.where(dense_layers, np.diff(forward.dense.part0), forward.csc.parts) > 1).all()
    for x in (rng.random((1, 50)).astype(np.float32), np.zeros((1, 50), np.float32)):
        assert_forward_close(forward(x), naive.forward(masked, x))


@pytest.mark.parametrize("vector_bits", [128, 256, 512])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_batched_input_blocks_and_tile_widths(rng, dtype, vector_bits):
    """Layers wide enough to be cut into L1-sized input blocks, at batch sizes that pick every
    tile width of an instruction set (this machine's and the others', built for their register
    width) and need padding; the pack keeps every kept weight exactly once."""
    from sparsenet.formats.fused import FusedSparseForward, input_blocks, tile_lanes
    from sparsenet.kernels import tile_widths

    net = random_net(rng, (700, 300, 260, 10), dtype=dtype, bias=True)
    masked = prune(net, "weight", 0.5)
    forward = FusedSparseForward.build(masked, vector_bits)
    with pytest.raises(ValueError, match="vector_bits must be 128, 256 or 512, found 384"):
        FusedSparseForward.build(masked, 384)
    widest = max(tile_widths(dtype, vector_bits))
    assert forward.csr.n_blocks.tolist() == [input_blocks(k, np.dtype(dtype).itemsize, widest)
                                             for k in masked.masks.weight]
    assert forward.csr.n_blocks[0] > 2 and forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)
    batches = (2, 7, 13, 30, 64, 100, 300)
    assert {tile_lanes(n, dtype, vector_bits) for n in batches} == set(tile_widths(dtype, vector_bits))
    for n in batches:
        x = rng.random((n, 700)).astype(dtype)
        assert_forward_close(forward(x), naive.forward(masked, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_batched_results_do_not_depend_on_the_batch_or_the_vector_width(rng, dtype):
    """A sample's logits are the same bits whichever tile width its batch size picks; builds for
    other register widths agree too (bit for bit where their input blocks coincide: float32 on
    AVX2 and AVX-512 both block for 64-sample tiles)."""
    from sparsenet.formats.fused import FusedSparseForward

    masked = prune(random_net(rng, (700, 300, 260, 10), dtype=dtype, bias=True), "weight", 0.5)
    x = rng.random((300, 700)).astype(dtype)
    by_bits = {}
    for bits in (128, 256, 512):
        forward = FusedSparseForward.build(masked, bits)
        y = forward(x)
        for n in (2, 13, 64, 100):
            np.testing.assert_array_equal(forward(x[:n]), y[:n])
        by_bits[bits] = y
    assert_forward_close(by_bits[256], naive.forward(masked, x))
    assert_forward_close(by_bits[128], by_bits[256])
    if dtype == np.float32:
        np.testing.assert_array_equal(by_bits[256], by_bits[512])


def test_batch1_order_sorts_hidden_units_and_keeps_the_function(rng):
    from sparsenet.formats.fused import _batch1_order

    net = random_net(rng, (20, 15, 12, 4), bias=True)
    masked = prune(net, "weight", 0.6)
    biases = [layer.bias for layer in net.layers]
    w1, k1, b1 = _batch1_order(masked.masked_weights(), masked.masks.weight, biases)
    for l in range(len(k1) - 1):
        counts = k1[l + 1].sum(axis=0)
        assert (np.diff(counts) <= 0).all(), "hidden units ordered by the next layer's column lengths"
    x = rng.random((3, 20)).astype(np.float32)

    def logits(ws, bs):
        h = x
        for l, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w.T + b
            h = np.maximum(h, 0) if l < len(ws) - 1 else h
        return h

    np.testing.assert_allclose(logits(w1, b1), logits(masked.masked_weights(), biases), rtol=1e-5, atol=1e-6)
    assert_forward_close(convert(masked, "sparse")(x[:1]), naive.forward(masked, x[:1]))


@pytest.mark.parametrize("shape", [(3, 784, 64), (1, 10, 8), (0, 5, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aligned_empty(shape, dtype):
    from sparsenet.formats.fused import aligned_empty

    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % 64 == 0  # an empty view has no data to align
    a[...] = 1  # the whole view is usable memory
    assert a.sum() == a.size


@pytest.mark.parametrize("n_out", [1, 10])
def test_sparse_results_do_not_alias_its_scratch(rng, n_out):
    """The batched path reuses its buffers across calls; a returned result must survive the
    next call (with one output unit the final reshape would otherwise be a view)."""
    net = random_net(rng, (30, 20, n_out), bias=True)
    forward = convert(prune(net, "weight", 0.5), "sparse")
    x1, x2 = rng.random((64, 30)).astype(np.float32), rng.random((64, 30)).astype(np.float32)
    y1 = forward(x1)
    kept = y1.copy()
    forward(x2)
    np.testing.assert_array_equal(y1, kept)


def test_sparse_scratch_kept_per_batch_shape(rng):
    from sparsenet.formats.fused import _SCRATCH_SHAPES

    masked = prune(random_net(rng, (30, 20, 4), bias=True), "weight", 0.5)
    forward = convert(masked, "sparse")
    x = rng.random((300, 30)).astype(np.float32)
    first = forward._buffers(1, 64, np.float32)
    for n in (1, 64, 1, 64):  # alternating batch sizes reuse their buffers
        assert_forward_close(forward(x[:n]), naive.forward(masked, x[:n]))
    assert forward._buffers(1, 64, np.float32)[0] is first[0]
    for n in (8, 16, 32, 300):
        assert_forward_close(forward(x[:n]), naive.forward(masked, x[:n]))
    assert len(forward._scratch.buffers) == _SCRATCH_SHAPES


@pytest.mark.parametrize("vector_bits", [128, 256, 512])
def test_tile_lanes_and_input_blocks(vector_bits):
    from sparsenet.formats.fused import input_blocks, tile_lanes
    from sparsenet.kernels import tile_widths

    widest = 32 if vector_bits == 128 else 64  # float32: an accumulator of at most 8 registers
    assert tile_lanes(1024, np.float32, vector_bits) == tile_lanes(widest, np.float32, vector_bits) == widest
    assert tile_lanes(7, np.float32, vector_bits) == 8
    for dtype in (np.float32, np.float64):
        assert all(tile_lanes(n, dtype, vector_bits) in tile_widths(dtype, vector_bits) for n in range(1, 300))
    keep = np.zeros((100, 1000), bool)
    assert input_blocks(keep, 4) == 1  # nothing kept: nothing to cut
    keep[:, ::2] = True  # density 0.5: 128 float32 inputs of 64 samples fill 32 KiB
    assert input_blocks(keep, 4, 64) == 8 and input_blocks(keep, 8, 64) == 16 and input_blocks(keep, 4, 32) == 4
    assert input_blocks(keep, 4) == input_blocks(keep, 4, max(tile_widths(np.float32)))  # default: this machine
    keep[:] = False
    keep[:, ::100] = True  # density 0.01: blocks would hold < 32 kept weights per row
    assert input_blocks(keep, 4) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_shrunk_batch1_kernel_equals_blas_path(rng, dtype, sparsity):
    """Batch 1 runs the fused kernel, larger batches BLAS: both must give the reference logits,
    with biases, zero inputs (skipped by the kernel) and dead units."""
    net = random_net(rng, (40, 33, 17, 9, 10), dtype=dtype, bias=True)
    masked = prune(net, "unit", sparsity)
    forward = convert(masked, "shrunk")
    assert forward.packed is not None
    x = rng.standard_normal((3, 40)).astype(dtype)
    x[:, ::3] = 0
    expected = naive.forward(masked, x)
    for i in range(3):
        assert_forward_close(forward(x[i:i + 1]), expected[i:i + 1])
    assert_forward_close(forward(x), expected)
    flat = forward.packed.weight_t
    assert all(np.shares_memory(layer.weight_t, flat) for layer in forward.layers)  # stored once
    assert flat.nbytes <= forward.in_memory_bytes < 2 * flat.nbytes  # the views are not counted again


@pytest.mark.parametrize("hidden, output", [("sigmoid", "softmax"), ("relu", "tanh")])
def test_shrunk_falls_back_to_blas_where_its_kernel_cannot_apply_the_activation(rng, hidden, output):
    """The batch-1 kernel applies ReLU or nothing: any other activation, the output layer's
    included (a tanh output is no logit), runs through BLAS and numpy."""
    net = with_activation(random_net(rng, (12, 8, 10), bias=True), hidden, output)
    masked = prune(net, "unit", 0.5)
    forward = convert(masked, "shrunk")
    assert forward.packed is None
    x = rng.standard_normal((1, 12)).astype(np.float32)
    assert_forward_close(forward(x), naive.forward(masked, x))


def test_batch1_dense_blocks_from_the_density_of_the_register_width(rng):
    """A layer keeping 15% of its weights runs as dense blocks where vectors are 512 bits wide
    (DENSE_DENSITY 0.125: measured on Zen 4) and as CSC on 256-bit ones (0.2: Zen 3); same outputs."""
    from sparsenet.formats import fused

    net = random_net(rng, (60, 50, 40, 10), bias=True)
    keep = tuple(rng.random(layer.weight.shape) < 0.15 for layer in net.layers)
    masked = MaskedNetwork(net, Masks(keep, tuple(np.ones(layer.n_out, bool) for layer in net.layers)), "weight",
                           0.85, "layer", (0, 1, 2))
    density = [k.mean() for k in keep]
    x = rng.random((1, 60)).astype(np.float32)
    for bits in (256, 512):
        forward = fused.FusedSparseForward.build(masked, vector_bits=bits)
        part0 = forward.dense.part0
        as_dense = [bool(part0[l] < part0[l + 1]) for l in range(len(net.layers))]
        assert as_dense == [d >= fused.DENSE_DENSITY[bits] for d in density]
        assert_forward_close(forward(x), naive.forward(masked, x))
    assert fused.DENSE_DENSITY[512] < min(density[:2]) < fused.DENSE_DENSITY[256]  # the two widths differ here
