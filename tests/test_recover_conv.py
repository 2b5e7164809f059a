"""Recovery of conv networks: a small MobileNetV2-like Keras model (batch norm and all) trained
with masks on real Fashion-MNIST 32x32 images; the imported (BN-folded) network keeps them."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="recovery trains with the 'train' extra (tensorflow)")

from sparsenet import convert, load_model, prune  # noqa: E402
from sparsenet import recover as recover_mod  # noqa: E402
from sparsenet._conv_npz import load_conv_network, save_conv_network  # noqa: E402
from sparsenet.image_data import ImageDataset, pad_to_32  # noqa: E402
from sparsenet.recover import RecoveryConfig, finetune, gradual, recovered_network  # noqa: E402
from sparsenet.testing import assert_forward_close  # noqa: E402
from sparsenet.train_conv import predict  # noqa: E402

layers = keras.layers
# 400 images / 50 = 8 steps, 1 epoch (gradual: 5 pruning steps, then 3 with the final masks)
QUICK = RecoveryConfig(epochs=1, learning_rate=3e-3, batch_size=50, train_samples=400, frequency=2,
                       prune_fraction=0.6)


def small_mobilenet():
    """Stem (stride 2), one inverted residual block, a 1x1 head, pooling, softmax classifier."""
    inp = keras.Input((32, 32, 1))
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(8, 3, strides=2, padding="same",
                                                                   use_bias=False)(inp)))
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(24, 1, use_bias=False)(x)))
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)))
    x = layers.Add()([x, layers.BatchNormalization()(layers.Conv2D(8, 1, use_bias=False)(h))])
    h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(32, 1, use_bias=False)(x)))
    return keras.Model(inp, layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(h)))


@pytest.fixture(scope="module")
def images():
    from sparsenet.data import load_dataset

    base = load_dataset("fashion_mnist", download=False)
    return ImageDataset("fashion_mnist_32", pad_to_32(base.x_train[:400]), base.y_train[:400],
                        pad_to_32(base.x_test[:300]), base.y_test[:300], base.source, (32, 32, 1))


@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    """``(network, keras_path)``: the small model trained 2 epochs and imported (BN folded)."""
    keras.utils.set_random_seed(0)
    model = small_mobilenet()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(images.x_train.reshape(-1, 32, 32, 1), images.y_train, batch_size=50, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("conv_recover") / "small.keras"
    model.save(path)
    return load_model(path).network, path


@pytest.fixture(scope="module")
def finetuned(trained, images):
    net, path = trained
    results = {}

    def get(method, sparsity, scope):
        if (method, sparsity, scope) not in results:
            oneshot = prune(net, method, sparsity, scope)
            results[method, sparsity, scope] = (oneshot, *finetune(oneshot, images, QUICK, progress=False,
                                                                   keras_model=path))
        return results[method, sparsity, scope]

    return get


def pruned_entries_are_zero(masked) -> bool:
    return all(np.count_nonzero(layer.weight[~keep]) == 0 for layer, keep in zip(masked.net.layers,
                                                                                  masked.masks.weight))


def accuracy(net, data) -> float:
    return float((predict(net, data.x_test) == data.y_test).mean())


def test_conv_finetune_keeps_masks_and_exact_flat_counts(finetuned, trained, images):
    oneshot, recovered, manifest = finetuned("weight", 0.8, "global")
    for before, after in zip(oneshot.masks.weight, recovered.masks.weight):
        np.testing.assert_array_equal(before, after)
    assert pruned_entries_are_zero(recovered)  # through training and the BN fold
    assert recovered.achieved_sparsity() == oneshot.achieved_sparsity() == manifest["achieved_sparsity"]
    assert recovered.layer_sparsity() == oneshot.layer_sparsity()  # each layer's share of the flat count
    kinds = [layer.kind for layer in recovered.net.layers]
    assert oneshot.pruned_layers == tuple(i for i, k in enumerate(kinds[:-1]) if k == "conv2d")  # no depthwise
    assert any(not np.array_equal(a.weight, b.weight) for a, b in zip(oneshot.net.layers, recovered.net.layers))
    assert manifest["test_accuracy"] == pytest.approx(accuracy(recovered.net, images), abs=0.01)  # Keras scored it
    assert manifest["stage"] == "finetuned" and manifest["keras_model"] == str(trained[1])
    # the formats run it (the dense format against the float64 reference of the kinds)
    x = np.ascontiguousarray(images.x_test[:5])
    assert convert(recovered, "dense")(x).shape == (5, 10)


def test_conv_unit_pruning_zeroes_whole_channels_and_their_folded_bias(finetuned):
    oneshot, recovered, _ = finetuned("unit", 0.5, "layer")
    assert pruned_entries_are_zero(recovered)
    for i in recovered.pruned_layers:
        layer, keep = recovered.net.layers[i], recovered.masks.weight[i]
        dead = ~keep.reshape(len(keep), -1).any(axis=1)
        assert dead.sum() == round(0.5 * len(dead))  # exact per-layer unit count
        np.testing.assert_array_equal(layer.bias[dead], 0.0)  # BN gamma and beta masked too
        np.testing.assert_array_equal(keep, oneshot.masks.weight[i])


def test_conv_gradual_reaches_the_oneshot_count(trained, images):
    net, path, scope = *trained, "layer"
    recovered, manifest = gradual(net, "weight", 0.9, scope, images, QUICK, progress=False, keras_model=path)
    oneshot = prune(net, "weight", 0.9, scope)
    assert recover_mod._kept(recovered) == recover_mod._kept(oneshot)
    assert recovered.achieved_sparsity() == oneshot.achieved_sparsity()
    assert recovered.layer_sparsity() == oneshot.layer_sparsity()
    assert pruned_entries_are_zero(recovered)
    assert manifest["schedule"]["pruning_steps"] >= 4
    assert any(not np.array_equal(a, b) for a, b in zip(recovered.masks.weight, oneshot.masks.weight))


def test_conv_recovered_network_is_cached_in_a_file_read_without_keras(finetuned, trained, tmp_path, monkeypatch):
    net, path = trained
    oneshot, recovered, manifest = finetuned("weight", 0.8, "global")
    monkeypatch.setattr(recover_mod, "recover", lambda *a, **k: (recovered, manifest))
    first, _ = recovered_network(net, "finetuned", "weight", 0.8, "global", "fashion_mnist_32", QUICK,
                                 cache_dir=tmp_path, progress=False, keras_model=path)
    monkeypatch.setattr(recover_mod, "recover", lambda *a, **k: pytest.fail("trained again despite a cache hit"))
    again, _ = recovered_network(net, "finetuned", "weight", 0.8, "global", "fashion_mnist_32", QUICK,
                                 cache_dir=tmp_path, progress=False)  # no Keras model needed on a hit
    assert again.pruned_layers == first.pruned_layers and again.scope == "global"
    for a, b, ka, kb in zip(first.net.layers, again.net.layers, first.masks.weight, again.masks.weight):
        np.testing.assert_array_equal(np.asarray(a.weight), np.asarray(b.weight))
        np.testing.assert_array_equal(ka, kb)
    x = np.ascontiguousarray(np.random.default_rng(1).random((3, net.widths[0]), np.float32))
    assert_forward_close(convert(again, "dense")(x), convert(first, "dense")(x))


def test_conv_cache_file_round_trips_and_refuses_damage(trained, tmp_path):
    net = trained[0]
    masked = prune(net, "weight", 0.5, "layer")
    save_conv_network(tmp_path / "n.npz", masked)
    back = load_conv_network(tmp_path / "n.npz")
    assert [type(a) for a in back.net.layers] == [type(b) for b in net.layers]
    assert [getattr(a, "residual_from", None) for a in back.net.layers] == [getattr(b, "residual_from", None)
                                                                           for b in net.layers]
    assert isinstance(load_conv_network(save_conv_network(tmp_path / "d.npz", net)), type(net))
    (tmp_path / "bad.npz").write_bytes((tmp_path / "n.npz").read_bytes()[:300])
    with pytest.raises(ValueError, match="bad.npz"):
        load_conv_network(tmp_path / "bad.npz")


def test_conv_recovery_needs_its_keras_model(trained, images):
    net, _ = trained
    with pytest.raises(ValueError, match="pass keras_model="):
        finetune(prune(net, "weight", 0.5), images, QUICK, progress=False)
