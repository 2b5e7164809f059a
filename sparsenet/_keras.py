"""What training (:mod:`sparsenet.train`) and recovery (:mod:`sparsenet.recover`) do alike with Keras.

Importing this module imports no tensorflow: every function takes ``tf``/``keras`` from
:func:`import_tf`, called only by code that really trains. Layers cross into sparsenet through
:func:`to_network` (the one place Keras weights become a :class:`~sparsenet.model.Network`).
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Sequence

import numpy as np

from .io import from_keras
from .model import Network


def import_tf():
    """``(tensorflow, keras)``, imported now, with tensorflow's C++ INFO/WARNING banners hidden."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors still show
    import keras
    import tensorflow as tf

    return tf, keras


def configure_tf(tf, keras, seed: int) -> int:
    """Seed everything, make ops deterministic, use every core we may run on; return the thread count."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for setter, getter in ((tf.config.threading.set_intra_op_parallelism_threads,
                            tf.config.threading.get_intra_op_parallelism_threads),
                           (tf.config.threading.set_inter_op_parallelism_threads,
                            tf.config.threading.get_inter_op_parallelism_threads)):
        try:
            setter(threads)
        except RuntimeError:  # the runtime is already up (an earlier training in this process)
            if getter() not in (0, threads):
                raise
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return threads


def tf_version() -> str:
    """The installed tensorflow version, read from package metadata so that a cache key (and so a
    cache hit) needs no tensorflow import."""
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    tf, _ = import_tf()
    return tf.__version__


def epoch_log(keras, epochs: int, progress: bool):
    """A Callback that records (and, if ``progress``, prints) loss, train accuracy and seconds per
    epoch in ``.history``; built on demand because keras is imported lazily."""

    class EpochLog(keras.callbacks.Callback):
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
                left = (epochs - epoch - 1) * sum(r["seconds"] for r in self.history) / len(self.history)
                eta = f", about {left / 60:.0f} min left" if left >= 60 else f", about {left:.0f} s left"
                eta = eta if left else ""
                print(f"epoch {epoch + 1}/{epochs}  loss {row['loss']:.4f}  train acc {row['accuracy']:.2%}  "
                      f"{seconds:.1f} s{eta}", flush=True)

    return EpochLog()


def dense_stack(keras, widths: Sequence[int], activations: Sequence[str], use_bias: Sequence[bool],
                dtype: str = "float32") -> list:
    """Unbuilt ``keras.layers.Dense`` layers ``dense0, dense1, ...`` of a ``widths`` MLP (the same
    names, so the same seeded initial weights, for training and recovery)."""
    return [keras.layers.Dense(width, activation=act, use_bias=bias, dtype=dtype, name=f"dense{i}")
            for i, (width, act, bias) in enumerate(zip(widths[1:], activations, use_bias))]


def to_network(stack: Sequence, activations: Sequence[str]) -> Network:
    """The :class:`~sparsenet.model.Network` holding the current weights of the Dense ``stack``."""
    return from_keras([np.asarray(dense.kernel.numpy()) for dense in stack],
                      [np.asarray(dense.bias.numpy()) if dense.use_bias else None for dense in stack],
                      activations)
