"""Conv layer kinds, the dense format on conv networks and conv pruning, against float64 references."""

import numpy as np
import pytest

from sparsenet import FORMATS, Layer, Network, convert, prune
from sparsenet.layers import Conv2D, DepthwiseConv2D, GlobalAvgPool
from sparsenet.layers._spatial import same_pads
from sparsenet.testing import assert_forward_close

import naive


def conv_net(rng, dtype=np.float32, hw=(9, 7), c_in=3, bias=True) -> Network:
    """A small MobileNetV2-like network: odd sizes and channel counts, stride 2 by 'same' pads and by
    explicit (ZeroPadding2D-style) pads, 1x1 expand/project, depthwise, a residual add, pooling, dense."""
    def w(*shape):
        fan_in = int(np.prod(shape[1:])) or 1
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    def b(n):
        return (0.1 * rng.standard_normal(n)).astype(dtype) if bias else None

    h1, w1 = -(-hw[0] // 2), -(-hw[1] // 2)
    layers = [
        Conv2D(w(5, 3, 3, c_in), b(5), "relu6", hw, stride=2, pads=same_pads(hw, (3, 3), 2)),  # 0
        Conv2D(w(7, 1, 1, 5), None, "relu6", (h1, w1)),  # 1 expand
        DepthwiseConv2D(w(7, 3, 3), b(7), "relu6", (h1, w1), pads=same_pads((h1, w1), (3, 3), 1)),  # 2
        Conv2D(w(5, 1, 1, 7), b(5), "linear", (h1, w1), residual_from=0),  # 3 project + add
        DepthwiseConv2D(w(5, 3, 3), None, "relu", (h1, w1), stride=2, pads=(0, 1, 0, 1)),  # 4
    ]
    layers.append(Conv2D(w(3, 2, 2, 5), b(3), "relu", layers[-1].output_shape[:2], pads=(0, 1, 0, 1)))  # 5
    layers.append(GlobalAvgPool(layers[-1].output_shape, dtype=np.dtype(dtype).name))
    layers.append(Layer(w(4, 3), b(4), "softmax"))
    return Network(tuple(layers))


@pytest.mark.parametrize("method,scope,sparsity", [("weight", "layer", 0.0), ("weight", "layer", 0.6),
                                                   ("weight", "global", 0.9), ("unit", "layer", 0.5),
                                                   ("unit", "global", 0.95)])
@pytest.mark.parametrize("n_batch", [1, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_format_runs_conv_networks_like_the_reference(rng, method, scope, sparsity, n_batch, dtype):
    net = conv_net(rng, dtype, bias=bool(rng.integers(2)))
    masked = prune(net, method, sparsity, scope, include_depthwise=bool(rng.integers(2)))
    x = rng.standard_normal((n_batch, net.widths[0])).astype(dtype)
    forward = convert(masked, "dense")
    assert_forward_close(forward(x), naive.forward_kinds(masked, x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)


def test_one_channel_left_and_pointwise_only_nets_match(rng):
    net = conv_net(rng, c_in=1, hw=(8, 8))
    masked = prune(net, "unit", 0.99, "layer")  # every pruned layer keeps exactly one channel
    kept = [int(k.reshape(k.shape[0], -1).any(axis=1).sum()) for k in masked.masks.weight]
    assert [kept[i] for i in masked.pruned_layers] == [1] * len(masked.pruned_layers)
    x = rng.random((3, net.widths[0])).astype(np.float32)
    assert_forward_close(convert(masked, "dense")(x), naive.forward_kinds(masked, x))


def test_conv_reference_is_cross_correlation_with_same_padding():
    """A hand-computed case: 3x3 input, a kernel that picks the top-left neighbour, 'same' pads."""
    x = np.arange(9, dtype=np.float64).reshape(1, 9)  # one channel, rows [0 1 2], [3 4 5], [6 7 8]
    k = np.zeros((1, 3, 3, 1))
    k[0, 0, 0, 0] = 1.0  # y[p, q] = x[p - 1, q - 1]
    layer = Conv2D(k, None, "linear", (3, 3), pads=same_pads((3, 3), (3, 3), 1))
    from sparsenet.layers import LAYER_KINDS

    y = LAYER_KINDS["conv2d"].preactivation(layer, x).reshape(3, 3)
    np.testing.assert_array_equal(y, [[0, 0, 0], [0, 0, 1], [0, 3, 4]])


def test_pruning_skips_depthwise_and_pooling_unless_asked(rng):
    net = conv_net(rng)
    kinds = [layer.kind for layer in net.layers]
    masked = prune(net, "weight", 0.5, "layer")
    assert [kinds[i] for i in masked.pruned_layers] == ["conv2d"] * 4
    with_dw = prune(net, "weight", 0.5, "layer", include_depthwise=True)
    assert [kinds[i] for i in with_dw.pruned_layers] == ["conv2d", "conv2d", "depthwise_conv2d", "conv2d",
                                                         "depthwise_conv2d", "conv2d"]
    for i, (layer, keep) in enumerate(zip(net.layers, with_dw.masks.weight)):
        removed = keep.size - int(keep.sum())
        expect = min(int(round(0.5 * keep.size)), keep.size - 1) if i in with_dw.pruned_layers else 0
        assert removed == expect, (i, layer.kind)
    logits = prune(net, "weight", 0.5, "layer", prune_logits=True)
    assert logits.pruned_layers[-1] == len(net.layers) - 1  # the dense classifier; pooling never


def test_global_pruning_uses_one_threshold_and_reports_each_layers_sparsity(rng):
    net = conv_net(rng)
    masked = prune(net, "weight", 0.7, "global", include_depthwise=True)
    kept = np.concatenate([np.abs(net.layers[i].weight[masked.masks.weight[i]]) for i in masked.pruned_layers])
    dropped = np.concatenate([np.abs(net.layers[i].weight[~masked.masks.weight[i]]) for i in masked.pruned_layers])
    assert dropped.max() <= kept.min()
    total = sum(net.layers[i].weight.size for i in masked.pruned_layers)
    assert dropped.size == round(0.7 * total)
    per_layer = masked.layer_sparsity()
    assert len(per_layer) == len(net.layers) and per_layer[6] == 0.0 and len(set(per_layer)) > 2


def test_filter_pruning_removes_whole_output_channels_with_their_bias(rng):
    net = conv_net(rng)
    masked = prune(net, "unit", 0.4, "layer")
    for i in masked.pruned_layers:
        keep = masked.masks.weight[i].reshape(net.layers[i].n_units, -1)
        whole = keep.all(axis=1) | ~keep.any(axis=1)
        assert whole.all(), f"layer {i}: a channel is partly pruned"
        assert (~keep.any(axis=1)).sum() == round(0.4 * net.layers[i].n_units)
        norms = np.linalg.norm(net.layers[i].weight.reshape(net.layers[i].n_units, -1), axis=1)
        assert norms[~keep.any(axis=1)].max() <= norms[keep.all(axis=1)].min()
        if net.layers[i].bias is not None:
            np.testing.assert_array_equal(masked.masks.bias[i], keep.any(axis=1))


def test_other_formats_refuse_conv_networks_by_kind(rng):
    masked = prune(conv_net(rng), "weight", 0.5)
    from sparsenet.formats import formats_for

    acts = {layer.activation for layer in masked.net.layers}
    assert "dense" in formats_for(False, masked.net.layer_kinds, acts)
    kinds = masked.net.layer_kinds
    assert all(kinds <= FORMATS[f].layer_kinds for f in formats_for(True, kinds, acts))
    for name, cls in FORMATS.items():
        if not masked.net.layer_kinds <= cls.layer_kinds:
            with pytest.raises(NotImplementedError, match=r"also has \['conv2d', 'depthwise_conv2d'"):
                convert(masked, name)


@pytest.mark.parametrize("change,message", [
    (lambda ls: ls.__setitem__(3, Conv2D(ls[3].weight, ls[3].bias, "linear", ls[3].input_hw, residual_from=1)),
     r"layer 3: residual_from=1 adds layer 1 of shape \(5, 4, 7\) to an output of shape \(5, 4, 5\)"),
    (lambda ls: ls.__setitem__(3, Conv2D(ls[3].weight, ls[3].bias, "linear", ls[3].input_hw, residual_from=3)),
     r"residual_from must be an earlier layer's index or -1"),
    (lambda ls: ls.__setitem__(1, Conv2D(ls[1].weight[:, 0], None, "relu", ls[1].input_hw)),
     r"layer 1: a conv2d weight must be a 4-D array"),
    (lambda ls: ls.__setitem__(1, Conv2D(ls[1].weight, None, "relu", ls[1].input_hw, stride=0)),
     r"layer 1 \(conv2d\): stride must be a positive integer"),
    (lambda ls: ls.__setitem__(2, DepthwiseConv2D(ls[2].weight, None, "relu", (4, 5), pads=(1, 1, 1, 1))),
     r"layer 2: expects input of shape \(4, 5, 7\) \(H, W, C\) but layer 1 outputs \(5, 4, 7\)"),
])
def test_bad_conv_networks_are_refused_by_name(rng, change, message):
    layers = list(conv_net(rng).layers)
    change(layers)
    with pytest.raises((ValueError, TypeError), match=message):
        Network(tuple(layers))


def test_files_for_dense_networks_refuse_conv_networks(rng, tmp_path):
    from sparsenet import save_network, save_pruned

    net = conv_net(rng)
    with pytest.raises(NotImplementedError, match=r"dense layers only; this network also has \['conv2d'"):
        save_network(tmp_path / "n.npz", net)
    with pytest.raises(NotImplementedError, match=r"save_pruned writes dense-layer networks only"):
        save_pruned(prune(net, "weight", 0.5), tmp_path / "p.npz")
