"""Win accuracy back after pruning: fine-tune with fixed masks, or prune gradually while training.

Two stages beyond one-shot pruning, both starting from the trained dense network and both
given the same budget (``RecoveryConfig.epochs`` on top of the dense training):

- ``finetuned``: one-shot prune, then train with the masks fixed.
- ``gradual``: train while the sparsity rises along :class:`~sparsenet.schedule.PolynomialDecay`
  (Zhu & Gupta) over the first ``prune_fraction`` of the steps, masks recomputed every
  ``frequency`` steps by the same pruners as one-shot (:func:`sparsenet.prune`), then train
  with the final masks fixed.

Pruned weights stay at exactly zero in both stages: gradients are masked before the optimizer
and the masks re-applied after every step, and the optimizer state of newly pruned weights is
zeroed (the Keras side, :mod:`sparsenet._masked_mlp`, says how). After training, the masks and
the achieved sparsity are checked. Conv networks (MobileNetV2) train as their own Keras model,
batch norm unfolded and trainable, masks on the Keras kernels, then imported again with BN
folded (:mod:`sparsenet._masked_conv`); their cache entries are :mod:`sparsenet._conv_npz` files.

Like :mod:`sparsenet.train`, tensorflow is imported only inside the functions that train; a
cache hit (:func:`recovered_network`) needs no tensorflow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from . import _keras
from ._conv_npz import load_conv_network, save_conv_network
from ._masked_mlp import gradual_callback, masked_model
from .cache import cache_root, entry_lock, read_manifest
from .data import N_TRAIN, Dataset, load_dataset
from .files import write_json
from .io import load_masked, save_masked
from .layers import SPATIAL_KINDS, kind_of
from .model import MaskedNetwork, Network
from .prune import PRUNERS, SCOPES, prune
from .schedule import PolynomialDecay
from .train import predict
from .validation import check_choice, check_sparsity

STAGES = ("oneshot", "finetuned", "gradual")
RECOVERED_STAGES = STAGES[1:]
# Bump when the recovery code changes what a config produces: old cache entries stop matching.
RECIPE_VERSION = 1
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class RecoveryConfig:
    """The training budget and optimizer of both recovery stages (and so part of the cache key).

    ``optimizer`` ``"adam"`` (default) or ``"sgd"`` (Nesterov momentum 0.9), with the learning
    rate cosine-decayed from ``learning_rate`` to 0 over ``epochs``.
    Gradual pruning: sparsity rises from ``initial_sparsity`` at step 0 to the target at
    ``prune_fraction`` of the steps, masks recomputed every ``frequency`` steps (fewer when the
    run is short, so that at least 4 pruning steps happen), cubic (``power`` 3) decay.

    The defaults were picked on the reference networks at 98% weight sparsity, 5 epochs
    (test accuracy, fine-tuned / gradual): learning rate 5e-4 with prune_fraction 0.6 gave
    MNIST 97.47 / 97.52 % and Fashion-MNIST 86.96 / 86.03 %; 1e-3 gave Fashion-MNIST 87.96 %
    fine-tuned, 87.87 % gradual at 0.6 and 88.36 % gradual at 0.4.
    """

    epochs: int = 5
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 128
    seed: int = 0
    initial_sparsity: float = 0.0
    prune_fraction: float = 0.4
    frequency: int = 100
    power: float = 3.0
    train_samples: int | None = None

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for field in ("epochs", "batch_size", "frequency"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{field} must be a positive integer, found {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, found {self.seed!r}")
        if not float(self.learning_rate) > 0.0:
            raise ValueError(f"learning_rate must be > 0, found {self.learning_rate!r}")
        if not 0.0 < float(self.prune_fraction) <= 1.0:
            raise ValueError(f"prune_fraction must be in (0, 1], found {self.prune_fraction!r}")
        check_sparsity(self.initial_sparsity)
        if self.train_samples is not None and not 1 <= self.train_samples <= N_TRAIN:
            raise ValueError(f"train_samples must be in 1..{N_TRAIN} or None (all), found {self.train_samples!r}")

    def steps_per_epoch(self) -> int:
        n = N_TRAIN if self.train_samples is None else self.train_samples
        return -(-n // self.batch_size)

    def schedule(self, final_sparsity: float) -> PolynomialDecay:
        """The gradual schedule this budget gives for ``final_sparsity``."""
        total = self.epochs * self.steps_per_epoch()
        end = max(1, min(total - 1, round(self.prune_fraction * total)))
        frequency = max(1, min(self.frequency, end // 4))
        initial = min(self.initial_sparsity, final_sparsity)
        return PolynomialDecay(initial, final_sparsity, 0, end, frequency, self.power)


def finetune(masked: MaskedNetwork, dataset: Dataset, config: RecoveryConfig = RecoveryConfig(),
             progress: bool = True, keras_model: str | os.PathLike | None = None) -> tuple[MaskedNetwork, dict]:
    """Train ``masked`` for ``config.epochs`` with its masks fixed; return it with a manifest.

    A conv network (spatial layers) trains as its Keras model, batch norm unfolded
    (:mod:`sparsenet._masked_conv`): ``keras_model`` is the ``.keras`` file it was imported from.

    Raises ``RuntimeError`` if a pruned weight came back or the sparsity changed (a bug, never
    expected).
    """
    recovered, manifest = _fit(masked, dataset, config, None, progress, keras_model)
    _check_fixed_masks(masked, recovered)
    return recovered, {**manifest, "stage": "finetuned"}


def gradual(net: Network, method: str, sparsity: float, scope: str, dataset: Dataset,
            config: RecoveryConfig = RecoveryConfig(), progress: bool = True,
            keras_model: str | os.PathLike | None = None) -> tuple[MaskedNetwork, dict]:
    """Train ``net`` while pruning it to ``sparsity`` along ``config.schedule(sparsity)``.

    The result keeps exactly as many weights (units) per layer, or in all for global scope, as
    one-shot :func:`~sparsenet.prune` keeps at ``sparsity`` (checked), but chosen along the way,
    so the masks differ. ``keras_model``: as for :func:`finetune`.
    """
    check_choice("pruning method", method, PRUNERS)
    check_choice("scope", scope, SCOPES)
    schedule = config.schedule(check_sparsity(sparsity))
    start = prune(net, method, schedule.initial_sparsity, scope)
    recovered, manifest = _fit(start, dataset, config, schedule, progress, keras_model)
    recovered = dataclasses.replace(recovered, sparsity=float(sparsity))
    expected = prune(net, method, sparsity, scope)
    if _kept(recovered) != _kept(expected):
        raise RuntimeError(f"gradual pruning kept {_kept(recovered)} {method}s, one-shot pruning at {sparsity:g} "
                           f"keeps {_kept(expected)}; the schedule did not reach its final sparsity")
    schedule_info = {**dataclasses.asdict(schedule), "pruning_steps": len(schedule.pruning_steps())}
    return recovered, {**manifest, "stage": "gradual", "schedule": schedule_info}


def recover(net: Network, stage: str, method: str, sparsity: float, scope: str, dataset: Dataset,
            config: RecoveryConfig = RecoveryConfig(), progress: bool = True,
            keras_model: str | os.PathLike | None = None) -> tuple[MaskedNetwork, dict]:
    """The network of ``stage`` (see :data:`RECOVERED_STAGES`) for the dense ``net``.

    A training set smaller than ``config`` assumes (a user's own data) sets ``train_samples``,
    so that the steps per epoch, and the gradual schedule built on them, are the real ones."""
    check_choice("recovery stage", stage, RECOVERED_STAGES)
    n = int(dataset.x_train.shape[0])
    if n == 0:
        raise ValueError(f"{stage} needs training data, and {dataset.name} has none")
    if n < (config.train_samples or N_TRAIN):
        config = dataclasses.replace(config, train_samples=n)
    if stage == "finetuned":
        return finetune(prune(net, method, sparsity, scope), dataset, config, progress, keras_model)
    return gradual(net, method, sparsity, scope, dataset, config, progress, keras_model)


def recovered_network(net: Network, stage: str, method: str, sparsity: float, scope: str, dataset: str | Dataset,
                      config: RecoveryConfig = RecoveryConfig(), cache_dir: str | os.PathLike | None = None,
                      data_dir: str | os.PathLike | None = None, progress: bool = True,
                      keras_model: str | os.PathLike | None = None) -> tuple[MaskedNetwork, dict]:
    """:func:`recover`, cached under ``<cache>/recovered/``, keyed by the dense weights and every setting.

    A conv network needs ``keras_model`` (see :func:`finetune`) to train, not to be read from
    the cache; its entry is a :mod:`sparsenet._conv_npz` file, read without tensorflow.

    ``dataset`` is a built-in dataset's name, or the data itself (a user's, e.g. from
    :func:`sparsenet.userdata.user_dataset`), whose training arrays then join the key."""
    check_choice("recovery stage", stage, RECOVERED_STAGES)
    key = recovery_key(net, stage, method, sparsity, scope, config)
    name = dataset if isinstance(dataset, str) else dataset.name
    if not isinstance(dataset, str):
        digest = hashlib.sha256(key.encode())
        for a in (dataset.x_train, dataset.y_train):
            digest.update(np.ascontiguousarray(a).tobytes())
        key = digest.hexdigest()[:12]
    directory = cache_root(cache_dir) / "recovered" / f"{name}-{stage}-{method}-{scope}-s{sparsity:g}-{key}"
    with entry_lock(directory, "this recovered network"):  # concurrent runs train it once
        manifest = read_manifest(directory / "manifest.json", key, key_field="key")
        if manifest is not None:
            try:
                masked = _load(directory / "network.npz", net)
            except (OSError, ValueError) as exc:
                print(f"cache entry {directory} is unusable ({exc}); training again", flush=True)
            else:
                return masked, manifest
        data = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
        if progress:
            print(f"  {stage} {name} {method}/{scope} at {sparsity:g}: {config.epochs} epochs "
                  f"(cached in {directory})", flush=True)
        masked, manifest = recover(net, stage, method, sparsity, scope, data, config, progress, keras_model)
        _save(directory / "network.npz", masked)
        write_json(directory / "manifest.json", {**manifest, "key": key})
        return masked, {**manifest, "key": key}


def recovery_key(net: Network, stage: str, method: str, sparsity: float, scope: str,
                 config: RecoveryConfig) -> str:
    """12 hex digits over the dense weights, the settings, tensorflow's version and RECIPE_VERSION."""
    digest = hashlib.sha256()
    for layer in net.layers:
        digest.update(np.ascontiguousarray(layer.weight).tobytes())
        digest.update(b"" if layer.bias is None else np.ascontiguousarray(layer.bias).tobytes())
        digest.update(layer.activation.encode())
    payload = {"net": digest.hexdigest(), "stage": stage, "method": method, "sparsity": float(sparsity),
               "scope": scope, "config": dataclasses.asdict(config), "tensorflow": _keras.tf_version(),
               "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


# --- training with masks -------------------------------------------------------------------------

def _save(path, masked: MaskedNetwork) -> None:
    if masked.net.layer_kinds & SPATIAL_KINDS:
        save_conv_network(path, masked)
    else:
        save_masked(path, masked)


def _load(path, net: Network) -> MaskedNetwork:
    if not net.layer_kinds & SPATIAL_KINDS:
        return load_masked(path)
    masked = load_conv_network(path)
    if not isinstance(masked, MaskedNetwork) or [layer.weight.shape for layer in masked.net.layers] != [
            layer.weight.shape for layer in net.layers]:
        raise ValueError(f"{path} does not hold a masked network of this network's shape")
    return masked


def _fit(masked: MaskedNetwork, dataset: Dataset, config: RecoveryConfig, schedule: PolynomialDecay | None,
         progress: bool, keras_model=None) -> tuple[MaskedNetwork, dict]:
    """Train ``masked`` (masks fixed, or following ``schedule``); return it and a manifest."""
    net = masked.net
    if net.layer_kinds & SPATIAL_KINDS:
        from ._masked_conv import fit_conv

        return fit_conv(masked, dataset, config, schedule, keras_model, progress)
    if net.widths[0] != dataset.x_train.shape[1]:
        raise ValueError(f"network takes {net.widths[0]} inputs, {dataset.name} images have "
                         f"{dataset.x_train.shape[1]} pixels")
    tf, keras = _keras.import_tf()
    threads = _keras.configure_tf(tf, keras, config.seed)
    x, y = dataset.x_train[:config.train_samples].astype(net.dtype, copy=False), dataset.y_train[:config.train_samples]
    total_steps = config.epochs * config.steps_per_epoch()

    model = masked_model(keras, tf, net)
    model.set_masked_weights(masked)
    logits = net.layers[-1].activation == "linear"
    lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total_steps, alpha=0.0)
    optimizer = (keras.optimizers.Adam(lr) if config.optimizer == "adam"
                 else keras.optimizers.SGD(lr, momentum=0.9, nesterov=True))
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits), metrics=["accuracy"])
    batches = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=config.seed)
               .batch(config.batch_size).prefetch(2))
    callbacks = [_keras.epoch_log(keras, config.epochs, progress)]
    if schedule is not None:
        callbacks.append(gradual_callback(keras, schedule, masked.method, masked.scope))
    start = time.perf_counter()
    model.fit(batches, epochs=config.epochs, verbose=0, shuffle=False, callbacks=callbacks)  # shuffled above
    seconds = time.perf_counter() - start

    recovered = model.masked_network(masked)
    accuracy = float((predict(recovered.net, dataset.x_test.astype(net.dtype, copy=False)) == dataset.y_test).mean())
    history = callbacks[0].history
    return recovered, {
        "dataset": dataset.name, "method": masked.method, "scope": masked.scope,
        "sparsity": masked.sparsity, "achieved_sparsity": recovered.achieved_sparsity(),
        "epochs": config.epochs, "steps": total_steps, "config": dataclasses.asdict(config),
        "optimizer": (f"{'Adam' if config.optimizer == 'adam' else 'SGD, Nesterov momentum 0.9'}, learning rate "
                      f"{config.learning_rate:g} cosine-decayed to 0 over {total_steps} steps"),
        "test_accuracy": accuracy, "final_loss": history[-1]["loss"], "train_accuracy": history[-1]["accuracy"],
        "epoch_seconds": [round(h["seconds"], 3) for h in history], "train_seconds": round(seconds, 3),
        "threads": threads, "data_source": dataset.source,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
    }


def _kept(masked: MaskedNetwork) -> list[int]:
    """What the pruners count: kept weights (or units, rows with a kept weight) per pruned layer,
    or summed over them for global scope."""
    units = PRUNERS[masked.method].counts == "units"
    layers = masked.net.layers
    counts = [int(kind_of(layers[i]).unit_weights(keep).any(axis=1).sum() if units else keep.sum())
              for i, keep in enumerate(masked.masks.weight) if i in masked.pruned_layers]
    return counts if masked.scope == "layer" else [sum(counts)]


def _check_fixed_masks(before: MaskedNetwork, after: MaskedNetwork) -> None:
    for i, (old, new, layer) in enumerate(zip(before.masks.weight, after.masks.weight, after.net.layers)):
        if not np.array_equal(old, new):
            raise RuntimeError(f"layer {i}: the mask changed during fine-tuning ({int((old != new).sum())} entries)")
        revived = int(np.count_nonzero(layer.weight[~new]))
        if revived:
            raise RuntimeError(f"layer {i}: {revived} pruned weights are non-zero after fine-tuning")
    if after.achieved_sparsity() != before.achieved_sparsity():
        raise RuntimeError(f"achieved sparsity moved from {before.achieved_sparsity():.6f} to "
                           f"{after.achieved_sparsity():.6f} during fine-tuning")
