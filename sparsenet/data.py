"""MNIST and Fashion-MNIST from their original IDX files (numpy only, no tensorflow).

:func:`load_dataset` looks in these places, in order, and uses the first complete one:

1. the ``data_dir`` argument (``--data-dir`` on the command lines),
2. the directory in ``$SPARSENET_DATA_DIR``;
   for both, the files may sit in the directory itself or in a subdirectory named
   ``mnist`` / ``fashion-mnist`` / ``fashion_mnist``; MNIST may also be a Keras ``mnist.npz``,
3. standard places (:data:`STANDARD_DIRS`): Debian's ``dataset-fashion-mnist`` package,
   ``../shared/datasets/mnist`` beside the working directory and beside the repository,
4. Keras' download cache (``$KERAS_HOME`` or ``~/.keras``, then ``datasets/``),
5. a download into that cache (``download=True``).

A place with a corrupt file is an error, never skipped: a silently different data source would
make two reports disagree for no visible reason. A ``data_dir`` the caller named must hold the
dataset: when it does not, the load fails there (:class:`DatasetNotFoundError`) instead of
reading another place. When nothing is found, :class:`DatasetNotFoundError` lists every place
and what was wrong there.

Reading is bounded: a file larger than :data:`MAX_FILE_BYTES` is refused unread, a gzip IDX
file is inflated in chunks of :data:`CHUNK_BYTES` and refused as soon as it yields more than its
header declares (the header itself must declare the dataset's published shape), and bytes after
the gzip stream are refused for every dataset. Every problem inside a file is a
:class:`~sparsenet.errors.FileFormatError` (a ``ValueError``) naming the file and the rule.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .files import atomic_path
from .image_data import IMAGE_DATASETS, ImageDataset, load_image_dataset
from .io import read_arrays
from .validation import check_choice

DATASETS = ("fashion_mnist", "mnist")

N_TRAIN, N_TEST, ROWS, COLS = 60000, 10000, 28, 28
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: 0x08 (ubyte) then the number of dims (3 or 1)

# Dataset field -> original file name; the same four names for both datasets.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
SUBDIRS = {"fashion_mnist": ("fashion-mnist", "fashion_mnist"), "mnist": ("mnist",)}
TITLES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"}

# Relative paths are taken from the current directory when a load runs; the repository-relative
# one is parents[2] of this file (<repo>/sparsenet/data.py -> <repo>/..).
STANDARD_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
    "mnist": (Path("../shared/datasets/mnist"),
              Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"),
}

# Largest dataset file read at all (the biggest original, train-images, is 9.9 MB gzipped and
# Keras' mnist.npz 11 MB); a user with a bigger file can raise it: sparsenet.data.MAX_FILE_BYTES = ...
MAX_FILE_BYTES = 256 << 20
CHUNK_BYTES = 1 << 20  # most bytes one inflate step may produce

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DOWNLOAD_TIMEOUT_S = 15.0

# Published md5 of the original MNIST files (Fashion-MNIST publishes none we can rely on).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# Keras' mnist.npz: the file hash Keras itself checks, and the sha256 of each decoded uint8 array
# (computed from the md5-verified IDX files), so an npz rebuilt from the IDX files is accepted too.
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


class DatasetNotFoundError(FileNotFoundError):
    """No place held the dataset; the message lists each place tried and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A dataset split in train and test; arrays are read-only.

    ``x_*`` are float32 ``(n, 784)`` in [0, 1]; ``y_*`` are int64 class ids in 0..9;
    ``source`` names the directory or file the arrays were read from.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != ROWS * COLS:
                raise ValueError(f"x_{split} must be float32 (n, {ROWS * COLS}), found {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must be int64 ({x.shape[0]},) to match x_{split}, "
                                 f"found {y.dtype} {y.shape}")

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
                f"source={self.source!r})")


@dataclass(frozen=True)
class _Place:
    path: Path  # a directory holding the four IDX files, or an mnist.npz file
    label: str  # where this place comes from, for messages
    remedy: str  # what to do when a file here is corrupt
    last_of_user_dir: bool = False  # the last candidate under the caller's data_dir


def load_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> Dataset | ImageDataset:
    """Load ``name`` (one of :data:`DATASETS`) from the first place that holds it.

    The image datasets of conv networks (``"cifar10"``, ``"fashion_mnist_32"``:
    :data:`sparsenet.image_data.IMAGE_DATASETS`) are forwarded to
    :func:`sparsenet.image_data.load_image_dataset` and come back as its ``ImageDataset``.

    Parameters
    ----------
    name : {"fashion_mnist", "mnist"}
    data_dir : path, optional
        Searched first: a directory with the four ``*-ubyte.gz`` files (directly or in a
        ``mnist`` / ``fashion-mnist`` subdirectory), or for MNIST a Keras ``mnist.npz``.
    download : bool
        Download into the Keras cache when no other place has the files.

    Raises
    ------
    DatasetNotFoundError
        No place holds the dataset; the message lists each place and what was wrong.
    ValueError
        A file in the first place found is truncated, corrupt or not the expected dataset.
    """
    if name in IMAGE_DATASETS:  # the datasets of conv networks: sparsenet.image_data
        return load_image_dataset(name, data_dir, download)
    check_choice("dataset", name, DATASETS + IMAGE_DATASETS)
    tried: list[str] = []
    for place in _places(name, data_dir):
        problem = _missing(place.path)
        if problem is None:
            return _read(name, place)
        tried.append(f"{place.path} ({place.label}): {problem}")
        if place.last_of_user_dir:  # the caller named this directory: never read another one instead
            raise DatasetNotFoundError(f"{TITLES[name]} not found in the data_dir given ({data_dir}). "
                                       "Places tried:\n" + "".join(f"  - {t}\n" for t in tried)
                                       + f"Put the four files ({', '.join(IDX_FILES.values())}) there, "
                                       "or pass the directory that holds them.")
    keras_place = _keras_place(name)
    if not download:
        tried.append(f"download into {keras_place.path}: not attempted (download=False)")
    else:
        failure = _download(name, keras_place.path)
        if failure is None:
            return _read(name, keras_place)
        tried.append(f"download into {keras_place.path}: {failure}")
    raise DatasetNotFoundError(_not_found_message(name, tried))


def _places(name: str, data_dir: str | os.PathLike | None) -> list[_Place]:
    places: list[_Place] = []
    user_remedy = "replace it with an intact copy, or remove it so that other places are searched"
    for root, label in ((data_dir, "data_dir argument"),
                        (os.environ.get("SPARSENET_DATA_DIR") or None, "$SPARSENET_DATA_DIR")):
        if root is None:
            continue
        root = Path(root).expanduser()
        if root.suffix == ".npz":
            places.append(_Place(root, label, user_remedy))
        else:
            places += [_Place(d, label, user_remedy) for d in (root, *(root / sub for sub in SUBDIRS[name]))]
            if name == "mnist":
                places.append(_Place(root / "mnist.npz", label, user_remedy))
        if label == "data_dir argument":
            places[-1] = dataclasses.replace(places[-1], last_of_user_dir=True)
    remedy = ("reinstall it: sudo apt-get install --reinstall dataset-fashion-mnist" if name == "fashion_mnist"
              else "replace it with an intact copy (md5 sums in SOURCE.md beside it)")
    seen = set()
    for d in STANDARD_DIRS[name]:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            places.append(_Place(d.resolve(), "standard place", remedy))
    places.append(_keras_place(name))
    return places


def _keras_place(name: str) -> _Place:
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    path = home / "datasets" / ("fashion-mnist" if name == "fashion_mnist" else "mnist.npz")
    return _Place(path, "Keras download cache", "delete it so that the next load downloads it again")


def _missing(path: Path) -> str | None:
    """What keeps ``path`` from being a candidate, or None if all its files are there."""
    if path.suffix == ".npz":
        return None if path.is_file() else "no such file"
    if not path.is_dir():
        return "no such directory"
    absent = [f for f in IDX_FILES.values() if not (path / f).is_file()]
    if len(absent) == len(IDX_FILES):
        return f"directory exists but holds none of the {len(IDX_FILES)} *-ubyte.gz files"
    return f"incomplete, missing {', '.join(absent)}" if absent else None


def _read(name: str, place: _Place) -> Dataset:
    if place.path.suffix == ".npz":
        files = (place.path,)
    else:
        files = tuple(place.path / f for f in IDX_FILES.values())
    stats = tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    for path, _, size in stats:
        if size > MAX_FILE_BYTES:
            raise FileFormatError(path, f"is {size} bytes, more than the {MAX_FILE_BYTES} a dataset file may have "
                                  f"(sparsenet.data.MAX_FILE_BYTES); {place.remedy}")
    try:
        arrays = _decode_cached(name, stats)
    except ValueError as exc:
        raise FileFormatError(None, f"{exc}; {place.remedy}") from None
    return Dataset(name, *arrays, source=str(place.path))


@functools.lru_cache(maxsize=4)
def _decode_cached(name: str, stats: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, ...]:
    """Decoded, validated, read-only arrays; keyed by resolved file paths, mtimes and sizes."""
    paths = [Path(s[0]) for s in stats]
    if len(paths) == 1:
        raw = _read_mnist_npz(paths[0])
    else:
        raw = {field: _read_idx(path, field) for field, path in zip(IDX_FILES, paths)}
        if name == "mnist":
            for path in paths:
                found = hashlib.md5(path.read_bytes()).hexdigest()
                if found != MNIST_MD5[path.name]:
                    raise ValueError(f"{path} has md5 {found}, expected {MNIST_MD5[path.name]} "
                                     "(the published MNIST sum): it is not the original file")
    out = []
    for field in IDX_FILES:
        a = raw[field]
        if field.startswith("x"):
            a = a.reshape(a.shape[0], ROWS * COLS).astype(np.float32)
            a /= np.float32(255.0)
        else:
            a = a.astype(np.int64)
        a.setflags(write=False)
        out.append(a)
    return tuple(out)


def _read_idx(path: Path, field: str) -> np.ndarray:
    """Decode one gzip IDX file, checking the stream, magic number, dims, count and labels,
    inflating at most :data:`CHUNK_BYTES` at a time and never more than the header declares."""
    blob = path.read_bytes()
    if blob[:2] != b"\x1f\x8b":
        raise FileFormatError(path, f"is not a gzip file: it starts with {blob[:4]!r}, expected b'\\x1f\\x8b'")
    images = field.startswith("x")
    n_expected = N_TRAIN if field.endswith("train") else N_TEST
    header = 16 if images else 8
    dims = (n_expected, ROWS, COLS) if images else (n_expected,)
    size = header + int(np.prod(dims))  # what the header must declare; checked when it arrives
    # zlib rather than gzip.open: a truncated stream then yields what it holds, which we measure,
    # instead of an EOFError; wbits=16+ reads the gzip container and checks its CRC and length.
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data, feed, checked = bytearray(), blob, False
    while True:
        try:
            part = stream.decompress(feed, CHUNK_BYTES)
        except zlib.error as exc:
            raise FileFormatError(path, f"is corrupt: the gzip stream fails to decode ({exc})") from None
        data += part
        feed = stream.unconsumed_tail
        if not checked and len(data) >= header:
            _check_idx_header(path, bytes(data[:header]), images, dims)
            checked = True
        if len(data) > size:
            raise FileFormatError(path, f"has bytes after the {size - header} its header announces "
                                  f"(it inflates to more than {size} bytes)")
        if stream.eof or (not feed and not part):
            break
    if len(data) < header:
        raise FileFormatError(path, f"is truncated: {len(data)} bytes decompress, less than the "
                              f"{header}-byte IDX header")
    if len(data) < size:
        raise FileFormatError(path, f"is truncated: header says {'x'.join(map(str, dims))} = {size - header} "
                              f"bytes, found {len(data) - header}")
    if not stream.eof:
        raise FileFormatError(path, "is truncated: the data is complete but the gzip stream ends early "
                              "(no end-of-stream marker and checksum)")
    if stream.unused_data or stream.unconsumed_tail:
        raise FileFormatError(path, f"has {len(stream.unused_data) + len(stream.unconsumed_tail)} bytes after "
                              "the end of its gzip stream: not the original file")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    if not images and arr.max() > 9:
        raise FileFormatError(path, f"holds label {int(arr.max())}, expected class ids 0..9")
    return arr


def _check_idx_header(path: Path, head: bytes, images: bool, dims: tuple[int, ...]) -> None:
    magic, count = struct.unpack(">II", head[:8])
    want_magic = IMAGES_MAGIC if images else LABELS_MAGIC
    if magic != want_magic:
        raise FileFormatError(path, f"has IDX magic number {magic}, expected {want_magic} "
                              f"({'images' if images else 'labels'}): wrong or damaged file")
    if images:
        found = struct.unpack(">II", head[8:16])
        if found != (ROWS, COLS):
            raise FileFormatError(path, f"holds {found[0]}x{found[1]} images, expected {ROWS}x{COLS}")
    if count != dims[0]:
        raise FileFormatError(path, f"holds {count} items, expected {dims[0]}")


def _read_mnist_npz(path: Path) -> dict[str, np.ndarray]:
    """Keras' mnist.npz: uint8 x_train (60000, 28, 28), y_train (60000,), x_test, y_test."""
    arrays = read_arrays(path, max_bytes=MAX_FILE_BYTES)
    for field in IDX_FILES:
        n = N_TRAIN if field.endswith("train") else N_TEST
        shape = (n, ROWS, COLS) if field.startswith("x") else (n,)
        a = arrays.get(field)
        if a is None:
            raise ValueError(f"{path} has no array {field!r} (found {sorted(arrays)}); "
                             "expected Keras' mnist.npz with x_train, y_train, x_test, y_test")
        if a.dtype != np.uint8 or a.shape != shape:
            raise ValueError(f"{path}: {field} is {a.dtype} {a.shape}, expected uint8 {shape}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != MNIST_NPZ_SHA256:
        for field, want in MNIST_ARRAY_SHA256.items():
            found = hashlib.sha256(np.ascontiguousarray(arrays[field]).tobytes()).hexdigest()
            if found != want:
                raise ValueError(f"{path}: {field} differs from MNIST (sha256 {found[:12]}..., "
                                 f"expected {want[:12]}...): not the original data")
    return arrays


def _download(name: str, dest: Path) -> str | None:
    """Fetch the Keras copies into ``dest``; None on success, else why it failed."""
    files = ["mnist.npz"] if name == "mnist" else list(IDX_FILES.values())
    for fname in files:
        target = dest if name == "mnist" else dest / fname
        if target.is_file():
            continue
        url = KERAS_URL + fname
        try:
            _fetch(url, target)
        except urllib.error.HTTPError as exc:
            return f"download of {url} failed: HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            return f"download of {url} failed: {exc.reason}"
        except (OSError, ValueError) as exc:  # timeouts, resets, short reads, unwritable cache
            return f"download of {url} failed: {exc}"
    return None


def _fetch(url: str, target: Path) -> None:
    print(f"downloading {url} -> {target}", file=sys.stderr, flush=True)
    start, done, shown = time.perf_counter(), 0, -1
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
            atomic_path(target) as tmp, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        while chunk := response.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            step = 10 * done // total if total else -1
            if step > shown:
                shown = step
                print(f"  {done / 1e6:.1f} / {total / 1e6:.1f} MB", file=sys.stderr, flush=True)
        if total and done != total:
            raise ValueError(f"connection closed after {done} of {total} bytes")
    print(f"  done: {done / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _not_found_message(name: str, tried: list[str]) -> str:
    title = TITLES[name]
    fixes = []
    if name == "fashion_mnist":
        fixes.append("install the Debian package: sudo apt-get install dataset-fashion-mnist")
    npz = " (or Keras' mnist.npz)" if name == "mnist" else ""
    fixes += [f"put the four files ({', '.join(IDX_FILES.values())}){npz} in a directory and pass it with "
              "--data-dir DIR or SPARSENET_DATA_DIR=DIR",
              "or go online once so that the download into the Keras cache succeeds"]
    return (f"{title} not found. Places tried, in order:\n"
            + "".join(f"  - {t}\n" for t in tried)
            + "To fix it:\n" + "".join(f"  - {f}\n" for f in fixes))

