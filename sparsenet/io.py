"""Networks on disk: one dull ``.npz`` between training and everything else.

File layout (``FORMAT_VERSION = 1``)::

    format_version   int64 scalar, 1
    activations      str array, one name per layer ("relu", ..., "softmax")
    layer{i}/weight  float32|float64 (n_out, n_in)   -- sparsenet orientation, see model.py
    layer{i}/bias    same dtype (n_out,)              -- optional, per layer

:func:`save_masked` adds a pruning run's masks and what it was asked (the same file is still a
valid network file for :func:`load_network`)::

    masks/weight{i}  bool, same shape as layer{i}/weight (True: kept)
    masks/bias{i}    bool (n_out,), where the layer has a bias
    pruning          str array [method, scope]
    sparsity         float64 scalar, the sparsity asked for
    pruned_layers    int64 array, the layers pruning could touch

:func:`load_network` and :func:`load_masked` check all of it and name the key that is missing
or mis-shaped.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import atomic_path
from .model import Layer, MaskedNetwork, Masks, Network

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
    return _save(path, _network_arrays(net))


def save_masked(path: str | os.PathLike, masked: MaskedNetwork) -> Path:
    """Write a pruned network with its masks (see the module docstring), atomically."""
    arrays = _network_arrays(masked.net)
    for i, (keep_w, keep_b) in enumerate(zip(masked.masks.weight, masked.masks.bias)):
        arrays[f"masks/weight{i}"] = np.asarray(keep_w, dtype=bool)
        if keep_b is not None:
            arrays[f"masks/bias{i}"] = np.asarray(keep_b, dtype=bool)
    arrays["pruning"] = np.array([masked.method, masked.scope])
    arrays["sparsity"] = np.array(masked.sparsity, dtype=np.float64)
    arrays["pruned_layers"] = np.array(masked.pruned_layers, dtype=np.int64)
    return _save(path, arrays)


def load_masked(path: str | os.PathLike) -> MaskedNetwork:
    """Read a file written by :func:`save_masked`; a mask that does not match its layer is an error."""
    path = Path(path)
    net = load_network(path)
    arrays = _read(path)
    for key in ("pruning", "sparsity", "pruned_layers"):
        if key not in arrays:
            raise ValueError(f"{path}: missing key {key!r}; a network file without masks (use load_network)")
    weight, bias = [], []
    for i, layer in enumerate(net.layers):
        wkey, bkey = f"masks/weight{i}", f"masks/bias{i}"
        keep = arrays.get(wkey)
        if keep is None or keep.dtype != bool or keep.shape != layer.weight.shape:
            raise ValueError(f"{path}: {wkey} must be a bool array of shape {layer.weight.shape}, "
                             f"found {None if keep is None else (keep.dtype, keep.shape)}")
        keep_b = arrays.get(bkey)
        if (layer.bias is None) != (keep_b is None) or (keep_b is not None and keep_b.shape != layer.bias.shape):
            raise ValueError(f"{path}: {bkey} must exist exactly where layer {i} has a bias, with shape (n_out,)")
        weight.append(keep)
        bias.append(None if keep_b is None else keep_b.astype(bool))
    method, scope = (str(v) for v in arrays["pruning"])
    return MaskedNetwork(net, Masks(tuple(weight), tuple(bias)), method, float(arrays["sparsity"]), scope,
                         tuple(int(i) for i in arrays["pruned_layers"]))


def _network_arrays(net: Network) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "activations": np.array([layer.activation for layer in net.layers]),
    }
    for i, layer in enumerate(net.layers):
        arrays[f"layer{i}/weight"] = layer.weight
        if layer.bias is not None:
            arrays[f"layer{i}/bias"] = layer.bias
    return arrays


def _save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({exc}); the file is corrupt or truncated, "
                         "export the network again") from None


def load_network(path: str | os.PathLike) -> Network:
    """Read a network written by :func:`save_network`; every problem is a ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no network file at {path}; train and export one with "
                                "`python -m sparsenet.train --dataset mnist` or pass the right path")
    arrays = _read(path)
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
