"""File sizes of pruned conv networks, which sparsenet's exporters do not write yet.

:func:`sparsenet.sizes.file_bytes` writes dense-only files (``.npz``, the compact ``.spz``), so
for networks with spatial layers the benchmark measures two files of its own, written for real:

- ``"dense"`` (and any non-sparse kind): every layer's weights and biases as float32, pruned
  entries 0, in an uncompressed ``.npz`` (the layout of sparsenet's conv cache files);
- ``"shrunk"``: the same file for the smaller network the ``shrunk`` format runs (deleted
  channels gone, :func:`sparsenet.formats.shrunk_conv.shrink`);
- ``"compact"``: each pruned layer as CSR over its units (``unit_weights`` rows: output channels)
  with float32 values, the narrowest column index type and int32 row pointers, the other layers
  dense, in a deflated ``.npz``; no geometry beyond a JSON line (it is a size, not an export).

Zipped sizes: the file in a deflate-9 zip (:func:`sparsenet.sizes.zipped_size`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from sparsenet.formats.shrunk_conv import shrink
from sparsenet.layers import kind_of
from sparsenet.model import MaskedNetwork
from sparsenet.sizes import zipped_size

__all__ = ["conv_file_bytes"]


def conv_file_bytes(masked: MaskedNetwork, saved_as: str) -> tuple[int, int]:
    """``(on_disk_bytes, zipped_bytes)`` of ``masked`` (a conv network) saved as ``saved_as``."""
    with tempfile.TemporaryDirectory(prefix="sparsenet-conv-size-") as tmp:
        if saved_as == "compact":
            path = _compact(masked, Path(tmp))
        else:
            path = _dense(shrink(masked) if saved_as == "shrunk" else masked, Path(tmp))
        return path.stat().st_size, zipped_size(path)


def _dense(masked: MaskedNetwork, folder: Path) -> Path:
    arrays: dict[str, np.ndarray] = {"spec": np.array(json.dumps([layer.kind for layer in masked.net.layers]))}
    for i, (w, b) in enumerate(zip(masked.masked_weights(), masked.masked_biases())):
        if w.size:
            arrays[f"layer{i}/weight"] = w
        if b is not None:
            arrays[f"layer{i}/bias"] = b
    path = folder / "network.npz"
    np.savez(path, **arrays)
    return path


def _compact(masked: MaskedNetwork, folder: Path) -> Path:
    arrays: dict[str, np.ndarray] = {"spec": np.array(json.dumps([layer.kind for layer in masked.net.layers]))}
    for i, (layer, w, b) in enumerate(zip(masked.net.layers, masked.masked_weights(), masked.masked_biases())):
        if w.size == 0:
            continue
        if b is not None:
            arrays[f"layer{i}/bias"] = b
        rows = kind_of(layer).unit_weights(w)
        if i not in masked.pruned_layers:
            arrays[f"layer{i}/weight"] = w
            continue
        keep = rows != 0
        index = np.uint16 if rows.shape[1] <= np.iinfo(np.uint16).max + 1 else np.int32
        arrays[f"layer{i}/data"] = rows[keep].astype(np.float32)
        arrays[f"layer{i}/indices"] = np.nonzero(keep)[1].astype(index)
        arrays[f"layer{i}/indptr"] = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    path = folder / "network-compact.npz"
    np.savez_compressed(path, **arrays)
    return path
