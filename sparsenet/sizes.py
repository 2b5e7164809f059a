"""How big a pruned network is, three honest ways: in memory at inference, on disk, and zipped.

``in_memory_bytes``
    What a built format keeps for inference: every array it holds (weights, indices, biases,
    every internal copy; :func:`kept_bytes`). ``sparse`` holds CSR for batches and CSC or dense
    blocks for batch 1, and is counted with all of them; ``auto`` counts the candidates it has
    chosen so far.
``on_disk_bytes``
    The file the format is deployed from (its ``saved_as``): ``"dense"``, the float32 weight file
    with the pruned weights as zeros in place (:func:`sparsenet.io.save_network`, uncompressed
    ``.npz``: the file a framework writes); ``"shrunk"``, the same for the network with its dead
    units deleted; ``"compact"``, sparsenet's compact sparse file (:func:`sparsenet.export.save_pruned`,
    CSR with the narrowest index type, already deflated); ``"compact_int8"``, the same with int8
    values, per-unit scales and gap-coded indices (:func:`sparsenet.export_int8.save_quantized`);
    ``"tflite_int8"``, TensorFlow Lite's full-integer flatbuffer
    (:func:`sparsenet.formats.engines.tflite_int8.tflite_int8_bytes`; calibrated on the stand-in
    samples here: another calibration changes the scales, not the tensors; measured, the file by
    under 100 bytes of flatbuffer alignment).
``zipped_bytes``
    That file in a zip archive, deflate level 9: TensorFlow Model Optimization's "strip, then zip"
    measure of a pruned model (zeros compress; a dense file of random weights does not).

:func:`network_sizes` gives all three for a network and a format, and :func:`dense_file_bytes`
the reference every compression ratio is taken against: the unpruned float32 file.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .model import Layer, MaskedNetwork, Network

SAVED_AS = ("dense", "shrunk", "compact", "compact_int8", "tflite_int8")

__all__ = ["SAVED_AS", "Sizes", "dense_file_bytes", "file_bytes", "kept_bytes", "network_sizes", "zipped_size"]


class Sizes(NamedTuple):
    in_memory_bytes: int
    on_disk_bytes: int
    zipped_bytes: int
    saved_as: str


def kept_bytes(obj) -> int:
    """Bytes of every distinct numpy buffer reachable from ``obj`` through dataclass fields,
    instance attributes, tuples (NamedTuples included), lists and dict values. Views share their
    base buffer, which is counted once (a format that packs its layers into one flat array and
    keeps views of it pays for the flat array only)."""
    seen_objects: set[int] = set()
    buffers: dict[int, int] = {}
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen_objects or item is None or isinstance(item, (str, bytes, int, float, bool, type)):
            continue
        seen_objects.add(id(item))
        if isinstance(item, np.ndarray):
            base = item
            while isinstance(base.base, np.ndarray):
                base = base.base
            buffers[id(base)] = base.nbytes
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (tuple, list, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not callable(item):
            stack.extend(vars(item).values())
        elif hasattr(item, "__dataclass_fields__"):  # a slotted dataclass
            stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
    return sum(buffers.values())


def zipped_size(path: str | Path) -> int:
    """Bytes of a zip archive (deflate, level 9) holding the file at ``path``."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="sparsenet-size-") as tmp:
        archive = Path(tmp) / "file.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, arcname=path.name)
        return archive.stat().st_size


def _pruned_network(masked: MaskedNetwork, shrink: bool) -> Network:
    if shrink:
        from .formats.shrunk import ShrunkDenseForward

        shrunk = ShrunkDenseForward.build(masked)
        return Network(tuple(Layer(np.array(layer.weight_t.T), None if layer.bias is None else np.array(layer.bias),
                                   layer.activation) for layer in shrunk.layers))
    return Network(tuple(dataclasses.replace(layer, weight=w, bias=b)
                         for layer, w, b in zip(masked.net.layers, masked.masked_weights(), masked.masked_biases())))


def file_bytes(masked: MaskedNetwork, saved_as: str, folder: str | Path | None = None) -> tuple[int, int]:
    """``(on_disk_bytes, zipped_bytes)`` of ``masked`` written the way ``saved_as`` names (one of
    :data:`SAVED_AS`), measured on real files: in ``folder`` when given (``network.npz``,
    ``network.spz``, ``network-int8.spz`` or ``network-int8.tflite``, kept there), else in a temporary folder."""
    from .validation import check_choice

    check_choice("saved_as", saved_as, SAVED_AS)
    if folder is not None:
        return _write_and_measure(masked, saved_as, Path(folder))
    with tempfile.TemporaryDirectory(prefix="sparsenet-size-") as tmp:
        return _write_and_measure(masked, saved_as, Path(tmp))


def _write_and_measure(masked: MaskedNetwork, saved_as: str, folder: Path) -> tuple[int, int]:
    from .export import save_pruned
    from .io import save_network

    if saved_as == "compact":
        path = save_pruned(masked, folder / "network.spz", "compact")
    elif saved_as == "compact_int8":
        from .export_int8 import save_quantized
        from .quantize import quantize

        path = save_quantized(quantize(masked), folder / "network-int8.spz")
    elif saved_as == "tflite_int8":
        from .formats.engines.tflite_int8 import stand_in_calibration, tflite_int8_bytes

        path = folder / "network-int8.tflite"
        path.write_bytes(tflite_int8_bytes(masked, stand_in_calibration(masked.net.widths[0])))
    else:
        path = save_network(folder / "network.npz", _pruned_network(masked, shrink=saved_as == "shrunk"))
    return path.stat().st_size, zipped_size(path)


def dense_file_bytes(net: Network) -> int:
    """Bytes of the unpruned network's float32 weight file: the reference of every compression ratio."""
    from .io import save_network

    net32 = Network(tuple(dataclasses.replace(layer, weight=layer.weight.astype(np.float32),
                                              bias=None if layer.bias is None else layer.bias.astype(np.float32))
                          for layer in net.layers))
    with tempfile.TemporaryDirectory(prefix="sparsenet-size-") as tmp:
        return save_network(Path(tmp) / "network.npz", net32).stat().st_size


def network_sizes(masked: MaskedNetwork, forward) -> Sizes:
    """The three sizes of ``masked`` as the built format ``forward`` keeps and saves it."""
    on_disk, zipped = file_bytes(masked, forward.saved_as)
    return Sizes(int(forward.in_memory_bytes), on_disk, zipped, forward.saved_as)
