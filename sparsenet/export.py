"""The pruned network out: :func:`save_pruned` writes it for Keras, ONNX or as sparsenet's compact
sparse file, and :func:`load_pruned` reads the compact file back.

Output formats (``format=``, else from the suffix: ``.keras`` Keras, ``.onnx`` ONNX, anything else
the compact file; ``.spz`` is the suggested suffix):

``"keras"``
    A Keras Sequential model of Dense layers (built-in layers only: it loads in plain Keras
    without sparsenet). With ``shrink=False`` the pruned weights are zeros in place (same
    shapes as the original); with ``shrink=True`` the dead units are deleted (the ``shrunk``
    format's matrices, its folded biases included). Needs TensorFlow/Keras.
``"onnx"``
    An ONNX graph, opset 17: one ``Gemm`` (``transB=1``, bias as ``C`` where the layer has one)
    per layer, then ``Relu``/``Tanh``/``Sigmoid``/``Softmax`` nodes, and GELU as its elementwise
    form (``Div``, ``Erf``, ``Add``, ``Mul``, ``Mul``; the tanh form with ``Pow`` and ``Tanh``),
    because the ``Gelu`` op needs opset 20. Input ``x`` ``(N, n_in)``, output ``y``. ``shrink`` as for
    Keras. Needs the ``onnx`` package.
``"compact"``
    A zip (deflated) holding ``manifest.json`` and, per layer ``i``, CSR arrays
    ``layer{i}/indptr.npy``, ``layer{i}/indices.npy`` (each in the narrowest of uint8, uint16,
    int32 that holds its values), ``layer{i}/data.npy`` (the kept weights, the network's dtype),
    and where the layer has a bias ``layer{i}/bias.npy`` (pruned entries 0) and
    ``layer{i}/bias_mask.npy`` (np.packbits of the bias mask). The manifest (``format``
    ``"sparsenet-pruned"``, ``version`` 1) holds per layer ``shape`` (n_out, n_in), ``nnz``,
    ``activation``, ``index_dtype``, ``indptr_dtype``, ``bias``, and for the whole network ``dtype``,
    ``method``, ``sparsity``, ``scope``, ``pruned_layers``, ``achieved_sparsity``, and the optional
    ``accuracy`` and ``source``. Stored entries are the kept weights (a kept weight that is exactly 0
    is stored too), so :func:`load_pruned` gives back the same masks and outputs; the pruned
    weights' original values are not kept.
    Version 2 is the int8 file (int8 values, per-unit scales, gap-coded indices; written by
    :func:`sparsenet.export_int8.save_quantized`): :func:`load_pruned` reads it as the dequantized
    float network, :func:`sparsenet.export_int8.load_quantized` as the int8 network itself.

Outputs are the same in every format except where softmax is the output activation: Keras and ONNX
return probabilities (the softmax is in the model, as in the model imported), sparsenet formats
logits. Files are written atomically (:func:`sparsenet.files.atomic_path`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .files import atomic_path
from .layers import Layer
from .model import MaskedNetwork, Masks, Network

COMPACT_FORMAT = "sparsenet-pruned"
COMPACT_VERSION = 1
# versions load_pruned reads: 1 (float weights, written by save_pruned) and 2 (int8 weights and
# per-unit scales, written by sparsenet.export_int8.save_quantized; read back dequantized)
READ_VERSIONS = (1, 2)
ONNX_OPSET = 17
EXPORT_FORMATS = ("compact", "keras", "onnx")
_INDEX_DTYPES = (np.uint8, np.uint16, np.int32, np.int64)


def save_pruned(masked: MaskedNetwork, path: str | os.PathLike, format: str | None = None, *, shrink: bool = False,
                accuracy: float | None = None, source: str | None = None) -> Path:
    """Write ``masked`` to ``path`` as a Keras model, an ONNX graph or the compact sparse file.

    Parameters
    ----------
    masked
        The pruned network (from :func:`sparsenet.prune` or :func:`load_pruned`).
    path
        Where to write; the parent folder is created.
    format
        ``"keras"``, ``"onnx"`` or ``"compact"``; None picks from the suffix (``.keras``, ``.onnx``,
        anything else compact).
    shrink
        Keras and ONNX only: delete the dead units (smaller matrices, same outputs) instead of
        keeping zeros in place.
    accuracy, source
        Recorded in the compact file's manifest (e.g. the test accuracy and the model file it
        came from).

    Returns
    -------
    Path
        ``path``.
    """
    from .validation import check_choice

    path = Path(path)
    if format is None:
        format = {".keras": "keras", ".onnx": "onnx"}.get(path.suffix.lower(), "compact")
    check_choice("export format", format, EXPORT_FORMATS)
    if not isinstance(masked, MaskedNetwork):
        raise TypeError(f"save_pruned needs a MaskedNetwork (from sparsenet.prune), found {type(masked).__name__}")
    if masked.net.layer_kinds != {"dense"}:
        raise NotImplementedError(f"save_pruned writes dense-layer networks only; this one also has "
                                  f"{sorted(masked.net.layer_kinds - {'dense'})}")
    if format == "compact":
        if shrink:
            raise ValueError("shrink=True is for the keras and onnx formats; the compact file stores the masks "
                             "themselves (convert(load_pruned(path), 'shrunk') deletes the dead units)")
        _save_compact(masked, path, accuracy, source)
    elif format == "keras":
        if path.suffix.lower() != ".keras":
            raise ValueError(f"a Keras model file must end in .keras (Keras insists), found {path.name!r}")
        _save_keras(dense_layers(masked, shrink), path)
    else:
        _save_onnx(dense_layers(masked, shrink), path)
    return path


def dense_layers(masked: MaskedNetwork, shrink: bool = False) -> list[tuple[np.ndarray, np.ndarray | None, str]]:
    """``(kernel (n_in, n_out), bias or None, activation)`` per layer: the masked weights, or
    with ``shrink`` the ``shrunk`` format's (dead units deleted, their constants folded)."""
    if shrink:
        from .formats.shrunk import ShrunkDenseForward

        shrunk = ShrunkDenseForward.build(masked)
        return [(np.array(layer.weight_t), None if layer.bias is None else np.array(layer.bias), layer.activation)
                for layer in shrunk.layers]
    return [(w.T.copy(), b, layer.activation)
            for layer, w, b in zip(masked.net.layers, masked.masked_weights(), masked.masked_biases())]


# ---------------------------------------------------------------------------------------- Keras
def _save_keras(layers, path: Path) -> None:
    try:
        import keras
    except ImportError:
        raise ImportError("writing Keras models needs TensorFlow/Keras: pip install 'sparsenet[train]'") from None
    for i, (_, _, act) in enumerate(layers):
        if act == "gelu_tanh":
            raise NotImplementedError(f"layer {i}: Keras has no built-in activation name for GELU's tanh form "
                                      "(gelu_tanh); export to ONNX or the compact file instead")
    model = keras.Sequential([keras.Input((layers[0][0].shape[0],))] + [
        keras.layers.Dense(kernel.shape[1], activation=act, use_bias=bias is not None, name=f"dense_{i}")
        for i, (kernel, bias, act) in enumerate(layers)])
    for dense, (kernel, bias, _) in zip(model.layers, layers):
        dense.set_weights([kernel] if bias is None else [kernel, bias])
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


# ----------------------------------------------------------------------------------------- ONNX
def onnx_model_bytes(masked: MaskedNetwork, shrink: bool = False, logits: bool = False) -> bytes:
    """The ONNX graph :func:`save_pruned` writes for ``masked``, serialized in memory (what
    ``onnxruntime.InferenceSession`` takes).

    With ``logits`` an output softmax is left out, so that the graph returns logits as sparsenet's
    formats do (:mod:`sparsenet.formats.engines.ort`); ``shrink`` as for :func:`save_pruned`.
    Needs the ``onnx`` package.
    """
    layers = dense_layers(masked, shrink)
    if logits and layers[-1][2] == "softmax":
        layers[-1] = layers[-1][:2] + ("linear",)
    return _onnx_model(layers).SerializeToString()


def _save_onnx(layers, path: Path) -> None:
    model = _onnx_model(layers)  # first: it names the missing onnx package
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _onnx_model(layers):
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("writing ONNX models needs the onnx package: pip install 'sparsenet[onnx]'") from None
    dtype = layers[0][0].dtype
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[np.dtype(dtype)]
    nodes, inits, cur = [], [], "x"
    scalar = lambda name, v: inits.append(numpy_helper.from_array(np.asarray(v, dtype), name))
    for i, (kernel, bias, act) in enumerate(layers):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(kernel.T), f"W{i}"))
        ins = [cur, f"W{i}"]
        if bias is not None:
            inits.append(numpy_helper.from_array(np.asarray(bias), f"b{i}"))
            ins.append(f"b{i}")
        last = i == len(layers) - 1
        z = "y" if last and act in ("linear",) else f"z{i}"
        nodes.append(helper.make_node("Gemm", ins, [z], transB=1, name=f"fc{i}"))
        out = "y" if last else f"a{i}"
        if act in ("relu", "tanh", "sigmoid"):
            op = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act]
            nodes.append(helper.make_node(op, [z], [out], name=f"{act}{i}"))
        elif act == "relu6":
            scalar(f"relu6_{i}_lo", 0.0), scalar(f"relu6_{i}_hi", 6.0)
            nodes.append(helper.make_node("Clip", [z, f"relu6_{i}_lo", f"relu6_{i}_hi"], [out], name=f"relu6_{i}"))
        elif act == "softmax":
            nodes.append(helper.make_node("Softmax", [z], [out], axis=-1, name=f"softmax{i}"))
        elif act == "gelu":
            p = f"gelu{i}"
            scalar(f"{p}_sqrt2", np.sqrt(2.0)), scalar(f"{p}_one", 1.0), scalar(f"{p}_half", 0.5)
            nodes += [helper.make_node("Div", [z, f"{p}_sqrt2"], [f"{p}_d"], name=f"{p}_div"),
                      helper.make_node("Erf", [f"{p}_d"], [f"{p}_e"], name=f"{p}_erf"),
                      helper.make_node("Add", [f"{p}_e", f"{p}_one"], [f"{p}_e1"], name=f"{p}_add"),
                      helper.make_node("Mul", [z, f"{p}_e1"], [f"{p}_m"], name=f"{p}_mul"),
                      helper.make_node("Mul", [f"{p}_m", f"{p}_half"], [out], name=f"{p}_half_mul")]
        elif act == "gelu_tanh":
            p = f"gelu_tanh{i}"
            scalar(f"{p}_3", 3.0), scalar(f"{p}_c", 0.044715), scalar(f"{p}_k", np.sqrt(2 / np.pi))
            scalar(f"{p}_one", 1.0), scalar(f"{p}_half", 0.5)
            nodes += [helper.make_node("Pow", [z, f"{p}_3"], [f"{p}_x3"], name=f"{p}_pow"),
                      helper.make_node("Mul", [f"{p}_x3", f"{p}_c"], [f"{p}_cx3"], name=f"{p}_mul_c"),
                      helper.make_node("Add", [z, f"{p}_cx3"], [f"{p}_in"], name=f"{p}_add_in"),
                      helper.make_node("Mul", [f"{p}_in", f"{p}_k"], [f"{p}_kin"], name=f"{p}_mul_k"),
                      helper.make_node("Tanh", [f"{p}_kin"], [f"{p}_t"], name=f"{p}_tanh"),
                      helper.make_node("Add", [f"{p}_t", f"{p}_one"], [f"{p}_t1"], name=f"{p}_add_one"),
                      helper.make_node("Mul", [z, f"{p}_half"], [f"{p}_hx"], name=f"{p}_mul_half"),
                      helper.make_node("Mul", [f"{p}_hx", f"{p}_t1"], [out], name=f"{p}_out")]
        elif z != out:  # linear on a hidden layer: the next Gemm reads z
            out = z
        cur = out
    graph = helper.make_graph(nodes, "sparsenet_pruned",
                              [helper.make_tensor_value_info("x", elem, ["N", int(layers[0][0].shape[0])])],
                              [helper.make_tensor_value_info("y", elem, ["N", int(layers[-1][0].shape[1])])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="sparsenet")
    onnx.checker.check_model(model)
    return model


# -------------------------------------------------------------------------------------- compact
def index_dtype(max_value: int) -> np.dtype:
    """The narrowest of uint8, uint16, int32 (int64 beyond) that holds 0..max_value."""
    for dtype in _INDEX_DTYPES:
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"an index of {max_value} does not fit in int64")


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _save_compact(masked: MaskedNetwork, path: Path, accuracy, source) -> None:
    layers, members = [], {}
    for i, (layer, keep, bkeep) in enumerate(zip(masked.net.layers, masked.masks.weight, masked.masks.bias)):
        rows, cols = np.nonzero(keep)  # row-major: CSR order, columns sorted within a row
        indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        idx_dtype, ptr_dtype = index_dtype(layer.n_in - 1), index_dtype(int(indptr[-1]))
        members[f"layer{i}/indptr.npy"] = _npy(indptr.astype(ptr_dtype))
        members[f"layer{i}/indices.npy"] = _npy(cols.astype(idx_dtype))
        members[f"layer{i}/data.npy"] = _npy(layer.weight[rows, cols])
        if layer.bias is not None:
            members[f"layer{i}/bias.npy"] = _npy(np.where(bkeep, layer.bias, 0).astype(layer.bias.dtype))
            members[f"layer{i}/bias_mask.npy"] = _npy(np.packbits(bkeep))
        layers.append({"shape": [layer.n_out, layer.n_in], "nnz": int(rows.size), "activation": layer.activation,
                       "index_dtype": idx_dtype.name, "indptr_dtype": ptr_dtype.name, "bias": layer.bias is not None})
    manifest = {"format": COMPACT_FORMAT, "version": COMPACT_VERSION, "dtype": str(masked.net.dtype),
                "layers": layers, "method": masked.method, "sparsity": float(masked.sparsity), "scope": masked.scope,
                "pruned_layers": [int(i) for i in masked.pruned_layers],
                "achieved_sparsity": masked.achieved_sparsity(),
                "accuracy": None if accuracy is None else float(accuracy), "source": source}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        for name, data in members.items():
            zf.writestr(name, data)


def read_manifest(path: str | os.PathLike) -> dict:
    """The compact file's manifest (method, sparsity, accuracy, source, ...) without its arrays."""
    with _open_zip(Path(path)) as zf:
        return _manifest(Path(path), zf)


def load_pruned(path: str | os.PathLike) -> MaskedNetwork:
    """Read a compact file written by :func:`save_pruned` back as a :class:`sparsenet.MaskedNetwork`.

    Pruned weights are 0 in the returned network (their values were not stored); the masks,
    and so every format's outputs, are the saved ones.

    Raises
    ------
    FileFormatError
        The file is not a compact sparsenet file, is truncated, or an array breaks CSR's rules
        (named by member).
    """
    path = Path(path)
    with _open_zip(path) as zf:
        manifest = _manifest(path, zf)
        if manifest["version"] == 2:
            from .export_int8 import load_quantized

            return load_quantized(path).dequantized()
        dtype = np.dtype(manifest["dtype"])
        layers, keeps, bkeeps = [], [], []
        for i, spec in enumerate(manifest["layers"]):
            n_out, n_in = spec["shape"]
            indptr = _array(path, zf, f"layer{i}/indptr.npy", (n_out + 1,)).astype(np.int64)
            indices = _array(path, zf, f"layer{i}/indices.npy", (spec["nnz"],)).astype(np.int64)
            data = _array(path, zf, f"layer{i}/data.npy", (spec["nnz"],), dtype)
            if indptr[0] != 0 or indptr[-1] != spec["nnz"] or (np.diff(indptr) < 0).any():
                raise FileFormatError(path, "indptr must rise from 0 to nnz", field=f"layer{i}/indptr.npy")
            if indices.size and (indices.min() < 0 or indices.max() >= n_in):
                raise FileFormatError(path, f"column indices must be in [0, {n_in})", field=f"layer{i}/indices.npy")
            rows = np.repeat(np.arange(n_out), np.diff(indptr))
            weight, keep = np.zeros((n_out, n_in), dtype), np.zeros((n_out, n_in), bool)
            weight[rows, indices] = data
            keep[rows, indices] = True
            if int(keep.sum()) != spec["nnz"]:
                raise FileFormatError(path, "a column appears twice in one row", field=f"layer{i}/indices.npy")
            bias = bkeep = None
            if spec["bias"]:
                bias = _array(path, zf, f"layer{i}/bias.npy", (n_out,), dtype)
                packed = _array(path, zf, f"layer{i}/bias_mask.npy", ((n_out + 7) // 8,), np.uint8)
                bkeep = np.unpackbits(packed)[:n_out].astype(bool)
            layers.append(Layer(weight, bias, spec["activation"]))
            keeps.append(keep)
            bkeeps.append(bkeep)
    try:
        net = Network(tuple(layers))
    except (TypeError, ValueError) as exc:
        raise FileFormatError(path, f"the layers do not make a network: {exc}") from None
    return MaskedNetwork(net, Masks(tuple(keeps), tuple(bkeeps)), manifest["method"], manifest["sparsity"],
                         manifest.get("scope", "layer"), tuple(manifest.get("pruned_layers", ())))


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(path, f"is not a compact sparsenet file (not a zip archive: {exc})") from None


def _member(path: Path, zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise FileFormatError(path, "missing from the archive", field=name) from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # truncated or corrupt member
        raise FileFormatError(path, f"cannot be read ({exc})", field=name) from None


def _manifest(path: Path, zf: zipfile.ZipFile) -> dict:
    try:
        manifest = json.loads(_member(path, zf, "manifest.json"))
    except ValueError as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(path, f"is not JSON ({exc})", field="manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != COMPACT_FORMAT:
        raise FileFormatError(path, f"is not a compact sparsenet file (format {COMPACT_FORMAT!r} expected)",
                              field="manifest.json")
    if manifest.get("version") not in READ_VERSIONS:
        raise FileFormatError(path, f"version {manifest.get('version')!r}; this sparsenet reads versions "
                                    f"{list(READ_VERSIONS)} (upgrade sparsenet)", field="manifest.json")
    for key in ("dtype", "layers", "method", "sparsity"):
        if key not in manifest:
            raise FileFormatError(path, f"lacks {key!r}", field="manifest.json")
    try:
        for spec in manifest["layers"]:
            n_out, n_in = (int(v) for v in spec["shape"])
            if n_out <= 0 or n_in <= 0 or int(spec["nnz"]) < 0 or not isinstance(spec["activation"], str):
                raise ValueError
            spec["bias"] = bool(spec.get("bias", False))
        if np.dtype(manifest["dtype"]) not in (np.float32, np.float64):
            raise ValueError
    except (TypeError, ValueError, KeyError):
        raise FileFormatError(path, "malformed layer list or dtype", field="manifest.json") from None
    return manifest


def _array(path: Path, zf: zipfile.ZipFile, name: str, shape: tuple, dtype=None) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(_member(path, zf, name)), allow_pickle=False)
    except FileFormatError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(path, f"is not a valid .npy array ({exc})", field=name) from None
    if array.shape != shape:
        raise FileFormatError(path, f"shape {array.shape}, expected {shape}", field=name)
    if dtype is None and array.dtype.kind not in "iu":
        raise FileFormatError(path, f"dtype {array.dtype}, expected an integer index type", field=name)
    if dtype is not None and array.dtype != dtype:
        raise FileFormatError(path, f"dtype {array.dtype}, expected {np.dtype(dtype)}", field=name)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise FileFormatError(path, "holds NaN/inf values", field=name)
    return array


__all__ = ["COMPACT_FORMAT", "COMPACT_VERSION", "EXPORT_FORMATS", "ONNX_OPSET", "dense_layers", "index_dtype",
           "load_pruned", "onnx_model_bytes", "read_manifest", "save_pruned"]
