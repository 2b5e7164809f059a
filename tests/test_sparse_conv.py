"""sparse_conv (sparsenet.formats.sparse_conv, sparsenet.kernels.conv) against the float64 reference."""

import numpy as np
import pytest

from sparsenet import FORMATS, Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.formats.sparse_conv import GROUP, SparseConvForward, _allocate
from sparsenet.kernels.conv import conv_forward_serial, conv_forward_split, row_stride, split_parts
from sparsenet.layers import Conv2D, DepthwiseConv2D, GlobalAvgPool
from sparsenet.layers._spatial import same_pads
from sparsenet.testing import assert_forward_close

import naive


def mobilenet_like(rng, dtype=np.float32, hw=(11, 9), c_in=3, pool=True) -> Network:
    """Odd sizes and channel counts; a 3x3 stride-2 'same' first conv; two inverted residual blocks
    (1x1 expand, depthwise with ReLU6, 1x1 linear project + add; one of them adding the block
    input of the previous block); a stride-2 depthwise with ZeroPadding2D-style pads; a 2x2 conv;
    then pooling and a classifier, or (``pool=False``) a classifier on the flattened 2-D output."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(dtype)

    def b(n):
        return (0.3 * rng.standard_normal(n)).astype(dtype) if rng.integers(2) else None

    h1 = (-(-hw[0] // 2), -(-hw[1] // 2))
    layers = [
        Conv2D(w(5, 3, 3, c_in), b(5), "relu6", hw, stride=2, pads=same_pads(hw, (3, 3), 2)),  # 0
        Conv2D(w(13, 1, 1, 5), b(13), "relu6", h1),  # 1 expand
        DepthwiseConv2D(w(13, 3, 3), b(13), "relu6", h1, pads=same_pads(h1, (3, 3), 1)),  # 2
        Conv2D(w(5, 1, 1, 13), b(5), "linear", h1, residual_from=0),  # 3 project + add
        Conv2D(w(9, 1, 1, 5), None, "relu", h1),  # 4 expand
        DepthwiseConv2D(w(9, 3, 3), b(9), "relu", h1, pads=same_pads(h1, (3, 3), 1)),  # 5
        Conv2D(w(5, 1, 1, 9), b(5), "linear", h1, residual_from=3),  # 6 project + add
        DepthwiseConv2D(w(5, 3, 3), None, "relu6", h1, stride=2, pads=(0, 1, 0, 1)),  # 7
    ]
    layers.append(Conv2D(w(7, 2, 2, 5), b(7), "relu", layers[-1].output_shape[:2], pads=(0, 1, 0, 1)))  # 8
    if pool:
        layers.append(GlobalAvgPool(layers[-1].output_shape, dtype=np.dtype(dtype).name))
    layers.append(Layer(w(4, layers[-1].n_out), b(4), "softmax"))
    return Network(tuple(layers))


@pytest.mark.parametrize("dtype", [np.float32])
@pytest.mark.parametrize("method,scope,sparsity", [("weight", "layer", 0.0), ("weight", "layer", 0.5),
                                                   ("weight", "global", 0.9), ("weight", "layer", 0.99),
                                                   ("unit", "layer", 0.6)])
def test_sparse_conv_matches_the_reference(rng, dtype, method, scope, sparsity):
    net = mobilenet_like(rng, dtype, pool=sparsity != 0.9)  # the flattened classifier at 0.9
    masked = prune(net, method, sparsity, scope, include_depthwise=bool(rng.integers(2)))
    forward = convert(masked, "sparse_conv")
    for n_batch in (1, 5, 2 * GROUP + 3):  # one group; two threads' groups; several groups, a partial one
        x = rng.standard_normal((n_batch, net.widths[0])).astype(dtype)
        assert_forward_close(forward(x), naive.forward_kinds(masked, x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)
    assert forward.in_memory_bytes >= forward.csr.data.nbytes + forward.dense_w.nbytes


@pytest.mark.parametrize("stride", [2, 3])
def test_strided_layers_on_wide_planes(rng, stride):
    """Batch 1 runs a strided depthwise row as stride-1 sums over several 8-lane chunks, then keeps
    every ``stride``-th; a full convolution runs as its windows' rows (im2col) times CSR, here a
    5x3 kernel with asymmetric pads, 4 input channels and a residual add."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(np.float32)

    hw = (13, 41)
    conv = Conv2D(w(4, 5, 3, 2), w(4), "relu", hw, stride=stride, pads=(2, 1, 0, 2))
    h1 = conv.output_shape[:2]
    layers = [
        conv,
        Conv2D(w(4, 3, 3, 4), w(4), "relu6", h1, pads=(1, 1, 1, 1), residual_from=0),
        DepthwiseConv2D(w(4, 3, 3), w(4), "relu6", h1, stride=stride, pads=same_pads(h1, (3, 3), stride)),
    ]
    h2 = layers[-1].output_shape[:2]
    layers.append(DepthwiseConv2D(w(4, 5, 5), None, "linear", h2, stride=stride, pads=(2, 2, 1, 3)))
    layers.append(Layer(w(3, layers[-1].n_out), w(3), "softmax"))
    net = Network(tuple(layers))
    for sparsity in (0.0, 0.6):
        masked = prune(net, "weight", sparsity, "layer", include_depthwise=True)
        forward = convert(masked, "sparse_conv")
        for n_batch in (1, GROUP, GROUP + 2):
            x = rng.standard_normal((n_batch, net.widths[0])).astype(np.float32)
            assert_forward_close(forward(x), naive.forward_kinds(masked, x))


@pytest.mark.parametrize("hw", [(16, 16), (8, 8), (7, 5), (4, 4), (2, 2), (1, 1)])
def test_every_plane_size_in_groups_and_alone(rng, hw):
    """Input planes of at most 16 positions: a group of GROUP samples runs a depthwise layer one
    pass per tap over blocks of channels (40 channels: a full block and a partial one), a single
    sample with its channels in the SIMD lanes (40: five registers, the last partial); larger
    ones channel by channel, 16x16 and 8x8 (groups) in channel rows a line longer (row_stride)."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(np.float32)

    layers = [
        Conv2D(w(40, 1, 1, 3), w(40), "relu6", hw),
        DepthwiseConv2D(w(40, 3, 3), w(40), "relu6", hw, pads=same_pads(hw, (3, 3), 1)),
        Conv2D(w(40, 1, 1, 40), None, "linear", hw, residual_from=0),
        DepthwiseConv2D(w(40, 3, 3), None, "relu", hw, stride=2, pads=same_pads(hw, (3, 3), 2)),
    ]
    layers.append(GlobalAvgPool(layers[-1].output_shape, dtype="float32"))
    layers.append(Layer(w(6, 40), w(6), "softmax"))
    net = Network(tuple(layers))
    masked = prune(net, "weight", 0.5)
    forward = convert(masked, "sparse_conv")
    for n_batch in (1, 2 * GROUP, 2 * GROUP + 3):
        x = rng.standard_normal((n_batch, net.widths[0])).astype(np.float32)
        assert_forward_close(forward(x), naive.forward_kinds(masked, x))


def test_steps_shared_by_threads_give_the_serial_result_bit_for_bit(rng):
    """Batch 1 with threads: every step that can be cut by output channel is (threshold 0), and
    the result is the serial kernel's exactly (each channel's sums are the same; only who writes
    them changes). The depthwise steps on 16x16 (image rows), 16 -> 8 (stride-2 rows), 8x8 and 4x4
    planes (channels in lanes) are shared; the 4x4 -> 2x2 one, whose rows are half a vector, is
    not (its stores reach into the next channel's row)."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(np.float32)

    hw = (16, 16)
    layers = [Conv2D(w(40, 1, 1, 3), w(40), "relu6", hw),
              DepthwiseConv2D(w(40, 3, 3), w(40), "relu6", hw, pads=same_pads(hw, (3, 3), 1))]
    for size in (16, 8, 4):
        layers.append(DepthwiseConv2D(w(40, 3, 3), w(40), "relu", (size, size), stride=2,
                                      pads=same_pads((size, size), (3, 3), 2)))
        half = (size // 2, size // 2)
        layers.append(Conv2D(w(40, 1, 1, 40), w(40), "linear", half))
        if size > 4:
            layers.append(DepthwiseConv2D(w(40, 3, 3), None, "relu6", half, pads=same_pads(half, (3, 3), 1)))
    layers.append(GlobalAvgPool(layers[-1].output_shape, dtype="float32"))
    layers.append(Layer(w(6, 40), w(6), "softmax"))
    masked = prune(Network(tuple(layers)), "weight", 0.5)
    forward = convert(masked, "sparse_conv")
    parts = split_parts(forward.plan, forward.csr, 2, min_fmas=0)
    dw = [int(k) for k, layer in enumerate(masked.net.layers) if layer.kind == "depthwise_conv2d"]
    shared = {(int(forward.plan.h_in[k]), int(forward.plan.stride[k])): int(parts[k]) for k in dw}
    assert shared == {(16, 1): 2, (16, 2): 2, (8, 2): 2, (8, 1): 2, (4, 1): 2, (4, 2): 1}
    assert all(parts[forward.plan.op == 0] == 2)
    scratch, slot = forward._buffers(1, 2, np.float32)
    # 3 and 5 parts: uneven shares, and depthwise shares rounded to 16 channels that come out empty
    many = {n: split_parts(forward.plan, forward.csr, n, min_fmas=0) for n in (3, 5)}
    for _ in range(3):
        x = rng.standard_normal((1, masked.net.widths[0])).astype(np.float32)
        serial, split = (np.empty((1, forward.n_out), np.float32) for _ in range(2))
        args = (forward.plan, forward.csr, forward.dense_w, forward.bias, x, scratch)
        conv_forward_serial(*args, serial, 1, slot)
        conv_forward_split(*args, split, slot, parts)
        np.testing.assert_array_equal(split, serial)
        for n, p in many.items():
            conv_forward_split(*args, split, slot, p)
            np.testing.assert_array_equal(split, serial, err_msg=f"{n} parts")
        assert_forward_close(split, naive.forward_kinds(masked, x))
        np.testing.assert_array_equal(forward(x), serial)  # the format's own batch-1 call


def test_row_stride_skews_long_rows_by_a_line():
    assert [row_stride(m) for m in (1, 8, 9, 248, 250, 256, 264, 512, 2048)] == [8, 8, 16, 248, 272, 272, 264, 528,
                                                                                 2064]


def test_a_sample_gets_the_same_result_in_any_batch(rng):
    """Groups of GROUP samples run the spatial layers as SIMD over samples, single samples along
    image rows, partial groups scalar: the same sums (FMA contraction of the scalar path may differ
    in the last bit, so within tolerance), and a partial group's padding lanes change nothing."""
    masked = prune(mobilenet_like(rng), "weight", 0.7)
    forward = convert(masked, "sparse_conv")
    x = rng.standard_normal((2 * GROUP + 5, masked.net.widths[0])).astype(np.float32)
    whole = forward(x)
    assert_forward_close(np.concatenate([forward(x[i:i + 1]) for i in range(len(x))]), whole)
    assert_forward_close(forward(x[:3]), whole[:3])
    np.testing.assert_array_equal(forward(x), whole)  # scratch reused across calls: nothing left behind


def test_channels_pruned_to_one_or_none_and_empty_rows_and_columns(rng):
    """Hand-made masks: a 1x1 layer with no kept weight at all, one keeping a single input
    channel (empty columns) and single output channels (empty rows), the first conv down to one
    filter; biases kept, so that empty rows still output act(bias)."""
    net = mobilenet_like(rng, np.float32, c_in=1)
    keep = [np.ones(layer.weight.shape, bool) for layer in net.layers]
    keep[0][1:] = False  # one filter of the first conv
    keep[1][:] = False  # expand layer: nothing kept, its outputs are act(bias)
    keep[3][:, :, :, 1:] = False  # project reads input channel 0 only
    keep[3][[0, 2, 4]] = False  # and three output channels are empty
    keep[4][:, :, :, :4] = False
    keep[-1][:, 1:] = False
    masks = Masks(tuple(keep), tuple(None if layer.bias is None else np.ones(layer.weight.shape[0], bool)
                                     for layer in net.layers))
    masked = MaskedNetwork(net, masks, "weight", 0.5)
    x = rng.standard_normal((7, net.widths[0])).astype(np.float32)
    assert_forward_close(convert(masked, "sparse_conv")(x), naive.forward_kinds(masked, x))


def test_float64_networks_are_refused_by_name(rng):
    masked = prune(mobilenet_like(rng, np.float64), "weight", 0.5)
    with pytest.raises(NotImplementedError, match=r"'sparse_conv' runs \['float32'\] networks; this one is float64"):
        convert(masked, "sparse_conv")


def test_mlp_and_pointwise_only_networks(rng):
    """A dense-only network (samples in the lanes from the first layer) and a 1x1-only conv net
    whose first layer is sparse and whose block adds the network's input (residual_from=-1)."""
    mlp = Network((Layer(rng.standard_normal((37, 29)).astype(np.float32), None, "relu"),
                   Layer(rng.standard_normal((3, 37)).astype(np.float32), np.ones(3, np.float32), "softmax")))
    pw = Network((Conv2D(rng.standard_normal((6, 1, 1, 4)).astype(np.float32), None, "relu6", (3, 5)),
                  Conv2D(rng.standard_normal((4, 1, 1, 6)).astype(np.float32), None, "linear", (3, 5),
                         residual_from=-1)))
    for net in (mlp, pw):
        masked = prune(net, "weight", 0.4)
        forward = convert(masked, "sparse_conv")
        for n_batch in (1, 10):
            x = rng.standard_normal((n_batch, net.widths[0])).astype(np.float32)
            assert_forward_close(forward(x), naive.forward_kinds(masked, x))


def test_scratch_slots_never_overwrite_a_tensor_still_read():
    # MobileNetV2 block: expand reads the block input, depthwise the expansion, project the
    # depthwise output and (residual) the block input: three slots, rotating
    slots, input_slot, n = _allocate([(-1,), (0,), (1,), (2, -1), (3,), (4,), (5, 3)])
    assert n == 3 and input_slot == 0
    assert slots[3] not in (slots[2], input_slot) and slots[6] not in (slots[5], slots[3])


def test_bad_input_is_refused_and_nan_stays_in_its_sample(rng):
    masked = prune(mobilenet_like(rng), "weight", 0.5)
    forward = convert(masked, "sparse_conv")
    n_in = masked.net.widths[0]
    with pytest.raises(ValueError, match=rf"input must have shape \(n_batch, {n_in}\), found \(2, {n_in - 1}\)"):
        forward(np.zeros((2, n_in - 1), np.float32))
    with pytest.raises(TypeError, match=r"input dtype must be float32 .* found float64; convert with"):
        forward(np.zeros((2, n_in)))
    with pytest.raises(TypeError, match=r"numpy array"):
        forward([[0.0] * n_in])
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    x[1, 5] = np.nan
    y = forward(x)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


def test_refuses_activations_it_does_not_fuse(rng):
    net = mobilenet_like(rng)
    layers = list(net.layers)
    layers[1] = Conv2D(layers[1].weight, layers[1].bias, "tanh", layers[1].input_hw)
    with pytest.raises(NotImplementedError, match=r"format 'sparse_conv' runs activations .*also uses \['tanh'\]"):
        convert(prune(Network(tuple(layers)), "weight", 0.5), "sparse_conv")


def test_registered_for_conv_networks():
    cls = FORMATS["sparse_conv"]
    assert cls is SparseConvForward and cls.kind == "sparse" and cls.saved_as == "compact"
    assert {"conv2d", "depthwise_conv2d", "global_avg_pool", "dense"} <= cls.layer_kinds
    assert {"relu", "relu6", "linear", "softmax"} == set(cls.activations)
