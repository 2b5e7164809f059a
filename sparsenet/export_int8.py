"""The int8 compact file: version 2 of sparsenet's compact sparse file (:mod:`sparsenet.export`).

Same container as version 1 (a deflated zip of ``manifest.json`` and ``.npy`` members, format
``"sparsenet-pruned"``), with ``"version": 2`` and, per layer ``i``:

``layer{i}/data.npy``
    int8, the kept weights' quantized values in CSR order (a kept weight that rounds to 0 is
    stored too, so the masks come back exactly);
``layer{i}/scale.npy``
    the per-unit weight scales (the manifest's ``dtype``; dequantized weight = data * scale[row]);
``layer{i}/indptr.npy``
    as version 1 (narrowest unsigned type);
``layer{i}/indices.npy`` (``"index_coding": "plain"``)
    column indices as version 1 (uint8/uint16/int32), or
``layer{i}/gaps.npy`` (``"index_coding": "delta8"``)
    uint8 gaps: in each row, ``col[k] - col[k - 1] - 1`` (``col[-1] = -1``), each gap written as
    ``gap // 255`` bytes of 255 followed by one byte ``gap % 255``;
``layer{i}/bias.npy``, ``layer{i}/bias_mask.npy``
    as version 1.

``save_quantized`` picks, per layer, the index coding with fewer raw bytes (delta8 wins once
the average gap is under 255 and the plain type is wider than one byte: uint16 indices of a
784- or 1000-wide layer at 95% sparsity become mostly single-byte gaps). The manifest adds
``values`` (``"int8"``), per layer ``index_coding``, and ``quantization``: ``mode``, ``scheme``,
``calibration`` and, in static mode, ``input_scales``.

:func:`load_quantized` gives the :class:`~sparsenet.quantize.QuantizedNetwork` back unchanged
(bit for bit), so ``SparseInt8Forward.build_quantized(load_quantized(path))`` runs the file
without quantizing again (:func:`load_sparse_int8`). :func:`sparsenet.load_pruned` reads version
2 files too, as the dequantized float network.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .export import COMPACT_FORMAT, _array, _manifest, _npy, _open_zip, index_dtype
from .files import atomic_path
from .model import MaskedNetwork
from .quantize import QMAX, QuantizedLayer, QuantizedNetwork, quantize
from .validation import ACTIVATION_NAMES, check_choice

INT8_VERSION = 2
INDEX_CODINGS = ("auto", "plain", "delta8")

__all__ = ["INDEX_CODINGS", "INT8_VERSION", "check_int8_path", "decode_gaps", "encode_gaps", "load_quantized",
           "load_sparse_int8", "load_sparse_int8_static", "save_int8", "save_quantized"]


def encode_gaps(indptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The delta8 byte stream of CSR column indices (rule in the module docstring)."""
    indptr = np.asarray(indptr, np.int64)
    cols = np.asarray(cols, np.int64)
    prev = np.empty_like(cols)
    if cols.size:
        prev[1:] = cols[:-1]
        prev[indptr[:-1][np.diff(indptr) > 0]] = -1  # the first entry of each row counts from -1
    gaps = cols - prev - 1
    n255 = gaps // 255
    ends = np.cumsum(n255 + 1) - 1
    out = np.full(int(ends[-1]) + 1 if ends.size else 0, 255, np.uint8)
    out[ends] = (gaps % 255).astype(np.uint8)
    return out


def decode_gaps(stream: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Column indices (int64) from a delta8 stream; ValueError if it does not hold exactly
    ``indptr[-1]`` entries."""
    stream = np.asarray(stream, np.uint8)
    indptr = np.asarray(indptr, np.int64)
    ends = np.flatnonzero(stream != 255)
    tail = bool(stream.size) and stream[-1] == 255
    if ends.size != indptr[-1] or tail:
        raise ValueError(f"the gap stream holds {ends.size} entries{' and an unterminated tail' if tail else ''}, "
                         f"expected {int(indptr[-1])}")
    starts = np.concatenate([[0], ends[:-1] + 1])
    gaps = (ends - starts) * 255 + stream[ends].astype(np.int64)
    run = np.cumsum(gaps + 1)
    base = np.concatenate([[0], run])[indptr[:-1]]
    return run - np.repeat(base, np.diff(indptr)) - 1


def save_quantized(qnet: QuantizedNetwork, path: str | os.PathLike, *, index_coding: str = "auto",
                   accuracy: float | None = None, source: str | None = None) -> Path:
    """Write ``qnet`` as an int8 compact file (version 2) at ``path``; returns ``path``.

    ``index_coding``: ``"auto"`` (per layer, whichever of plain and delta8 is smaller),
    ``"plain"`` or ``"delta8"`` (every layer). ``accuracy``, ``source``: recorded in the manifest.
    """
    check_choice("index coding", index_coding, INDEX_CODINGS)
    if not isinstance(qnet, QuantizedNetwork):
        raise TypeError(f"save_quantized needs a QuantizedNetwork (from sparsenet.quantize.quantize), "
                        f"found {type(qnet).__name__}")
    path = Path(path)
    layers, members = [], {}
    for i, layer in enumerate(qnet.layers):
        rows, cols = np.nonzero(layer.keep)
        indptr = np.concatenate([[0], np.cumsum(layer.keep.sum(axis=1))])
        idx_dtype, ptr_dtype = index_dtype(layer.n_in - 1), index_dtype(int(indptr[-1]))
        gaps = encode_gaps(indptr, cols)
        coding = index_coding
        if coding == "auto":
            coding = "delta8" if gaps.nbytes < cols.size * idx_dtype.itemsize else "plain"
        members[f"layer{i}/indptr.npy"] = _npy(indptr.astype(ptr_dtype))
        if coding == "delta8":
            members[f"layer{i}/gaps.npy"] = _npy(gaps)
        else:
            members[f"layer{i}/indices.npy"] = _npy(cols.astype(idx_dtype))
        members[f"layer{i}/data.npy"] = _npy(layer.q[rows, cols])
        members[f"layer{i}/scale.npy"] = _npy(layer.scale)
        if layer.bias is not None:
            members[f"layer{i}/bias.npy"] = _npy(layer.bias)
            members[f"layer{i}/bias_mask.npy"] = _npy(np.packbits(layer.bias_keep))
        layers.append({"shape": [layer.n_out, layer.n_in], "nnz": int(rows.size), "activation": layer.activation,
                       "index_coding": coding, "index_dtype": idx_dtype.name, "indptr_dtype": ptr_dtype.name,
                       "gap_bytes": int(gaps.size) if coding == "delta8" else None, "bias": layer.bias is not None})
    total = sum(layer.keep.size for layer in qnet.layers)
    manifest = {"format": COMPACT_FORMAT, "version": INT8_VERSION, "values": "int8", "dtype": str(qnet.dtype),
                "layers": layers, "method": qnet.method, "sparsity": float(qnet.sparsity), "scope": qnet.scope,
                "pruned_layers": [int(i) for i in qnet.pruned_layers],
                "achieved_sparsity": _achieved(qnet, total),
                "quantization": {"mode": qnet.mode, "scheme": f"symmetric int8 (+-{QMAX}), one scale per output unit",
                                 "calibration": qnet.calibration,
                                 "input_scales": ([float(layer.input_scale) for layer in qnet.layers]
                                                  if qnet.mode == "static" else None)},
                "accuracy": None if accuracy is None else float(accuracy), "source": source}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def check_int8_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ValueError for a Keras or ONNX name (the int8 export is the compact file only)."""
    path = Path(path)
    if path.suffix.lower() in (".keras", ".h5", ".onnx"):
        raise ValueError(f"{path.name}: the int8 export writes sparsenet's compact int8 file (e.g. pruned-int8.spz), "
                         "not Keras or ONNX; for a TFLite int8 model see the tflite_int8 format")
    return path


def save_int8(masked: MaskedNetwork, path: str | os.PathLike, *, index_coding: str = "auto",
              accuracy: float | None = None, source: str | None = None) -> Path:
    """Quantize a pruned network (weight-only int8, :func:`sparsenet.quantize.quantize`) and write it
    as an int8 compact file (:func:`save_quantized`; temporary file + rename, so a failed write
    leaves nothing at ``path``). What ``sparsenet export --int8`` runs; :func:`load_sparse_int8`
    runs the file. Returns ``path``.

    Raises
    ------
    TypeError
        ``masked`` is not a MaskedNetwork.
    NotImplementedError
        Layers other than dense, or a dtype other than float32 (the int8 formats run float32).
    ValueError
        An unknown ``index_coding``; ``path`` is a Keras or ONNX name (int8 is written as the compact file only).
    """
    path = check_int8_path(path)
    check_choice("index coding", index_coding, INDEX_CODINGS)
    if not isinstance(masked, MaskedNetwork):
        raise TypeError(f"save_int8 needs a MaskedNetwork (from sparsenet.prune), found {type(masked).__name__}")
    if masked.net.dtype != np.float32:
        raise NotImplementedError(f"the int8 formats run float32 networks; this one is {masked.net.dtype}: cast "
                                  "its weights and biases to float32 before pruning")
    return save_quantized(quantize(masked), path, index_coding=index_coding, accuracy=accuracy, source=source)


def _achieved(qnet: QuantizedNetwork, total: int) -> float:
    idx = qnet.pruned_layers or tuple(range(len(qnet.layers)))
    size = sum(qnet.layers[i].keep.size for i in idx)
    return 1.0 - sum(int(qnet.layers[i].keep.sum()) for i in idx) / size


def load_quantized(path: str | os.PathLike) -> QuantizedNetwork:
    """The QuantizedNetwork saved at ``path`` by :func:`save_quantized`.

    Raises
    ------
    FileFormatError
        Not a compact sparsenet file, a float (version 1) file (read it with
        :func:`sparsenet.load_pruned`), truncated, or an array breaks the rules (named by member).
    """
    path = Path(path)
    with _open_zip(path) as zf:
        manifest = _manifest(path, zf)
        if manifest["version"] != INT8_VERSION or manifest.get("values") != "int8":
            raise FileFormatError(path, f"version {manifest['version']} holds float weights, not int8; read it with "
                                        "sparsenet.load_pruned (and quantize with sparsenet.quantize.quantize)",
                                  field="manifest.json")
        quant = manifest.get("quantization")
        if not isinstance(quant, dict) or quant.get("mode") not in ("weights", "static"):
            raise FileFormatError(path, "lacks a valid 'quantization' entry (mode 'weights' or 'static')",
                                  field="manifest.json")
        scales_in = quant.get("input_scales") if quant["mode"] == "static" else None
        if quant["mode"] == "static" and (not isinstance(scales_in, list) or len(scales_in) != len(manifest["layers"])
                                          or not all(isinstance(s, (int, float)) and s > 0 for s in scales_in)):
            raise FileFormatError(path, "static mode needs one positive input scale per layer", field="manifest.json")
        dtype = np.dtype(manifest["dtype"])
        layers = []
        for i, spec in enumerate(manifest["layers"]):
            layers.append(_layer(path, zf, i, spec, dtype, None if scales_in is None else float(scales_in[i])))
    widths_ok = all(a.n_out == b.n_in for a, b in zip(layers[:-1], layers[1:]))
    if not layers or not widths_ok:
        raise FileFormatError(path, "the layers' shapes do not chain", field="manifest.json")
    return QuantizedNetwork(tuple(layers), quant["mode"], dtype, manifest["method"], float(manifest["sparsity"]),
                            manifest.get("scope", "layer"), tuple(manifest.get("pruned_layers", ())),
                            quant.get("calibration"))


def _layer(path, zf, i, spec, dtype, input_scale) -> QuantizedLayer:
    n_out, n_in = spec["shape"]
    nnz = spec["nnz"]
    if spec["activation"] not in ACTIVATION_NAMES:
        raise FileFormatError(path, f"layer {i}: unknown activation {spec['activation']!r}", field="manifest.json")
    indptr = _array(path, zf, f"layer{i}/indptr.npy", (n_out + 1,)).astype(np.int64)
    if indptr[0] != 0 or indptr[-1] != nnz or (np.diff(indptr) < 0).any():
        raise FileFormatError(path, "indptr must rise from 0 to nnz", field=f"layer{i}/indptr.npy")
    coding = spec.get("index_coding", "plain")
    if coding == "delta8":
        name = f"layer{i}/gaps.npy"
        stream = _array(path, zf, name, (int(spec.get("gap_bytes") or 0),))
        if stream.dtype != np.uint8:
            raise FileFormatError(path, f"dtype {stream.dtype}, expected uint8", field=name)
        try:
            cols = decode_gaps(stream, indptr)
        except ValueError as exc:
            raise FileFormatError(path, str(exc), field=name) from None
    elif coding == "plain":
        name = f"layer{i}/indices.npy"
        cols = _array(path, zf, name, (nnz,)).astype(np.int64)
    else:
        raise FileFormatError(path, f"layer {i}: unknown index_coding {coding!r}, expected 'plain' or 'delta8'",
                              field="manifest.json")
    rows = np.repeat(np.arange(n_out), np.diff(indptr))
    if cols.size and (cols.min() < 0 or cols.max() >= n_in or (np.diff(cols)[np.diff(rows) == 0] <= 0).any()):
        raise FileFormatError(path, f"column indices must rise within each row and lie in [0, {n_in})", field=name)
    data = _array(path, zf, f"layer{i}/data.npy", (nnz,), np.int8)
    if (data == -128).any():
        raise FileFormatError(path, f"holds -128; int8 values are symmetric, in [-{QMAX}, {QMAX}]",
                              field=f"layer{i}/data.npy")
    scale = _array(path, zf, f"layer{i}/scale.npy", (n_out,), dtype)
    if (scale <= 0).any():
        raise FileFormatError(path, "scales must be positive", field=f"layer{i}/scale.npy")
    q, keep = np.zeros((n_out, n_in), np.int8), np.zeros((n_out, n_in), bool)
    q[rows, cols] = data
    keep[rows, cols] = True
    bias = bkeep = None
    if spec["bias"]:
        bias = _array(path, zf, f"layer{i}/bias.npy", (n_out,), dtype)
        packed = _array(path, zf, f"layer{i}/bias_mask.npy", ((n_out + 7) // 8,), np.uint8)
        bkeep = np.unpackbits(packed)[:n_out].astype(bool)
    return QuantizedLayer(q, scale, bias, keep, bkeep, spec["activation"], input_scale)


def load_sparse_int8(path: str | os.PathLike):
    """The ``sparse_int8`` format straight from an int8 compact file (no float weights, no re-quantizing)."""
    from .formats.sparse_int8 import SparseInt8Forward

    return SparseInt8Forward.build_quantized(load_quantized(path))


def load_sparse_int8_static(path: str | os.PathLike):
    """The ``sparse_int8_static`` format straight from an int8 compact file written from a
    static-mode network (``save_quantized(quantize(masked, "static", x), path)``): its weights and
    calibrated input steps as stored, no float weights, no calibration data."""
    from .formats.sparse_int8_static import SparseInt8StaticForward

    return SparseInt8StaticForward.build_quantized(load_quantized(path))
