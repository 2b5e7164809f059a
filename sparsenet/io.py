"""Networks on disk: one dull ``.npz`` between training and everything else.

File layout (``FORMAT_VERSION = 1``)::

    format_version   int64 scalar, 1
    activations      str array, one name per layer ("relu", ..., "softmax")
    layer{i}/weight  float32|float64 (n_out, n_in)   -- sparsenet orientation, see model.py
    layer{i}/bias    same dtype (n_out,)              -- optional, per layer

:func:`load_network` checks all of it and names the key that is missing or mis-shaped.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ._files import atomic_path
from .model import Layer, Network

FORMAT_VERSION = 1


def from_keras(kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray | None],
               activations: Sequence[str]) -> Network:
    """Build a :class:`Network` from Keras ``Dense`` kernels ``(n_in, n_out)``: the one transpose."""
    if not (len(kernels) == len(biases) == len(activations)):
        raise ValueError(f"need one bias entry and one activation per kernel, found {len(kernels)} kernels, "
                         f"{len(biases)} biases, {len(activations)} activations")
    layers = []
    for kernel, bias, act in zip(kernels, biases, activations):
        kernel = np.asarray(kernel)
        if kernel.ndim != 2:
            raise ValueError(f"a Keras Dense kernel is 2-D (n_in, n_out), found shape {kernel.shape}")
        weight = np.ascontiguousarray(kernel.T)
        layers.append(Layer(weight, None if bias is None else np.asarray(bias, dtype=weight.dtype).copy(), act))
    return Network(tuple(layers))


def save_network(path: str | os.PathLike, net: Network) -> Path:
    """Write ``net`` to ``path`` (.npz) atomically: an existing file is replaced only when complete."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "activations": np.array([layer.activation for layer in net.layers]),
    }
    for i, layer in enumerate(net.layers):
        arrays[f"layer{i}/weight"] = layer.weight
        if layer.bias is not None:
            arrays[f"layer{i}/bias"] = layer.bias
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def load_network(path: str | os.PathLike) -> Network:
    """Read a network written by :func:`save_network`; every problem is a ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no network file at {path}; train and export one with "
                                "`python -m sparsenet.train --dataset mnist` or pass the right path")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({exc}); the file is corrupt or truncated, "
                         "export the network again") from None
    for key in ("format_version", "activations"):
        if key not in arrays:
            raise ValueError(f"{path}: missing key {key!r}; not a sparsenet network file")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version}, expected {FORMAT_VERSION}")
    activations = [str(a) for a in np.atleast_1d(arrays["activations"])]
    layers = []
    for i, act in enumerate(activations):
        wkey, bkey = f"layer{i}/weight", f"layer{i}/bias"
        if wkey not in arrays:
            raise ValueError(f"{path}: missing key {wkey!r} ({len(activations)} activations listed)")
        try:
            layers.append(Layer(arrays[wkey], arrays.get(bkey), act))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
    extra = sorted(k for k in arrays if k.startswith("layer") and int(k[5:].split("/")[0]) >= len(activations))
    if extra:
        raise ValueError(f"{path}: keys {extra} have no activation entry; the file is inconsistent")
    try:
        return Network(tuple(layers))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
