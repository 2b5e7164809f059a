"""Train MobileNetV2 for 32x32 images with Keras, cached, and import it with batch norm folded.

The model is ``keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, C), classes=10,
alpha=...)`` as published (stride 2 in the first convolution, so 32x32 ends at 1x1 before the
pooling), trained with Adam and a cosine-decayed learning rate, seeded and deterministic like
the MLPs (:mod:`sparsenet.train`). The cache entry, under
:func:`sparsenet.cache.cache_root`, is ``models/<dataset>-mobilenetv2-<key>/`` holding the
trained ``model.keras`` (its batch norm statistics re-estimated after training,
:func:`reestimate_bn`), ``network.npz`` (its checked import, read on a cache hit without
tensorflow) and ``manifest.json`` (written last); :func:`trained_conv_network` reads
the Keras file through :func:`sparsenet.load_model`, which folds every batch norm into its
convolution and checks the result against Keras on random inputs, so the cached artefact is the
framework's own file and the network is always the checked import of it.

tensorflow is imported only when training or reading the cached model.
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
from ._conv_npz import load_conv_network, save_conv_network
from .cache import RECOVERED_FIELDS, cache_root, entry_lock, read_manifest
from .files import atomic_path, write_json
from .image_data import IMAGE_DATASETS, ImageDataset, load_image_dataset
from .model import Network
from .validation import check_choice

RECIPE_VERSION = 3  # 2: batch norm statistics re-estimated after training; 3: augmentation option
SHIFT_PIXELS = 2  # the augmentation's largest shift; Fashion-MNIST padded to 32x32 has a 2-pixel border
BN_BATCHES, BN_BATCH_SIZE = 50, 256
NETWORK_FILE = "network.npz"  # the imported network, read without tensorflow
MAX_EXPORT_MISMATCH = 1e-3  # as for the MLPs: near-tied logits may flip between Keras and numpy
# what the imported keras.applications.MobileNetV2 is made of (a test checks it), so that the
# benchmark grid can pick the formats for it before any network is loaded
MOBILENET_LAYER_KINDS = frozenset({"conv2d", "depthwise_conv2d", "global_avg_pool", "dense"})
MOBILENET_ACTIVATIONS = frozenset({"relu6", "linear", "softmax"})
_ADDED_FIELDS = ("test_samples",)  # left out of the cache key while None: earlier entries keep their keys
CONV_FIELDS = {**RECOVERED_FIELDS, "test_accuracy_numpy": RECOVERED_FIELDS["test_accuracy"]}


@dataclass(frozen=True)
class ConvTrainConfig:
    """Everything that determines a trained MobileNetV2 (and so its cache key).

    ``bn_momentum``: Keras' MobileNetV2 uses 0.999, whose moving statistics still lean on their
    initial values after the few hundred steps of a 1-2 epoch run (inference accuracy then stays
    near chance while training accuracy climbs); 0.99 forgets them within a few hundred steps.
    ``channels``: None takes the dataset's (3 for cifar10, 1 for fashion_mnist_32; 3 replicates
    Fashion-MNIST's one). ``train_samples``: the first ``n`` training images only (None: all);
    ``test_samples``: accuracy in the manifest on the first ``n`` test images (None: all).
    ``augment``: each training image is flipped left-right with probability 1/2 and shifted by up
    to SHIFT_PIXELS in each direction (zero fill), keyed by ``seed`` and the position in the epoch; the
    standard CIFAR-10 augmentation, which also suits Fashion-MNIST's upright, mirror-symmetric
    classes.
    """

    dataset: str = "fashion_mnist_32"
    alpha: float = 0.35
    epochs: int = 2
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 2e-3
    bn_momentum: float = 0.99
    channels: int | None = None
    train_samples: int | None = None
    test_samples: int | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        check_choice("image dataset", self.dataset, IMAGE_DATASETS)
        if not (0.0 < float(self.alpha) <= 2.0):
            raise ValueError(f"alpha (the width multiplier) must be in (0, 2], found {self.alpha!r}; e.g. 0.35")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, found {value!r}")
        if self.channels is None:
            object.__setattr__(self, "channels", 3 if self.dataset == "cifar10" else 1)
        for name in ("train_samples", "test_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive or None (all), found {getattr(self, name)!r}")


def config_key(config: ConvTrainConfig) -> str:
    fields = {k: v for k, v in dataclasses.asdict(config).items() if not (k in _ADDED_FIELDS and v is None)}
    payload = {"config": fields, "tensorflow": _keras.tf_version(), "recipe": RECIPE_VERSION,
               "model": "keras.applications.MobileNetV2"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def model_dir(config: ConvTrainConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    return cache_root(cache_dir) / "models" / f"{config.dataset}-mobilenetv2-{config_key(config)}"


def mobilenet_v2(keras, config: ConvTrainConfig):
    """The untrained Keras MobileNetV2 for ``config`` (softmax classifier, 10 classes)."""
    model = keras.applications.MobileNetV2(input_shape=(32, 32, config.channels), alpha=config.alpha,
                                           weights=None, classes=10, include_top=True)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.bn_momentum  # read when the layer runs, so this takes effect
    return model


def train_conv(config: ConvTrainConfig, dataset: ImageDataset, path: str | os.PathLike,
               progress: bool = True) -> dict:
    """Train ``config`` on ``dataset``, save the Keras model at ``path`` (atomically) and return the
    manifest (accuracy by Keras and by sparsenet's dense format on the imported network)."""
    if dataset.name != config.dataset or dataset.image_shape != (32, 32, config.channels):
        raise ValueError(f"config is for {config.dataset!r} 32x32x{config.channels}, the dataset given is "
                         f"{dataset.name!r} {dataset.image_shape}")
    tf, keras = _keras.import_tf()
    threads = _keras.configure_tf(tf, keras, config.seed)
    shape = (-1, *dataset.image_shape)
    x_train = dataset.x_train[:config.train_samples].reshape(shape)
    y_train = dataset.y_train[:config.train_samples]
    n = x_train.shape[0]
    steps = config.epochs * -(-n // config.batch_size)
    model = mobilenet_v2(keras, config)
    lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    batches = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(
        n, seed=config.seed, reshuffle_each_iteration=True)
    if config.augment:
        batches = augmented(tf, batches, config.seed)
    batches = batches.batch(config.batch_size).prefetch(2)
    log = _keras.epoch_log(keras, config.epochs, progress)
    start = time.perf_counter()
    model.fit(batches, epochs=config.epochs, verbose=0, shuffle=False, callbacks=[log])
    train_seconds = time.perf_counter() - start
    x_test, y_test = dataset.x_test[:config.test_samples].reshape(shape), dataset.y_test[:config.test_samples]
    _, fit_accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    start = time.perf_counter()
    bn_batches = min(BN_BATCHES, max(1, n // 64))  # all 50 from 3200 images on
    reestimate_bn(keras, model, x_train, config.seed, batches=bn_batches)
    bn_seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    keras_pred = model.predict(x_test, batch_size=500, verbose=0).argmax(axis=1)
    with atomic_path(Path(path), suffix=".keras") as tmp:
        model.save(tmp)
    net = _import(path).network
    numpy_pred = predict(net, dataset.x_test[:config.test_samples])
    mismatches = int((numpy_pred != keras_pred).sum())
    if mismatches > MAX_EXPORT_MISMATCH * len(numpy_pred):
        raise RuntimeError(f"imported network disagrees with Keras on {mismatches} of {len(numpy_pred)} test "
                           f"samples (tolerated: {MAX_EXPORT_MISMATCH:.1%}); the import is broken")
    return {
        "dataset": config.dataset, "data_source": dataset.source, "model": "keras.applications.MobileNetV2",
        "alpha": config.alpha, "bn_momentum": config.bn_momentum, "channels": config.channels,
        "epochs": config.epochs, "seed": config.seed,
        "augmentation": (f"random left-right flip and shift by up to {SHIFT_PIXELS} pixels"
                         if config.augment else "none"),
        "batch_size": config.batch_size, "learning_rate": config.learning_rate, "train_samples": n,
        "optimizer": "Adam", "schedule": f"cosine decay from {config.learning_rate:g} to 0 over {steps} steps",
        "parameters_keras": int(model.count_params()), "weights_sparsenet": int(net.n_weights),
        "final_loss": log.history[-1]["loss"], "train_accuracy": log.history[-1]["accuracy"],
        "test_accuracy": float(test_accuracy), "test_accuracy_fit_bn_statistics": float(fit_accuracy),
        "bn_reestimation": f"{bn_batches} batches of {min(BN_BATCH_SIZE, n)} training images, {bn_seconds:.1f} s",
        "test_accuracy_numpy": float((numpy_pred == y_test).mean()), "test_samples": int(len(y_test)),
        "export_prediction_mismatches": mismatches,
        "epoch_seconds": [round(h["seconds"], 3) for h in log.history], "train_seconds": round(train_seconds, 3),
        "threads": threads,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recipe_version": RECIPE_VERSION, "config_key": config_key(config),
    }


def augmented(tf, images, seed: int):
    """``images`` (a dataset of ``(image, label)``, reshuffled every epoch) with each image flipped
    left-right at random and shifted by up to SHIFT_PIXELS pixels (zero fill), deterministic:
    stateless ops keyed by ``seed`` and the position in the epoch. The draws repeat every epoch,
    but the reshuffle puts another image at each position, so each image's draw changes."""

    def draw(index, pair):
        image, label = pair
        key = tf.stack([tf.constant(seed, tf.int64), index])
        image = tf.image.stateless_random_flip_left_right(image, key)
        padded = tf.pad(image, [[SHIFT_PIXELS, SHIFT_PIXELS], [SHIFT_PIXELS, SHIFT_PIXELS], [0, 0]])
        return tf.image.stateless_random_crop(padded, tf.shape(image), key + 1), label

    return images.enumerate().map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def reestimate_bn(keras, model, x_train: np.ndarray, seed: int, batches: int = BN_BATCHES,
                  batch_size: int = BN_BATCH_SIZE) -> None:
    """Replace every batch norm's moving statistics by the mean of its batch statistics over
    ``batches`` random training batches under the final weights ("precise BN"); ``x_train`` NHWC.

    Measured (seed 0, 1 epoch on fashion_mnist_32, 2 cores): the moving statistics ``fit`` left
    gave 10 % test accuracy, constant predictions, while the same weights with batch statistics
    gave 81 %; the re-estimated ones give about 80 %. Eager calls with ``training=True`` update
    the moving averages with ``momentum`` read per call, so ``k / (k + 1)`` at batch ``k`` makes
    them the running mean; each layer's own momentum is restored afterwards.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    rng = np.random.default_rng(seed)
    for k in range(batches):
        for layer in layers:
            layer.momentum = k / (k + 1)
        model(x_train[rng.choice(len(x_train), min(batch_size, len(x_train)), replace=False)], training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def predict(net: Network, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class ids from sparsenet's dense format (no pruning), in batches."""
    from .formats import convert
    from .prune import prune

    forward = convert(prune(net, "weight", 0.0), "dense")
    return np.concatenate([forward(x[i:i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)])


def trained_conv_network(config: ConvTrainConfig, cache_dir: str | os.PathLike | None = None,
                         data_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[Network, dict]:
    """The imported (batch norm folded) network for ``config``: from the cache, else trained and cached.

    The returned manifest also names the cached Keras file (``keras_model``), which recovery
    (:mod:`sparsenet.recover`) trains. A cache hit reads ``network.npz`` (the checked import,
    :mod:`sparsenet._conv_npz`) without tensorflow; an entry without it is imported once more.
    """
    directory = model_dir(config, cache_dir)
    with entry_lock(directory, f"the {config.dataset} MobileNetV2"):
        path, manifest_path = directory / "model.keras", directory / "manifest.json"
        manifest = read_manifest(manifest_path, config_key(config), fields=CONV_FIELDS)
        if manifest is not None and path.is_file():
            if progress:
                print(f"reusing trained {config.dataset} MobileNetV2 from {directory} "
                      f"(test accuracy {manifest['test_accuracy']:.2%})", flush=True)
            return _cached_network(directory), {**manifest, "keras_model": str(path)}
        dataset = load_image_dataset(config.dataset, data_dir, channels=config.channels)
        if progress:
            print(f"training MobileNetV2 alpha={config.alpha} on {dataset!r} for {config.epochs} epochs; "
                  f"caching in {directory}", flush=True)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = train_conv(config, dataset, path, progress)
        net = _import(path).network
        save_conv_network(directory / NETWORK_FILE, net)
        write_json(manifest_path, manifest)
        return net, {**manifest, "keras_model": str(path)}


def _cached_network(directory: Path) -> Network:
    try:
        net = load_conv_network(directory / NETWORK_FILE)
        if isinstance(net, Network):
            return net
    except (OSError, ValueError):
        pass
    net = _import(directory / "model.keras").network
    save_conv_network(directory / NETWORK_FILE, net)
    return net


def _import(path):
    from .importers import load_model

    return load_model(path)
