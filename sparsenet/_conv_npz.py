"""Cache files for networks of any layer kind (conv networks too), read without tensorflow.

:func:`sparsenet.save_network` writes dense layers only (its ``.npz`` is a public file with a
versioned layout); the caches of trained and recovered conv networks need every kind, so they
use this private layout instead: one ``.npz`` holding ``spec`` (a JSON string: per layer its kind
and every field that is not an array, plus the pruning settings of a masked network) and the
arrays ``layer{i}/weight``, ``layer{i}/bias``, ``mask{i}/weight``, ``mask{i}/bias``. It is read
through :func:`sparsenet.io.read_arrays` (sizes checked from the headers, no pickles) and the
layers are rebuilt through their classes, whose checks run again; anything wrong is a
:class:`~sparsenet.errors.FileFormatError`, and a cache reader then trains again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .files import atomic_path
from .io import read_arrays
from .layers import LAYER_KINDS
from .model import MaskedNetwork, Masks, Network

SPEC_VERSION = 1
_ARRAY_FIELDS = ("weight", "bias")


def save_conv_network(path: str | os.PathLike, net: Network | MaskedNetwork) -> Path:
    """Write ``net`` (a Network, or a MaskedNetwork with its masks and settings) to ``path``."""
    masked = net if isinstance(net, MaskedNetwork) else None
    net = masked.net if masked is not None else net
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, layer in enumerate(net.layers):
        fields = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.name not in _ARRAY_FIELDS}
        layers.append({"kind": layer.kind, "fields": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in fields.items()}})
        names = {f.name for f in dataclasses.fields(layer)}
        if "weight" in names:
            arrays[f"layer{i}/weight"] = layer.weight
        if "bias" in names and layer.bias is not None:
            arrays[f"layer{i}/bias"] = layer.bias
        if masked is not None:
            arrays[f"mask{i}/weight"] = masked.masks.weight[i]
            if masked.masks.bias[i] is not None:
                arrays[f"mask{i}/bias"] = masked.masks.bias[i]
    spec = {"version": SPEC_VERSION, "layers": layers}
    if masked is not None:
        spec["masked"] = {"method": masked.method, "sparsity": masked.sparsity, "scope": masked.scope,
                          "pruned_layers": list(masked.pruned_layers)}
    arrays["spec"] = np.array(json.dumps(spec))
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def load_conv_network(path: str | os.PathLike) -> Network | MaskedNetwork:
    """Read what :func:`save_conv_network` wrote: a Network, or a MaskedNetwork if masks were saved."""
    path = Path(path)
    arrays = read_arrays(path)
    try:
        spec = json.loads(str(arrays["spec"][()]))
        if spec.get("version") != SPEC_VERSION:
            raise ValueError(f"spec version {spec.get('version')!r}, expected {SPEC_VERSION}")
        layers = []
        for i, entry in enumerate(spec["layers"]):
            cls = LAYER_KINDS[entry["kind"]].layer
            names = {f.name for f in dataclasses.fields(cls)}
            fields = dict(entry["fields"])
            if "weight" in names:
                fields["weight"] = arrays[f"layer{i}/weight"]
            if "bias" in names:
                fields["bias"] = arrays.get(f"layer{i}/bias")
            layers.append(cls(**fields))
        net = Network(tuple(layers))
        if "masked" not in spec:
            return net
        info = spec["masked"]
        masks = Masks(tuple(arrays[f"mask{i}/weight"].astype(bool) for i in range(len(layers))),
                      tuple(None if f"mask{i}/bias" not in arrays else arrays[f"mask{i}/bias"].astype(bool)
                            for i in range(len(layers))))
        for i, (layer, keep) in enumerate(zip(layers, masks.weight)):
            if keep.shape != layer.weight.shape:
                raise ValueError(f"mask{i}/weight has shape {keep.shape}, the layer's weight {layer.weight.shape}")
        return MaskedNetwork(net, masks, str(info["method"]), float(info["sparsity"]), str(info["scope"]),
                             tuple(int(i) for i in info["pruned_layers"]))
    except FileFormatError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise FileFormatError(path, f"is not a sparsenet conv cache file ({type(exc).__name__}: {exc})") from None
