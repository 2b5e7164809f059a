"""shrunk on conv networks (sparsenet.formats.shrunk_conv): exact against the float64 reference, and smaller."""

import numpy as np
import pytest
from test_sparse_conv import mobilenet_like

from sparsenet import FORMATS, Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.formats import formats_for
from sparsenet.formats.shrunk import ShrunkDenseForward
from sparsenet.formats.shrunk_conv import ShrunkConvForward, channel_constants, shrink
from sparsenet.layers import Conv2D, DepthwiseConv2D, GlobalAvgPool
from sparsenet.layers._spatial import same_pads
from sparsenet.testing import assert_forward_close
from sparsenet.train_conv import MOBILENET_ACTIVATIONS, MOBILENET_LAYER_KINDS

import naive


def two_stage_net(rng, dtype=np.float32) -> Network:
    """Odd channel counts; a stride-2 'same' first conv; a residual block on it; a stride-2 block
    without a residual (its project layer may shrink); a 3x3 padded conv; pooling, a hidden dense
    layer and the classifier. Every layer has a bias."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(dtype)

    def b(n):
        return (0.3 * rng.standard_normal(n)).astype(dtype)

    hw, h1 = (9, 11), (5, 6)
    h2 = (3, 3)
    layers = [
        Conv2D(w(7, 3, 3, 3), b(7), "relu6", hw, stride=2, pads=same_pads(hw, (3, 3), 2)),  # 0
        Conv2D(w(15, 1, 1, 7), b(15), "relu6", h1),  # 1 expand
        DepthwiseConv2D(w(15, 3, 3), b(15), "relu6", h1, pads=same_pads(h1, (3, 3), 1)),  # 2
        Conv2D(w(7, 1, 1, 15), b(7), "linear", h1, residual_from=0),  # 3 project + add
        Conv2D(w(11, 1, 1, 7), b(11), "relu6", h1),  # 4 expand
        DepthwiseConv2D(w(11, 3, 3), b(11), "relu6", h1, stride=2, pads=same_pads(h1, (3, 3), 2)),  # 5
        Conv2D(w(9, 1, 1, 11), b(9), "linear", h2),  # 6 project, no residual
        Conv2D(w(13, 3, 3, 9), b(13), "relu", h2, pads=(1, 1, 1, 1)),  # 7
        GlobalAvgPool((*h2, 13), dtype=np.dtype(dtype).name),  # 8
        Layer(w(6, 13), b(6), "relu"),  # 9
        Layer(w(3, 6), b(3), "softmax"),  # 10
    ]
    return Network(tuple(layers))


BUILDERS = {"two_stage": two_stage_net, "mobilenet_like": mobilenet_like}


def check_against_reference(masked, rng, batches=(1, 3, 7)):
    forward = convert(masked, "shrunk")
    assert isinstance(forward, ShrunkConvForward)
    for n_batch in batches:
        x = rng.standard_normal((n_batch, masked.net.widths[0])).astype(masked.net.dtype)
        assert_forward_close(forward(x), naive.forward_kinds(masked, x))
    return forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_shrunk_conv_matches_the_reference(rng, builder, sparsity, scope, dtype):
    net = BUILDERS[builder](rng, dtype)
    masked = prune(net, "unit", sparsity, scope, include_depthwise=bool(rng.integers(2)))
    forward = check_against_reference(masked, rng)
    small = shrink(masked)
    assert forward.nnz == sum(int(k.sum()) for k in small.masks.weight)
    assert sum(step.weight.size for step in forward.inner.steps) == small.net.n_weights
    assert forward.in_memory_bytes > 0
    if sparsity == 0.0:
        assert small.net.n_weights == net.n_weights and forward.widths == net.widths
    else:
        assert small.net.n_weights < net.n_weights


def test_pruned_channels_are_deleted_with_their_depthwise_channels(rng):
    """Layer scope, 50%: every expand layer and the project layer outside a residual add keep
    exactly their unpruned channels, the depthwise layers the same ones; the residual group
    (layers 0 and 3) keeps the channels either member kept; at 90% layers go down to one channel."""
    net = two_stage_net(rng)
    masked = prune(net, "unit", 0.5, "layer")
    live = [int(k.reshape(k.shape[0], -1).any(axis=1).sum()) for k in masked.masks.weight]
    forward = check_against_reference(masked, rng)
    ch = forward.channels
    assert (ch[1], ch[4], ch[6], ch[7], ch[9]) == (live[1], live[4], live[6], live[7], live[9]) == (7, 5, 5, 7, 3)
    assert ch[2] == ch[1] and ch[5] == ch[4] and ch[8] == ch[7] and ch[10] == 3
    group = masked.masks.weight[0].reshape(7, -1).any(axis=1) | masked.masks.weight[3].reshape(7, -1).any(axis=1)
    assert ch[0] == ch[3] == int(group.sum())
    small = shrink(masked).net
    assert small.layers[1].weight.shape == (7, 1, 1, ch[0]) and small.layers[2].weight.shape == (7, 3, 3)
    assert small.layers[3].weight.shape == (ch[3], 1, 1, 7) and small.layers[9].weight.shape == (3, 7)
    # 90%: 15 * 0.9 -> 14 pruned, one channel left in the expand layer and its depthwise
    ninety = convert(prune(net, "unit", 0.9, "layer"), "shrunk").channels
    assert ninety[1] == ninety[2] == 1 and ninety[4] == ninety[5] == 1


def test_a_residual_adding_the_input_keeps_every_channel(rng):
    """A group that adds the network's input (residual_from=-1) cannot drop a channel."""
    net = Network((Conv2D(rng.standard_normal((9, 1, 1, 5)).astype(np.float32), None, "relu6", (3, 5)),
                   Conv2D(rng.standard_normal((5, 1, 1, 9)).astype(np.float32), None, "linear", (3, 5),
                          residual_from=-1),
                   Conv2D(rng.standard_normal((7, 1, 1, 5)).astype(np.float32), None, "relu", (3, 5))))
    masked = prune(net, "unit", 0.5, "layer")  # layer 0 loses 4 of its 9 channels, layer 1 2 of 5
    forward = check_against_reference(masked, rng)
    assert forward.channels == (5, 5, 7)


def hand_masks(net, keep_weights, keep_bias=None):
    keep_bias = keep_bias or {}
    weight = tuple(keep_weights.get(i, np.ones(layer.weight.shape, bool)) for i, layer in enumerate(net.layers))
    bias = tuple(None if layer.bias is None else keep_bias.get(i, np.ones(layer.weight.shape[0], bool))
                 for i, layer in enumerate(net.layers))
    return MaskedNetwork(net, Masks(weight, bias), "unit", 0.5)


def test_a_whole_pruned_layer_keeps_one_channel(rng):
    """Masks no pruner makes: every channel of the expand layer pruned (weights and biases), and
    the whole residual group (layers 0 and 3) too. Each keeps one channel (no layer has width 0)
    computing its constant, and the outputs still match."""
    net = two_stage_net(rng)
    empty = {i: np.zeros(net.layers[i].weight.shape, bool) for i in (0, 1, 3)}
    masked = hand_masks(net, empty, {i: np.zeros(net.layers[i].weight.shape[0], bool) for i in (0, 1, 3)})
    forward = check_against_reference(masked, rng)
    assert forward.channels[:4] == (1, 1, 1, 1)
    # every hidden layer pruned away: the logits are a constant, still exact
    everything = {i: np.zeros(layer.weight.shape, bool) for i, layer in enumerate(net.layers[:-1])}
    masked = hand_masks(net, everything, {i: np.zeros(layer.weight.shape[0], bool)
                                          for i, layer in enumerate(net.layers[:-1]) if layer.bias is not None})
    forward = check_against_reference(masked, rng)
    assert set(forward.channels[:-1]) == {1}
    x = rng.standard_normal((2, net.widths[0])).astype(np.float32)
    y = forward(x)
    np.testing.assert_array_equal(y[0], y[1])


def test_non_zero_constants_fold_only_where_padding_cannot_see_them(rng):
    """Dead channels that keep their bias output act(b) != 0. A 1x1 conv and a dense layer fold
    it; a padded 3x3 conv cannot (its border windows see padding zeros), so that channel stays
    and is computed; an unpadded depthwise turns a constant k into act(k * sum(w) + b)."""
    net = two_stage_net(rng)
    weights = {i: np.ones(net.layers[i].weight.shape, bool) for i in (1, 4, 6)}
    weights[1][[0, 3]] = False  # expand channels 0, 3: constant relu6(b), read by a padded depthwise
    weights[4][[2, 5]] = False
    weights[6][[1, 4, 8]] = False  # project channels: constant b, read by the padded 3x3 conv 7
    layers = list(net.layers)
    for i in (1, 4, 6):
        layers[i] = Conv2D(layers[i].weight, np.abs(layers[i].bias) + 0.1, layers[i].activation,
                           layers[i].input_hw)
    net = Network(tuple(layers))
    masked = hand_masks(net, weights)
    const = channel_constants(masked)
    assert np.isfinite(const[1][[0, 3]]).all() and (const[1][[0, 3]] > 0).all()
    assert np.isnan(const[2][[0, 3]]).all()  # the padded depthwise sees zeros at the border
    forward = check_against_reference(masked, rng)
    assert forward.channels[1] == 15 and forward.channels[6] == 9  # nothing could be folded there
    # without padding in the depthwise layers, the constants flow through and fold into the projects
    layers[2] = DepthwiseConv2D(layers[2].weight[:, :1, :1].copy(), layers[2].bias, "relu6", layers[2].input_hw)
    layers[5] = DepthwiseConv2D(layers[5].weight[:, :1, :1].copy(), layers[5].bias, "relu6", layers[5].input_hw,
                                stride=2, pads=(0, 0, 0, 0))
    masked = hand_masks(Network(tuple(layers)), weights)
    forward = check_against_reference(masked, rng)
    assert forward.channels[1] == forward.channels[2] == 13 and forward.channels[4] == forward.channels[5] == 9


@pytest.mark.parametrize("sparsity", [0.5, 0.99])
def test_weight_pruning_stays_exact(rng, sparsity):
    """shrunk only pays after unit pruning (formats_for), but converts anything exactly."""
    masked = prune(two_stage_net(rng), "weight", sparsity, "global")
    check_against_reference(masked, rng)


def test_offered_for_unit_pruned_mobilenet_and_mlps_unchanged(rng):
    assert "shrunk" in formats_for(True, layer_kinds={"conv2d", "depthwise_conv2d", "global_avg_pool", "dense"},
                                   activations={"relu6", "linear", "softmax"})
    assert "shrunk" in formats_for(True, MOBILENET_LAYER_KINDS, MOBILENET_ACTIVATIONS)
    assert "shrunk" not in formats_for(False, MOBILENET_LAYER_KINDS, MOBILENET_ACTIVATIONS)
    assert FORMATS["shrunk"] is ShrunkDenseForward and MOBILENET_LAYER_KINDS <= ShrunkDenseForward.layer_kinds
    mlp = Network((Layer(rng.standard_normal((9, 4)).astype(np.float32), None, "relu"),
                   Layer(rng.standard_normal((3, 9)).astype(np.float32), None, "softmax")))
    forward = convert(prune(mlp, "unit", 0.5), "shrunk")
    assert type(forward) is ShrunkDenseForward and forward.widths == (4, 5, 3)


def test_bad_input_is_refused_by_the_runner(rng):
    forward = convert(prune(two_stage_net(rng), "unit", 0.5), "shrunk")
    n_in = forward.widths[0]
    with pytest.raises(ValueError, match=rf"input must have shape \(n_batch, {n_in}\), found \(2, {n_in - 1}\)"):
        forward(np.zeros((2, n_in - 1), np.float32))
