"""Keras conv models in: MobileNetV2-like graphs import with batch norm folded, equal to Keras."""

import numpy as np
import pytest

from sparsenet import convert, load_model, prune
from sparsenet.importers import UnsupportedModelError
from sparsenet.testing import assert_forward_close

import naive

keras = pytest.importorskip("keras")
layers = keras.layers


def randomize_bn(model, rng):
    """Batch norm statistics far from the identity, so that a wrong fold shows."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.3, 2.0, n)])


def tiny_mobilenet(shape=(9, 10, 2)):
    """Stem conv (stride 2, 'same'), a residual block, a stride-2 block through ZeroPadding2D, head, logits."""
    inp = keras.Input(shape)
    x = layers.ReLU(6.0)(layers.BatchNormalization(epsilon=1e-3)(layers.Conv2D(8, 3, strides=2, padding="same",
                                                                                use_bias=False)(inp)))
    skip = x
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(12, 1, use_bias=False)(x)))
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)))
    h = layers.BatchNormalization()(layers.Conv2D(8, 1, use_bias=False)(h))
    x = layers.Add()([skip, h])
    h = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, strides=2, use_bias=False)(h)))
    h = layers.BatchNormalization()(layers.Conv2D(5, 1)(h))  # with a bias, folded too
    h = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 1, use_bias=False)(h)))
    h = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, layers.Dense(10)(h))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(12)
    out = tmp_path_factory.mktemp("conv_keras")
    tiny = tiny_mobilenet()
    randomize_bn(tiny, rng)
    tiny.save(out / "tiny.keras")
    return tiny, load_model(out / "tiny.keras")  # (keras.applications.MobileNetV2 itself: sparsenet.train_conv)


def test_folded_network_equals_keras_logits(saved, rng):
    model, imported = saved
    net = imported.network
    assert imported.input_shape == tuple(model.inputs[0].shape[1:]) and "batch_normalization" not in net.layer_kinds
    x = rng.standard_normal((7, *imported.input_shape)).astype(np.float32)
    theirs = np.asarray(model(x, training=False))
    forward = convert(prune(net, "weight", 0.0), "dense")
    assert_forward_close(forward(x.reshape(7, -1)), theirs)
    assert_forward_close(convert(prune(net, "weight", 0.0), "dense")(x[:1].reshape(1, -1)), theirs[:1])


def test_tiny_graph_maps_layer_by_layer(saved, rng):
    imported = saved[1]
    net = imported.network
    assert [layer.kind for layer in net.layers] == ["conv2d", "conv2d", "depthwise_conv2d", "conv2d",
                                                    "depthwise_conv2d", "conv2d", "conv2d", "global_avg_pool",
                                                    "dense"]
    assert [layer.activation for layer in net.layers] == ["relu6", "relu6", "relu6", "linear", "relu6", "linear",
                                                          "relu", "linear", "linear"]
    assert net.layers[0].pads == (1, 1, 0, 1) and net.layers[0].stride == 2  # TF 'same': an odd extra goes right
    assert net.layers[3].residual_from == 0 and net.layers[4].pads == (0, 1, 0, 1)
    assert all(layer.bias is not None for layer in net.layers[:7])  # every BN leaves a bias behind
    assert [len(names) for names in imported.layer_names][:4] == [3, 3, 3, 3]  # conv, BN, ReLU / project, BN, Add
    masked = prune(net, "weight", 0.5, "global")
    x = rng.standard_normal((2, net.widths[0])).astype(np.float32)
    assert_forward_close(convert(masked, "dense")(x), naive.forward_kinds(masked, x))


def _refused(tmp_path, model, match):
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(UnsupportedModelError, match=match):
        load_model(path)


def test_unsupported_conv_layers_and_edges_are_refused_by_name(tmp_path):
    inp = keras.Input((8, 8, 3))
    pooled = layers.MaxPooling2D()(layers.Conv2D(4, 3)(inp))
    _refused(tmp_path, keras.Model(inp, layers.GlobalAveragePooling2D()(pooled)),
             r"layer 'max_pooling2d\w*' of type MaxPooling2D is not supported")
    _refused(tmp_path, keras.Model(inp, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, dilation_rate=2)(inp))),
             r"of type Conv2D is not supported \(strides \(1, 1\), dilation \(2, 2\)")
    relu_bn = layers.BatchNormalization()(layers.ReLU()(layers.Conv2D(4, 3)(inp)))
    _refused(tmp_path, keras.Model(inp, layers.GlobalAveragePooling2D()(relu_bn)),
             r"BatchNormalization is not supported \(a BatchNormalization folds only into a convolution or Dense "
             r"layer without an activation, found it after a conv2d layer with activation 'relu'")
    c = layers.Conv2D(3, 1)(inp)
    pre_bn_skip = layers.Add()([c, layers.Conv2D(3, 1)(layers.BatchNormalization()(c))])
    _refused(tmp_path, keras.Model(inp, layers.GlobalAveragePooling2D()(pre_bn_skip)),
             r"the skip input is not the final output of an earlier layer")
    doubled = layers.DepthwiseConv2D(3, depth_multiplier=2)(inp)
    _refused(tmp_path, keras.Model(inp, layers.GlobalAveragePooling2D()(doubled)), r"depth_multiplier=2; only 1")
