"""Train the dense Keras MLP and export it as a :class:`~sparsenet.model.Network`, cached.

tensorflow is imported only inside :func:`train` (``import sparsenet.train`` and a cache hit of
:func:`trained_network` stay tensorflow-free); the Keras side is :mod:`sparsenet._keras`, shared
with recovery, and Keras kernels leave through :func:`sparsenet.io.from_keras`. Nothing
downstream knows tensorflow existed. The command line is :mod:`sparsenet.train_cli`::

    python -m sparsenet.train --dataset mnist [--epochs N] [--out DIR] ...
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _keras
from .activations import ACTIVATIONS
from .cache import TRAINED_FIELDS, cache_root, entry_lock, read_manifest
from .data import DATASETS, N_TRAIN, Dataset, load_dataset
from .files import write_json
from .io import load_network, save_network
from .model import Network
from .validation import check_choice

# Adam (lr 1e-3, batch 128) with cosine decay of the learning rate to 0, per step. Measured with
# seed 0 on 2 CPU cores (~4.7 s/epoch): MNIST 98.66 % test accuracy in 48 s, Fashion-MNIST 90.61 %
# in 72 s; targets are >= 98.0 % and >= 88.5 %. Fewer epochs leave less margin for other seeds.
DEFAULT_EPOCHS = {"fashion_mnist": 15, "mnist": 10}
SCHEDULES = ("constant", "cosine")
# Bump when the training code changes what a config produces: old cache entries stop matching.
RECIPE_VERSION = 1
# Keras (oneDNN) and the numpy export may order sums differently; a prediction whose top two
# logits are nearly tied can flip. More flips than this fraction means the export is wrong.
MAX_EXPORT_MISMATCH = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained network (and so its cache key).

    Hidden layers use ReLU, the output softmax; no biases by default (the FOR.ai pruning MLP).
    ``epochs=None`` picks ``DEFAULT_EPOCHS[dataset]``. ``train_samples`` uses only the first
    ``n`` training samples (None: all 60000), for quick runs and tests.
    """

    dataset: str
    widths: tuple[int, ...] = (784, 1000, 1000, 500, 200, 10)
    epochs: int | None = None
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    use_bias: bool = False
    train_samples: int | None = None

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("schedule", self.schedule, SCHEDULES)
        widths = tuple(int(w) for w in self.widths)
        if len(widths) < 2 or widths[0] != 784 or widths[-1] != 10 or min(widths) < 1:
            raise ValueError(f"widths must run from 784 inputs to 10 classes with positive hidden widths, "
                             f"found {self.widths}; e.g. (784, 1000, 1000, 500, 200, 10)")
        object.__setattr__(self, "widths", widths)
        if self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS[self.dataset])
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{field} must be a positive integer, found {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, found {self.seed!r}")
        if not (float(self.learning_rate) > 0.0):
            raise ValueError(f"learning_rate must be > 0, found {self.learning_rate!r}")
        if self.train_samples is not None and not (1 <= self.train_samples <= N_TRAIN):
            raise ValueError(f"train_samples must be in 1..{N_TRAIN} or None (all), found {self.train_samples!r}")

    @property
    def activations(self) -> tuple[str, ...]:
        return ("relu",) * (len(self.widths) - 2) + ("softmax",)


def config_key(config: TrainConfig) -> str:
    """12 hex digits of sha256 over the config, the tensorflow version and RECIPE_VERSION."""
    payload = {"config": dataclasses.asdict(config), "tensorflow": _keras.tf_version(), "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def model_dir(config: TrainConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`trained_network` keeps ``weights.npz`` and ``manifest.json`` for ``config``
    (under :func:`sparsenet.cache.cache_root`)."""
    return cache_root(cache_dir) / "models" / f"{config.dataset}-{config_key(config)}"


def train(config: TrainConfig, dataset: Dataset, progress: bool = True) -> tuple[Network, dict]:
    """Train ``config`` on ``dataset``, check the export, return ``(network, manifest)``.

    Seeded and deterministic (``keras.utils.set_random_seed`` + op determinism): the same
    config on the same machine and versions gives the same weights. Prints one line per epoch
    when ``progress`` is true.

    Raises
    ------
    ValueError
        ``dataset`` is not the one ``config`` names.
    RuntimeError
        The exported network's predictions disagree with Keras' (the export is broken).
    """
    if dataset.name != config.dataset:
        raise ValueError(f"config is for {config.dataset!r} but the dataset given is {dataset.name!r}")
    tf, keras = _keras.import_tf()
    threads = _keras.configure_tf(tf, keras, config.seed)
    x_train, y_train = dataset.x_train[:config.train_samples], dataset.y_train[:config.train_samples]
    n = x_train.shape[0]
    steps_per_epoch = -(-n // config.batch_size)

    stack = _keras.dense_stack(keras, config.widths, config.activations, (config.use_bias,) * len(config.activations))
    inputs = keras.Input(shape=(config.widths[0],))
    h = inputs
    for dense in stack:
        h = dense(h)
    model = keras.Model(inputs, h)
    lr = config.learning_rate
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=config.epochs * steps_per_epoch, alpha=0.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    batches = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
               .batch(config.batch_size).prefetch(2))
    log = _keras.epoch_log(keras, config.epochs, progress)
    start = time.perf_counter()
    model.fit(batches, epochs=config.epochs, verbose=0, shuffle=False, callbacks=[log])  # shuffled above
    train_seconds = time.perf_counter() - start

    _, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=1000, verbose=0)
    keras_pred = model.predict(dataset.x_test, batch_size=1000, verbose=0).argmax(axis=1)
    net = _keras.to_network(stack, config.activations)
    numpy_pred = predict(net, dataset.x_test)
    mismatches = int((numpy_pred != keras_pred).sum())
    if mismatches > MAX_EXPORT_MISMATCH * len(numpy_pred):
        raise RuntimeError(f"exported network disagrees with Keras on {mismatches} of {len(numpy_pred)} "
                           f"test samples (tolerated: {MAX_EXPORT_MISMATCH:.1%}); the export is broken")
    manifest = {
        "dataset": config.dataset,
        "architecture": list(config.widths),
        "activations": list(config.activations),
        "epochs": config.epochs,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "use_bias": config.use_bias,
        "train_samples": n,
        "optimizer": "Adam",
        "schedule": (f"cosine decay of the learning rate from {config.learning_rate:g} to 0 over "
                     f"{config.epochs * steps_per_epoch} steps" if config.schedule == "cosine"
                     else f"constant learning rate {config.learning_rate:g}"),
        "loss": "sparse categorical cross-entropy",
        "final_loss": log.history[-1]["loss"],
        "train_accuracy": log.history[-1]["accuracy"],
        "test_accuracy": float(test_accuracy),
        "test_accuracy_numpy": float((numpy_pred == dataset.y_test).mean()),
        "export_prediction_mismatches": mismatches,
        "epoch_seconds": [round(h["seconds"], 3) for h in log.history],
        "train_seconds": round(train_seconds, 3),
        "threads": threads,
        "data_source": dataset.source,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recipe_version": RECIPE_VERSION,
        "config_key": config_key(config),
    }
    return net, manifest


def predict(net: Network, x: np.ndarray) -> np.ndarray:
    """Class ids from a plain numpy forward pass (argmax of the logits; softmax keeps the order)."""
    h = x
    for layer in net.layers:
        h = h @ layer.weight.T
        if layer.bias is not None:
            h += layer.bias
        h = ACTIVATIONS[layer.activation](h)
    return h.argmax(axis=1)


def trained_network(config: TrainConfig, cache_dir: str | os.PathLike | None = None,
                    data_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[Network, dict]:
    """The network for ``config``: from the cache if it holds one, else trained and cached.

    The cache entry is :func:`model_dir` holding ``weights.npz`` and ``manifest.json``; the
    manifest is written last, so a directory without a valid one counts as absent.
    """
    directory = model_dir(config, cache_dir)
    with entry_lock(directory, f"the {config.dataset} network"):  # concurrent runs train it once
        return _cached_or_trained(config, directory, data_dir, progress)


def _cached_or_trained(config: TrainConfig, directory: Path, data_dir, progress: bool) -> tuple[Network, dict]:
    weights, manifest_path = directory / "weights.npz", directory / "manifest.json"
    manifest = read_manifest(manifest_path, config_key(config), fields=TRAINED_FIELDS)
    if manifest is not None:
        try:
            net = load_network(weights)
            if net.widths != config.widths:
                raise ValueError(f"its network has widths {net.widths}, the config asks for {config.widths}")
        except (OSError, ValueError) as exc:
            print(f"cache entry {directory} is unusable ({exc}); training again", flush=True)
        else:
            if progress:
                print(f"reusing trained {config.dataset} network from {directory} "
                      f"(test accuracy {manifest['test_accuracy']:.2%}, created {manifest['created']})", flush=True)
            return net, manifest
    dataset = load_dataset(config.dataset, data_dir=data_dir)
    if progress:
        print(f"training {config.dataset} {'-'.join(map(str, config.widths))} for {config.epochs} epochs "
              f"(data from {dataset.source}); caching in {directory}", flush=True)
    net, manifest = train(config, dataset, progress=progress)
    save_network(weights, net)
    write_json(manifest_path, manifest)
    return net, manifest


if __name__ == "__main__":  # python -m sparsenet.train: the command line lives in train_cli
    from .train_cli import main

    raise SystemExit(main())
