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

Reading is bounded and total: :func:`_read` opens the zip directory and each member's ``.npy``
header first and refuses, before anything is decompressed or allocated, object dtypes, shapes
whose size disagrees with the member's uncompressed size, and archives whose arrays add up to
more than ``max_bytes`` (default :data:`MAX_BYTES`; pass a larger ``max_bytes=`` to read a
bigger network). Every problem is a :class:`~sparsenet.errors.FileFormatError` naming the file,
the key and the rule.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .errors import FileFormatError
from .files import atomic_path
from .model import Layer, MaskedNetwork, Masks, Network

FORMAT_VERSION = 1
# Most bytes the arrays of one .npz may hold once loaded (the reference 784-1000-1000-500-200-10
# network is 11 MB in float32, 22 MB in float64); raise it with ``max_bytes=``.
MAX_BYTES = 1 << 30
_MAX_MEMBERS = 10_000  # keys in one archive: a network has a handful per layer
_KEY = re.compile(r"(?:layer(\d+)/(?:weight|bias)|masks/(?:weight|bias)(\d+)|format_version|activations|pruning"
                  r"|sparsity|pruned_layers)")


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


def load_masked(path: str | os.PathLike, max_bytes: int | None = None) -> MaskedNetwork:
    """Read a file written by :func:`save_masked`; every problem (a mask that does not match its
    layer, an unknown method or scope, a sparsity outside [0, 1), a layer index outside the
    network) is a :class:`~sparsenet.errors.FileFormatError` naming it."""
    from .prune import PRUNERS, SCOPES  # prune imports the model, not io: no cycle, but keep it lazy

    path = Path(path)
    arrays = _read(path, max_bytes)
    net = _network_from(path, arrays)
    for key in ("pruning", "sparsity", "pruned_layers"):
        if key not in arrays:
            raise FileFormatError(path, f"missing key {key!r}; a network file without masks (use load_network)")
    weight, bias = [], []
    for i, layer in enumerate(net.layers):
        wkey, bkey = f"masks/weight{i}", f"masks/bias{i}"
        keep = arrays.get(wkey)
        if keep is None or keep.dtype != bool or keep.shape != layer.weight.shape:
            raise FileFormatError(path, f"must be a bool array of shape {layer.weight.shape}, "
                                  f"found {None if keep is None else (keep.dtype, keep.shape)}", wkey)
        keep_b = arrays.get(bkey)
        if (layer.bias is None) != (keep_b is None) or (keep_b is not None and (
                keep_b.shape != layer.bias.shape or keep_b.dtype != bool)):
            raise FileFormatError(path, f"must exist exactly where layer {i} has a bias, as a bool array of "
                                  "shape (n_out,)", bkey)
        weight.append(keep)
        bias.append(keep_b)
    extra = sorted(k for k in arrays if k.startswith("masks/") and int(re.sub(r"\D", "", k)) >= len(net.layers))
    if extra:
        raise FileFormatError(path, f"keys {extra} name layers the network does not have ({len(net.layers)})")
    pruning = arrays["pruning"]
    if pruning.dtype.kind != "U" or pruning.shape != (2,):
        raise FileFormatError(path, f"must be a str array [method, scope], found {pruning.dtype} {pruning.shape}",
                              "pruning")
    method, scope = (str(v) for v in pruning)
    if method not in PRUNERS:
        raise FileFormatError(path, f"unknown pruning method {method!r}; expected one of {sorted(PRUNERS)}", "pruning")
    if scope not in SCOPES:
        raise FileFormatError(path, f"unknown scope {scope!r}; expected one of {sorted(SCOPES)}", "pruning")
    sparsity = arrays["sparsity"]
    if sparsity.dtype.kind != "f" or sparsity.shape != () or not 0.0 <= float(sparsity) < 1.0:
        raise FileFormatError(path, f"must be a float scalar in [0, 1), found {sparsity.dtype} {sparsity.shape} "
                              f"{sparsity.tolist() if sparsity.size <= 4 else '...'}", "sparsity")
    layers = arrays["pruned_layers"]
    n = len(net.layers)
    if layers.dtype.kind not in "iu" or layers.ndim != 1:
        raise FileFormatError(path, f"must be a 1-D int array, found {layers.dtype} {layers.shape}", "pruned_layers")
    idx = [int(i) for i in layers]
    if any(not 0 <= i < n for i in idx) or len(set(idx)) != len(idx):
        raise FileFormatError(path, f"must be distinct layer indices in 0..{n - 1}, found {idx[:8]}", "pruned_layers")
    try:
        return MaskedNetwork(net, Masks(tuple(weight), tuple(bias)), method, float(sparsity), scope, tuple(idx))
    except (ValueError, TypeError) as exc:
        raise FileFormatError(path, str(exc)) from None


def _network_arrays(net: Network) -> dict[str, np.ndarray]:
    if net.layer_kinds != {"dense"}:
        raise NotImplementedError(f"a .npz network file holds dense layers only; this network also has "
                                  f"{sorted(net.layer_kinds - {'dense'})}: keep a conv network as its Keras file "
                                  "(sparsenet.train_conv caches model.keras; sparsenet.load_model reads it)")
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


def read_arrays(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, each checked from its header before it is read
    (module docstring): ``FileFormatError`` for anything wrong, ``FileNotFoundError`` if absent."""
    return _read(Path(path), max_bytes)


def _read(path: Path, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no network file at {path}; train and export one with "
                                "`python -m sparsenet.train --dataset mnist` or pass the right path")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_members(path, archive, max_bytes)
    except FileFormatError:
        raise
    except zipfile.BadZipFile as exc:
        raise FileFormatError(path, f"not a readable .npz (zip) archive ({exc}); the file is corrupt or truncated, "
                              "export the network again") from None
    except Exception as exc:  # noqa: BLE001 -- zipfile/zlib/numpy raise many kinds on damaged bytes
        raise FileFormatError(path, f"not a readable .npz archive ({type(exc).__name__}: {exc}); the file is "
                              "corrupt or truncated, export the network again") from None


def _read_members(path: Path, archive: zipfile.ZipFile, max_bytes: int | None) -> dict[str, np.ndarray]:
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes  # read at call time: tests lower it
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise FileFormatError(path, f"holds {len(infos)} members, more than {_MAX_MEMBERS}")
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes + 1024 * len(infos):  # each .npy header is at most a few hundred bytes
        raise FileFormatError(path, f"declares {declared} uncompressed bytes, more than the cap of {max_bytes} "
                              "(pass max_bytes= to read a larger network)")
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for info in infos:
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if not info.filename.endswith(".npy") or key in arrays:
            raise FileFormatError(path, "not a .npy member, or a duplicate", key)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(path, f"compression method {info.compress_type} is not stored or deflate", key)
        with archive.open(info) as member:
            try:
                version = npy_format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(member)
                else:
                    raise ValueError(f"npy format version {version} is not 1.0 or 2.0")
            except (ValueError, TypeError, SyntaxError, OverflowError, EOFError) as exc:
                raise FileFormatError(path, f"bad .npy header ({exc})", key) from None
            if dtype.hasobject or dtype.itemsize == 0:
                raise FileFormatError(path, f"dtype {dtype} is not a plain numeric, bool or str dtype", key)
            if any(d < 0 for d in shape):
                raise FileFormatError(path, f"shape {shape} has a negative dimension", key)
            nbytes = math.prod(shape) * dtype.itemsize
            total += nbytes
            if total > max_bytes:
                raise FileFormatError(path, f"shape {shape} {dtype} brings the archive to {total} bytes, more than "
                                      f"the cap of {max_bytes} (pass max_bytes= to read a larger network)", key)
            if member.tell() + nbytes != info.file_size:
                raise FileFormatError(path, f"header declares {shape} {dtype} = {nbytes} bytes, but the member holds "
                                      f"{info.file_size - member.tell()}", key)
            data = bytearray(nbytes)
            if member.readinto(memoryview(data)) != nbytes if nbytes else False:
                raise FileFormatError(path, "truncated data", key)
        arrays[key] = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arrays


def _scalar_int(path: Path, arrays: dict[str, np.ndarray], key: str) -> int:
    a = arrays[key]
    if a.dtype.kind not in "iu" or a.shape not in ((), (1,)):
        raise FileFormatError(path, f"must be an integer scalar, found {a.dtype} {a.shape}", key)
    return int(a.reshape(()))


def load_network(path: str | os.PathLike, max_bytes: int | None = None) -> Network:
    """Read a network written by :func:`save_network`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    sparsenet.errors.FileFormatError
        (a ``ValueError``) anything wrong inside it, naming the key and the rule; also an archive
        whose arrays would exceed ``max_bytes`` (default :data:`MAX_BYTES`).
    """
    path = Path(path)
    return _network_from(path, _read(path, max_bytes))


def _network_from(path: Path, arrays: dict[str, np.ndarray]) -> Network:
    for key in ("format_version", "activations"):
        if key not in arrays:
            raise FileFormatError(path, f"missing key {key!r}; not a sparsenet network file")
    unknown = sorted(k for k in arrays if not _KEY.fullmatch(k))
    if unknown:
        raise FileFormatError(path, f"unexpected keys {unknown[:5]}; not a sparsenet network file "
                              "(keys are format_version, activations, layer{i}/weight|bias, masks/...)")
    version = _scalar_int(path, arrays, "format_version")
    if version != FORMAT_VERSION:
        raise FileFormatError(path, f"format_version {version}, expected {FORMAT_VERSION}", "format_version")
    acts = arrays["activations"]
    if acts.dtype.kind != "U" or acts.ndim > 1:
        raise FileFormatError(path, f"must be a 1-D str array, found {acts.dtype} {acts.shape}", "activations")
    activations = [str(a) for a in np.atleast_1d(acts)]
    layers = []
    for i, act in enumerate(activations):
        wkey, bkey = f"layer{i}/weight", f"layer{i}/bias"
        if wkey not in arrays:
            raise FileFormatError(path, f"missing key {wkey!r} ({len(activations)} activations listed)")
        try:
            layers.append(Layer(arrays[wkey], arrays.get(bkey), act))
        except (ValueError, TypeError) as exc:
            raise FileFormatError(path, str(exc)) from None
    extra = sorted(k for k in arrays if k.startswith("layer") and int(_KEY.fullmatch(k).group(1)) >= len(activations))
    if extra:
        raise FileFormatError(path, f"keys {extra} have no activation entry; the file is inconsistent")
    try:
        return Network(tuple(layers))
    except (ValueError, TypeError, OverflowError) as exc:
        raise FileFormatError(path, str(exc)) from None
