"""sparsenet.recover with real (tiny) Keras trainings: masks hold, sparsity is exact, caching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="recovery trains with the 'train' extra (tensorflow)")

from sparsenet import Layer, Network, convert, prune  # noqa: E402
from sparsenet import recover as recover_mod  # noqa: E402
from sparsenet._keras import import_tf  # noqa: E402
from sparsenet._masked_mlp import masked_model  # noqa: E402
from sparsenet.recover import RecoveryConfig, finetune, gradual, recovered_network  # noqa: E402
from sparsenet.testing import assert_forward_close  # noqa: E402
from sparsenet.train import predict  # noqa: E402

# 2000 samples / 50 = 40 steps per epoch: a few seconds per recovery on 2 cores.
QUICK = RecoveryConfig(epochs=2, learning_rate=2e-3, batch_size=50, train_samples=2000, frequency=10)


@pytest.fixture
def dense(tiny_trained):
    """conftest's TINY network (784-64-32-10), trained once per test run, shared with test_train."""
    return tiny_trained[0]


@pytest.fixture(scope="module")
def finetuned(tiny_trained, mnist):
    """``finetuned(method, sparsity, optimizer="adam")`` -> ``(oneshot, recovered, manifest)``: the
    TINY network pruned one-shot and fine-tuned with QUICK's budget, each combination trained once
    per module and shared by the tests that inspect it (read-only)."""
    results = {}

    def get(method: str, sparsity: float, optimizer: str = "adam"):
        if (method, sparsity, optimizer) not in results:
            oneshot = prune(tiny_trained[0], method, sparsity)
            config = dataclasses.replace(QUICK, optimizer=optimizer,
                                         learning_rate=2e-3 if optimizer == "adam" else 0.05)
            results[method, sparsity, optimizer] = (oneshot, *finetune(oneshot, mnist, config, progress=False))
        return results[method, sparsity, optimizer]

    return get


def accuracy(net, data) -> float:
    return float((predict(net, data.x_test) == data.y_test).mean())


def masked_net(masked) -> Network:
    """The one-shot network as it runs: pruned weights and biases zeroed."""
    return Network(tuple(Layer(w, b, layer.activation) for w, b, layer in
                         zip(masked.masked_weights(), masked.masked_biases(), masked.net.layers)))


def pruned_entries_are_zero(masked) -> bool:
    return all(np.count_nonzero(layer.weight[~keep]) == 0 for layer, keep in zip(masked.net.layers,
                                                                                  masked.masks.weight))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("method, sparsity", [("weight", 0.95), ("unit", 0.75)])
def test_finetune_keeps_masks_and_exact_sparsity(finetuned, mnist, optimizer, method, sparsity):
    oneshot, recovered, manifest = finetuned(method, sparsity, optimizer)
    for before, after in zip(oneshot.masks.weight, recovered.masks.weight):
        np.testing.assert_array_equal(before, after)
    assert pruned_entries_are_zero(recovered)
    assert recovered.achieved_sparsity() == oneshot.achieved_sparsity()
    assert manifest["achieved_sparsity"] == oneshot.achieved_sparsity()
    assert manifest["stage"] == "finetuned" and manifest["epochs"] == 2
    # the weights did train, and training won accuracy back
    assert any(not np.array_equal(a.weight, b.weight) for a, b in zip(oneshot.net.layers, recovered.net.layers))
    assert accuracy(recovered.net, mnist) > accuracy(masked_net(oneshot), mnist) + 0.02
    assert manifest["test_accuracy"] == pytest.approx(accuracy(recovered.net, mnist))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer_state_stays_zero_at_pruned_positions(dense, optimizer):
    """Many steps with momentum / Adam moments: pruned weights and their slots stay exactly 0,
    including weights that were live (with non-zero state) before a mask update removed them."""
    tf, keras = import_tf()
    rng = np.random.default_rng(0)
    model = masked_model(keras, tf, dense)
    model.set_masked_weights(prune(dense, "weight", 0.0))
    opt = keras.optimizers.Adam(1e-2) if optimizer == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy())
    x = rng.standard_normal((640, 784)).astype(np.float32)
    y = rng.integers(0, 10, 640)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 20 steps: every slot is non-zero now
    later = prune(model.network(), "weight", 0.8, "global")
    model.set_masks(later.masks)
    model.fit(x, y, batch_size=32, epochs=10, verbose=0)  # 200 more steps with the masks fixed
    assert int(opt.iterations.numpy()) == 220
    for dense_layer, keep in zip(model.stack, later.masks.weight):
        pruned = ~keep.T
        assert np.count_nonzero(dense_layer.kernel.numpy()[pruned]) == 0
        prefix = dense_layer.kernel.path.replace("/", "_") + "_"
        slots = [s for s in opt.variables if s.name.startswith(prefix)]
        assert len(slots) == (2 if optimizer == "adam" else 1)
        for slot in slots:
            assert np.count_nonzero(slot.numpy()[pruned]) == 0, slot.name
            assert np.count_nonzero(slot.numpy()[~pruned]) > 0.5 * (~pruned).sum()  # live ones did move
    np.testing.assert_array_equal(model.masks().weight[0], later.masks.weight[0])


@pytest.mark.parametrize("method, scope", [("weight", "layer"), ("weight", "global"),
                                           ("unit", "layer"), ("unit", "global")])
def test_gradual_reaches_the_oneshot_count_with_its_own_masks(dense, mnist, method, scope):
    sparsity = 0.9 if method == "weight" else 0.6
    recovered, manifest = gradual(dense, method, sparsity, scope, mnist, QUICK, progress=False)
    oneshot = prune(dense, method, sparsity, scope)
    kept = recover_mod._kept(recovered)
    assert kept == recover_mod._kept(oneshot)
    if method == "weight":
        assert sum(kept) == sum(int(k.sum()) for k in oneshot.masks.weight[:-1])
        assert recovered.achieved_sparsity() == oneshot.achieved_sparsity()
    else:
        assert sum(kept) == sum(int(k.any(axis=1).sum()) for k in oneshot.masks.weight[:-1])
    if scope == "layer":
        assert recovered.layer_sparsity() == oneshot.layer_sparsity()
    assert recovered.sparsity == sparsity and recovered.scope == scope and recovered.method == method
    assert pruned_entries_are_zero(recovered)
    assert manifest["stage"] == "gradual"
    schedule = QUICK.schedule(sparsity)
    assert manifest["schedule"]["pruning_steps"] == len(schedule.pruning_steps()) >= 4
    assert schedule.end_step < QUICK.epochs * QUICK.steps_per_epoch()  # fixed-mask steps follow
    if method == "unit":
        for keep in recovered.masks.weight:
            dead = ~keep.any(axis=1)
            assert (~keep[dead]).all()  # whole rows
    else:
        assert any(not np.array_equal(a, b) for a, b in zip(recovered.masks.weight, oneshot.masks.weight))


def test_shrunk_after_recovery_equals_masked_after_recovery(finetuned, mnist):
    _, recovered, _ = finetuned("unit", 0.75)
    shrunk, masked_dense = convert(recovered, "shrunk"), convert(recovered, "dense")
    for batch in (1, 7, 256):
        x = np.ascontiguousarray(mnist.x_test[:batch])
        assert_forward_close(shrunk(x), masked_dense(x))
    assert shrunk.widths == (784, 16, 8, 10)  # three quarters of 64 and 32 hidden units gone, their inputs too
    assert shrunk.in_memory_bytes < 0.6 * masked_dense.in_memory_bytes


def test_recovered_network_is_cached(dense, finetuned, tmp_path, monkeypatch):
    """The first call runs recover() (stubbed with a fine-tuning trained once for this module) and
    stores its network and masks; the second reads them back without training."""
    _, trained, trained_manifest = finetuned("weight", 0.95)
    calls = []

    def fake_recover(net, stage, method, sparsity, scope, data, config, progress, keras_model=None):
        assert net is dense and data.name == "mnist"
        assert (stage, method, sparsity, scope, config) == ("finetuned", "weight", 0.95, "layer", QUICK)
        calls.append(stage)
        return trained, trained_manifest

    monkeypatch.setattr(recover_mod, "recover", fake_recover)
    first, manifest = recovered_network(dense, "finetuned", "weight", 0.95, "layer", "mnist", QUICK,
                                        cache_dir=tmp_path, progress=False)
    assert calls == ["finetuned"] and manifest == {**trained_manifest, "key": manifest["key"]}
    monkeypatch.setattr(recover_mod, "recover", lambda *a, **k: pytest.fail("trained again despite a cache hit"))
    again, manifest_again = recovered_network(dense, "finetuned", "weight", 0.95, "layer", "mnist", QUICK,
                                              cache_dir=tmp_path, progress=False)
    assert manifest_again == manifest
    for a, b in zip(first.net.layers, again.net.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    for a, b in zip(first.masks.weight, again.masks.weight):
        np.testing.assert_array_equal(a, b)
    other = dataclasses.replace(QUICK, learning_rate=1e-3)
    assert recover_mod.recovery_key(dense, "finetuned", "weight", 0.95, "layer", other) != manifest["key"]


def test_bad_config_and_stage_are_named(dense, mnist):
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        RecoveryConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        RecoveryConfig(epochs=0)
    with pytest.raises(ValueError, match="prune_fraction must be in"):
        RecoveryConfig(prune_fraction=0.0)
    with pytest.raises(ValueError, match="unknown recovery stage 'oneshot'"):
        recover_mod.recover(dense, "oneshot", "weight", 0.5, "layer", mnist, QUICK)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        gradual(dense, "weight", 1.0, "layer", mnist, QUICK, progress=False)
