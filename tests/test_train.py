"""sparsenet.train with real (tiny_trained) Keras trainings: export, reproducibility, cache, CLI.

The network every test here inspects is conftest's ``tiny_trained``, trained once per run and
shared with test_recover; tests of the cache around training replace ``train`` by a stub that
hands it back, so only the tests of training itself train.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="training needs the 'train' extra (tensorflow)")

from sparsenet import train as train_mod  # noqa: E402
from sparsenet.io import load_network  # noqa: E402
from sparsenet.train import DEFAULT_EPOCHS, TrainConfig, config_key, model_dir, train, trained_network  # noqa: E402
from sparsenet.train_cli import main  # noqa: E402

import naive  # noqa: E402
from conftest import TINY  # noqa: E402


@pytest.fixture
def stub_train(monkeypatch, tiny_trained):
    """Replace train() inside trained_network by one that returns the shared TINY result; count calls."""
    calls = []

    def fake(config, dataset, progress=True):
        assert config == TINY and dataset.name == "mnist"
        calls.append(config)
        net, manifest = tiny_trained
        return net, dict(manifest)

    monkeypatch.setattr(train_mod, "train", fake)
    return calls


def same_weights(a, b) -> bool:
    return all(np.array_equal(x.weight, y.weight) and
               (x.bias is None and y.bias is None or np.array_equal(x.bias, y.bias))
               for x, y in zip(a.layers, b.layers))


def test_train_exports_network_that_matches_keras(tiny_trained, mnist):
    net, manifest = tiny_trained
    assert net.widths == TINY.widths
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "softmax"]
    assert all(layer.bias is None and layer.weight.dtype == np.float32 for layer in net.layers)
    assert manifest["test_accuracy"] > 0.8  # chance is 0.1
    assert manifest["export_prediction_mismatches"] <= 5
    assert manifest["test_accuracy_numpy"] == pytest.approx(manifest["test_accuracy"], abs=5e-4)
    own = (naive.forward_net(net, mnist.x_test.astype(np.float64)).argmax(axis=1) == mnist.y_test).mean()
    assert own == pytest.approx(manifest["test_accuracy_numpy"], abs=5e-4)


def test_train_manifest_records_the_run(tiny_trained):
    _, m = tiny_trained
    assert m["dataset"] == "mnist" and m["architecture"] == [784, 64, 32, 10]
    assert (m["epochs"], m["seed"], m["batch_size"], m["use_bias"], m["train_samples"]) == (2, 0, 64, False, 5000)
    assert m["optimizer"] == "Adam" and "constant" in m["schedule"]
    assert len(m["epoch_seconds"]) == 2 and m["train_seconds"] > 0
    assert set(m["versions"]) == {"python", "numpy", "tensorflow", "keras"}
    assert m["config_key"] == config_key(TINY) and m["created"].endswith("+00:00")
    json.dumps(m)  # plain JSON types only


def test_train_is_reproducible_for_a_seed(tiny_trained, mnist):
    again, _ = train(TINY, mnist, progress=False)
    assert same_weights(tiny_trained[0], again)
    other, _ = train(dataclasses.replace(TINY, seed=1, epochs=1), mnist, progress=False)
    assert not np.array_equal(other.layers[0].weight, again.layers[0].weight)


def test_train_with_biases(mnist, capsys):
    config = dataclasses.replace(TINY, use_bias=True, epochs=1, schedule="cosine")
    net, manifest = train(config, mnist, progress=True)
    assert [layer.bias.shape for layer in net.layers] == [(64,), (32,), (10,)]
    assert any(np.abs(layer.bias).max() > 0 for layer in net.layers)  # the biases were trained
    assert manifest["export_prediction_mismatches"] <= 5 and manifest["test_accuracy"] > 0.5
    assert "epoch 1/1  loss" in capsys.readouterr().out


def test_train_rejects_another_dataset(mnist):
    with pytest.raises(ValueError, match="config is for 'fashion_mnist' but the dataset given is 'mnist'"):
        train(TrainConfig("fashion_mnist", epochs=1), mnist)


def test_trained_network_reuses_the_cache(tmp_path, stub_train, monkeypatch, capsys):
    net, manifest = trained_network(TINY, cache_dir=tmp_path, progress=True)
    assert len(stub_train) == 1
    directory = model_dir(TINY, tmp_path)
    assert directory.parent == tmp_path / "models" and directory.name == f"mnist-{config_key(TINY)}"
    assert json.loads((directory / "manifest.json").read_text()) == manifest
    assert same_weights(load_network(directory / "weights.npz"), net)
    assert "training mnist" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache holds this config")

    monkeypatch.setattr(train_mod, "train", no_training)
    cached, cached_manifest = trained_network(TINY, cache_dir=tmp_path, progress=True)
    assert same_weights(cached, net) and cached_manifest == manifest
    assert f"reusing trained mnist network from {directory}" in capsys.readouterr().out


def test_cache_entry_without_valid_manifest_counts_as_absent(tmp_path, stub_train, monkeypatch, capsys):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path))
    directory = model_dir(TINY)
    assert directory.parent == tmp_path / "models"
    net, manifest = trained_network(TINY)
    (directory / "manifest.json").write_text('{"config_key": "trunc')  # half-written
    capsys.readouterr()
    again, manifest2 = trained_network(TINY)
    assert "training mnist" in capsys.readouterr().out and len(stub_train) == 2
    assert same_weights(net, again) and json.loads((directory / "manifest.json").read_text()) == manifest2


def test_config_defaults_key_and_validation():
    assert TrainConfig("mnist").epochs == DEFAULT_EPOCHS["mnist"]
    assert TrainConfig("fashion_mnist").epochs == DEFAULT_EPOCHS["fashion_mnist"]
    assert TrainConfig("mnist").widths == (784, 1000, 1000, 500, 200, 10) and not TrainConfig("mnist").use_bias
    keys = {config_key(TINY), config_key(dataclasses.replace(TINY, seed=1)),
            config_key(dataclasses.replace(TINY, epochs=3)), config_key(dataclasses.replace(TINY, use_bias=True))}
    assert len(keys) == 4 and config_key(TINY) == config_key(dataclasses.replace(TINY))
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar10'; choose one of \['fashion_mnist', 'mnist'\]"):
        TrainConfig("cifar10")
    with pytest.raises(ValueError, match=r"widths must run from 784 inputs to 10 classes.*found \(784, 10, 5\)"):
        TrainConfig("mnist", widths=(784, 10, 5))
    with pytest.raises(ValueError, match="epochs must be a positive integer, found 0"):
        TrainConfig("mnist", epochs=0)


def test_cli_trains_and_copies_to_out(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--dataset", "mnist", "--epochs", "1", "--widths", "784,32,10", "--train-samples",
                         "3000", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["architecture"] == [784, 32, 10] and manifest["train_samples"] == 3000
    assert load_network(out / "weights.npz").widths == (784, 32, 10)
    assert f"files in {out}" in capsys.readouterr().out


def test_cli_rejects_unknown_dataset(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "cifar10"])
    assert info.value.code == 2
    assert "unknown dataset 'cifar10'; choose one of ['fashion_mnist', 'mnist']" in capsys.readouterr().err


def run_python(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_import_sparsenet_does_not_import_tensorflow():
    run_python("import sys, sparsenet, sparsenet.io, sparsenet.data, sparsenet.train, sparsenet.train_cli\n"
               "import sparsenet.recover, sparsenet._keras, sparsenet._masked_mlp, sparsenet.cache, sparsenet.host\n"
               "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'")


def test_cache_hit_does_not_import_tensorflow(tmp_path, stub_train):
    trained_network(TINY, cache_dir=tmp_path, progress=False)
    run_python("import sys, dataclasses\n"
               "from sparsenet.train import TrainConfig, trained_network\n"
               f"net, m = trained_network(TrainConfig(**{dataclasses.asdict(TINY)!r}), cache_dir={str(tmp_path)!r})\n"
               "assert net.widths == (784, 64, 32, 10)\n"
               "assert 'tensorflow' not in sys.modules, 'a cache hit imported tensorflow'")


def test_module_runs_as_the_command_line():
    result = subprocess.run([sys.executable, "-m", "sparsenet.train", "--dataset", "cifar10"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "python -m sparsenet.train" in result.stderr and "unknown dataset 'cifar10'" in result.stderr
