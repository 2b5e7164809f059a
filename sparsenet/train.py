"""Train the dense Keras MLP and export it as a :class:`~sparsenet.model.Network`.

The only module of the library that imports tensorflow, and only inside the functions that
train (``import sparsenet.train`` and a cache hit stay tensorflow-free). Keras kernels leave
through :func:`sparsenet.io.from_keras`; nothing downstream knows tensorflow existed.

Command line::

    python -m sparsenet.train --dataset mnist [--epochs N] [--seed S] [--out DIR]
                              [--data-dir DIR] [--cache-dir DIR] [--widths 784,64,10] [--train-samples N]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ._files import atomic_path, write_json
from ._validation import check_choice
from .activations import ACTIVATIONS
from .data import DATASETS, N_TRAIN, Dataset, DatasetNotFoundError, load_dataset
from .io import from_keras, load_network, save_network
from .model import Network

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
    payload = {"config": dataclasses.asdict(config), "tensorflow": _tf_version(), "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$SPARSENET_CACHE``, else ``~/.cache/sparsenet``."""
    root = cache_dir or os.environ.get("SPARSENET_CACHE") or Path.home() / ".cache" / "sparsenet"
    return Path(root).expanduser()


def model_dir(config: TrainConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`trained_network` keeps ``weights.npz`` and ``manifest.json`` for ``config``."""
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
    tf, keras = _import_tf()
    threads = _configure_tf(tf, keras, config.seed)
    x_train, y_train = dataset.x_train[:config.train_samples], dataset.y_train[:config.train_samples]
    n = x_train.shape[0]
    steps_per_epoch = -(-n // config.batch_size)

    model = _build_model(keras, config)
    lr = config.learning_rate
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=config.epochs * steps_per_epoch, alpha=0.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    batches = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
               .batch(config.batch_size).prefetch(2))
    log = _epoch_log(keras, config.epochs, progress)
    start = time.perf_counter()
    model.fit(batches, epochs=config.epochs, verbose=0, shuffle=False, callbacks=[log])  # shuffled above
    train_seconds = time.perf_counter() - start

    _, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=1000, verbose=0)
    keras_pred = model.predict(dataset.x_test, batch_size=1000, verbose=0).argmax(axis=1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    net = from_keras([np.asarray(layer.kernel.numpy()) for layer in dense],
                     [np.asarray(layer.bias.numpy()) if config.use_bias else None for layer in dense],
                     config.activations)
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
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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
    weights, manifest_path = directory / "weights.npz", directory / "manifest.json"
    manifest = _read_manifest(manifest_path, config_key(config))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparsenet.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--epochs", type=int, help=f"default per dataset: {DEFAULT_EPOCHS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also copy weights.npz and manifest.json into this directory")
    parser.add_argument("--data-dir", type=Path, help="directory holding the dataset's *-ubyte.gz files")
    parser.add_argument("--cache-dir", type=Path, help="default: $SPARSENET_CACHE or ~/.cache/sparsenet")
    parser.add_argument("--widths", help="layer widths for a smaller net, e.g. 784,64,32,10 "
                        "(default: 784,1000,1000,500,200,10)")
    parser.add_argument("--train-samples", type=int, help="train on the first N samples only (quick runs)")
    args = parser.parse_args(argv)
    extra = {}
    if args.widths is not None:
        try:
            extra["widths"] = tuple(int(w) for w in args.widths.split(","))
        except ValueError:
            parser.error(f"--widths takes comma-separated integers such as 784,64,10, found {args.widths!r}")
    try:
        config = TrainConfig(args.dataset, epochs=args.epochs, seed=args.seed,
                             train_samples=args.train_samples, **extra)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        _, manifest = trained_network(config, cache_dir=args.cache_dir, data_dir=args.data_dir)
    except DatasetNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    directory = model_dir(config, args.cache_dir)
    if args.out is not None:
        for name in ("weights.npz", "manifest.json"):
            with atomic_path(args.out / name) as tmp:
                shutil.copyfile(directory / name, tmp)
        directory = args.out
    epoch_s = manifest["epoch_seconds"]
    print(f"{config.dataset}: test accuracy {manifest['test_accuracy']:.2%} (numpy export "
          f"{manifest['test_accuracy_numpy']:.2%}), {manifest['epochs']} epochs, "
          f"{sum(epoch_s) / len(epoch_s):.1f} s/epoch, {manifest['train_seconds']:.0f} s; files in {directory}")
    return 0


def _epoch_log(keras, epochs: int, progress: bool):
    """A Callback built on demand (keras is imported lazily, so the class cannot be module-level)."""

    class EpochLog(keras.callbacks.Callback):
        """One line per epoch: epoch i/N, loss, train accuracy, seconds."""

        def __init__(self) -> None:
            super().__init__()
            self.history: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._start
            row = {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]), "seconds": seconds}
            self.history.append(row)
            if progress:
                print(f"epoch {epoch + 1}/{epochs}  loss {row['loss']:.4f}  train acc {row['accuracy']:.2%}  "
                      f"{seconds:.1f} s", flush=True)

    return EpochLog()


def _build_model(keras, config: TrainConfig):
    inputs = keras.Input(shape=(config.widths[0],))
    h = inputs
    for i, (width, act) in enumerate(zip(config.widths[1:], config.activations)):
        h = keras.layers.Dense(width, activation=act, use_bias=config.use_bias, name=f"dense{i}")(h)
    return keras.Model(inputs, h)


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide C++ INFO/WARNING banners; errors still show
    import keras
    import tensorflow as tf

    return tf, keras


def _configure_tf(tf, keras, seed: int) -> int:
    """Seed everything, make ops deterministic, use every core we may run on; return the thread count."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for setter, getter in ((tf.config.threading.set_intra_op_parallelism_threads,
                            tf.config.threading.get_intra_op_parallelism_threads),
                           (tf.config.threading.set_inter_op_parallelism_threads,
                            tf.config.threading.get_inter_op_parallelism_threads)):
        try:
            setter(threads)
        except RuntimeError:  # the runtime is already up (an earlier train() in this process)
            if getter() not in (0, threads):
                raise
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return threads


def _tf_version() -> str:
    """The installed tensorflow version, read from package metadata so a cache hit needs no import."""
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    tf, _ = _import_tf()
    return tf.__version__


def _read_manifest(path: Path, key: str, key_field: str = "config_key") -> dict | None:
    """The manifest if it is valid JSON whose ``key_field`` is ``key``, else None (the entry
    counts as absent). Shared with sparsenet.recover's cache."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get(key_field) != key or "test_accuracy" not in manifest:
        return None
    return manifest


if __name__ == "__main__":
    raise SystemExit(main())
