"""CIFAR-10 from its Python archive (numpy only), read safely and bounded.

:func:`load_cifar10` looks in these places, in order, and uses the first that holds the dataset:

1. the ``data_dir`` argument (``--data-dir``), then 2. ``$SPARSENET_DATA_DIR``; in each, the
   unpacked ``cifar-10-batches-py/`` folder (or the batch files in the directory itself), or the
   archive ``cifar-10-python.tar.gz`` (also under Keras' name ``cifar-10-batches-py.tar.gz``);
   ``data_dir`` may also be the archive itself;
3. Keras' download cache (``$KERAS_HOME`` or ``~/.keras``, then ``datasets/``), the same names;
4. a download of :data:`URL` into that cache (``download=True``), accepted only with the
   published MD5 (:data:`MD5`).

As for MNIST (:mod:`sparsenet.data`), a place with a corrupt file is an error naming the file,
never skipped, and a ``data_dir`` the caller named must hold the dataset. The batches are
Python pickles (``data_batch_1`` .. ``data_batch_5``, ``test_batch``; ``batches.meta``): a dict
with ``data``, a uint8 ``(n, 3072)`` array, each row one image as 1024 red, 1024 green and 1024
blue values in row-major order (CHW), and ``labels``, a list of n class ids. They are read with a
restricted unpickler that builds only dicts, lists, strings, numbers and uint8 arrays (numpy's
array and dtype reconstructors are replaced by checked stand-ins); any other global in a pickle
is an error naming it, so no code from a file ever runs. Every member is size-checked before it
is read (:data:`MAX_MEMBER_BYTES`), and shapes, dtypes, counts (1..10000 images per batch) and
labels (0..9) are checked.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import zlib
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .image_data import ImageDataset

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVES = ("cifar-10-python.tar.gz", "cifar-10-batches-py.tar.gz")  # the original name, Keras' name
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
MEMBERS = (*TRAIN_BATCHES, TEST_BATCH, META)
PER_BATCH, IMAGE_SIZE = 10000, 3 * 32 * 32
MAX_MEMBER_BYTES = 40 << 20  # a real batch pickle is 31 MB
MAX_ARCHIVE_BYTES = 256 << 20  # the real archive is 163 MiB
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _DType:
    """Stand-in for ``numpy.dtype`` in a pickle: only uint8 ('u1') is accepted."""

    def __init__(self, spec, align=0, copy=1):
        spec = spec.decode("latin1") if isinstance(spec, bytes) else spec
        if spec != "u1":
            raise pickle.UnpicklingError(f"an array of dtype {spec!r}; CIFAR-10 holds uint8 ('u1') only")

    def __setstate__(self, state):
        endian = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        if endian not in ("|", "<", "=", ">"):
            raise pickle.UnpicklingError(f"dtype state {state!r:.80}")


class _Array:
    """Stand-in for an ndarray being unpickled; ``.array`` holds the checked read-only result."""

    array: np.ndarray | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError(f"array state is not (version, shape, dtype, fortran, data): {state!r:.80}")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError("array without a uint8 dtype")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise pickle.UnpicklingError(f"array shape {shape!r:.80}")
        if isinstance(raw, str):  # a Python 2 str read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape)):
            raise pickle.UnpicklingError(f"array of shape {shape} with {len(raw) if isinstance(raw, bytes) else '?'} "
                                         "data bytes")
        self.array = np.frombuffer(raw, np.uint8).reshape(shape, order="F" if fortran else "C")


def _reconstruct(cls, shape, typecode):
    if cls is not _ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct of something other than an ndarray")
    return _Array()


def _encode(text, encoding="latin1"):  # how Python 3 writes bytes in a protocol-2 pickle
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


_ndarray = object()
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): _ndarray, ("numpy", "dtype"): _DType, ("_codecs", "encode"): _encode}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which a CIFAR-10 batch never holds "
                                         "(only dicts, lists, strings, numbers and uint8 arrays are read)") from None


def unpickle(blob: bytes, where: str) -> dict:
    """A CIFAR batch pickle as a dict with str keys and ndarray values; FileFormatError naming ``where``."""
    try:
        obj = _Unpickler(io.BytesIO(blob), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError) as exc:
        raise FileFormatError(where, f"is not a CIFAR-10 batch pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise FileFormatError(where, f"holds a pickled {type(obj).__name__}, expected a dict")
    out = {}
    for key, value in obj.items():
        key = key.decode("latin1") if isinstance(key, bytes) else key
        out[key] = value.array if isinstance(value, _Array) else value
    return out


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """CIFAR-10 as an :class:`~sparsenet.image_data.ImageDataset` (50000 + 10000 images 32x32x3 for the
    original), from the first place that holds it (see the module docstring).

    Raises
    ------
    sparsenet.data.DatasetNotFoundError
        No place holds it; the message lists every place tried and what to do.
    FileFormatError
        A file in the first place found is truncated, too big, unsafe or not CIFAR-10.
    """
    from .data import DatasetNotFoundError

    tried: list[str] = []
    for root, label in ((data_dir, "data_dir argument"), (os.environ.get("SPARSENET_DATA_DIR") or None,
                                                          "$SPARSENET_DATA_DIR"), (_keras_dir(), "Keras cache")):
        if root is None:
            continue
        root = Path(root).expanduser()
        for place in _candidates(root):
            problem = _missing(place)
            if problem is None:
                return _read(place)
            tried.append(f"{place} ({label}): {problem}")
        if label == "data_dir argument":
            raise DatasetNotFoundError(f"CIFAR-10 not found in the data_dir given ({data_dir}). Places tried:\n"
                                       + "".join(f"  - {t}\n" for t in tried) + _fixes())
    target = _keras_dir() / ARCHIVES[0]
    if not download:
        tried.append(f"download into {target}: not attempted (download=False)")
    else:
        failure = _download(target)
        if failure is None:
            return _read(target)
        tried.append(f"download into {target}: {failure}")
    raise DatasetNotFoundError("CIFAR-10 not found. Places tried, in order:\n" + "".join(f"  - {t}\n" for t in tried)
                               + _fixes())


def _fixes() -> str:
    return ("To fix it:\n"
            f"  - download {URL} (md5 {MD5}) and pass its directory, or the unpacked {FOLDER}/, with --data-dir DIR "
            "or SPARSENET_DATA_DIR=DIR\n"
            f"  - or go online once so that the download into {_keras_dir()} succeeds\n"
            "  - or train on the offline stand-in: dataset 'fashion_mnist_32'\n")


def _keras_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"


def _candidates(root: Path) -> list[Path]:
    if root.name.endswith(".tar.gz"):
        return [root]
    return [root / FOLDER, root, *(root / name for name in ARCHIVES)]


def _missing(place: Path) -> str | None:
    if place.name.endswith(".tar.gz"):
        return None if place.is_file() else "no such file"
    if not place.is_dir():
        return "no such directory"
    absent = [m for m in MEMBERS if not (place / m).is_file()]
    if len(absent) == len(MEMBERS):
        return f"directory exists but holds none of the batch files ({', '.join(MEMBERS)})"
    return f"incomplete, missing {', '.join(absent)}" if absent else None


def _read(place: Path) -> ImageDataset:
    blobs = _archive_members(place) if place.name.endswith(".tar.gz") else _folder_members(place)
    batches = {name: unpickle(blob, where) for name, (where, blob) in blobs.items()}
    meta = batches.pop(META)
    names = meta.get("label_names")
    if not (isinstance(names, list) and len(names) == 10):
        raise FileFormatError(blobs[META][0], f"label_names is {names!r:.80}, expected a list of 10 class names")
    train = [_images(batches[b], blobs[b][0]) for b in TRAIN_BATCHES]
    x_test, y_test = _images(batches[TEST_BATCH], blobs[TEST_BATCH][0])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    for a in (x_train, y_train, x_test, y_test):
        a.setflags(write=False)
    return ImageDataset("cifar10", x_train, y_train, x_test, y_test, str(place), (32, 32, 3))


def _images(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A checked batch as NHWC-flattened float32 in [0, 1] and int64 labels."""
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_SIZE:
        raise FileFormatError(where, f"'data' is {type(data).__name__} {getattr(data, 'dtype', '')} "
                                     f"{getattr(data, 'shape', '')}, expected uint8 (n, {IMAGE_SIZE})")
    n = data.shape[0]
    if not 1 <= n <= PER_BATCH:
        raise FileFormatError(where, f"holds {n} images, expected 1..{PER_BATCH}")
    if not (isinstance(labels, list) and len(labels) == n and all(type(v) is int for v in labels)):
        length = len(labels) if hasattr(labels, "__len__") else "?"
        raise FileFormatError(where, f"'labels' must be a list of {n} ints (one per image), found "
                                     f"{type(labels).__name__} of length {length}")
    y = np.asarray(labels, np.int64)
    if y.min() < 0 or y.max() > 9:
        raise FileFormatError(where, f"holds label {int(y.min() if y.min() < 0 else y.max())}, expected class ids 0..9")
    x = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).reshape(n, IMAGE_SIZE).astype(np.float32)
    x /= np.float32(255.0)
    return x, y


def _folder_members(folder: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for name in MEMBERS:
        path = folder / name
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise FileFormatError(path, f"is {size} bytes, more than the {MAX_MEMBER_BYTES} a CIFAR-10 batch may have "
                                        "(sparsenet.cifar10.MAX_MEMBER_BYTES)")
        out[name] = (str(path), path.read_bytes())
    return out


def _archive_members(path: Path) -> dict[str, tuple[str, bytes]]:
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise FileFormatError(path, f"is {size} bytes, more than the {MAX_ARCHIVE_BYTES} the CIFAR-10 archive may "
                                    "have (sparsenet.cifar10.MAX_ARCHIVE_BYTES)")
    out: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                folder, _, name = member.name.rpartition("/")
                if name not in MEMBERS or folder.strip("./") not in (FOLDER, "") or name in out:
                    continue
                where = f"{path}:{member.name}"
                if not member.isfile():
                    raise FileFormatError(where, "is not a regular file in the archive")
                if member.size > MAX_MEMBER_BYTES:
                    raise FileFormatError(where, f"is {member.size} bytes, more than the {MAX_MEMBER_BYTES} a batch "
                                                 "may have (sparsenet.cifar10.MAX_MEMBER_BYTES)")
                blob = tar.extractfile(member).read(MAX_MEMBER_BYTES + 1)
                if len(blob) != member.size:
                    raise FileFormatError(where, f"is truncated: {len(blob)} of {member.size} bytes")
                out[name] = (where, blob)
                if len(out) == len(MEMBERS):
                    break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise FileFormatError(path, f"is not a readable .tar.gz archive ({type(exc).__name__}: {exc})") from None
    absent = [m for m in MEMBERS if m not in out]
    if absent:
        raise FileFormatError(path, f"holds no {', '.join(absent)} (expected {FOLDER}/<name> members)")
    return out


def _download(target: Path) -> str | None:
    """Fetch :data:`URL` to ``target``, keep it only with the published MD5; None on success, else why not."""
    from .data import _fetch

    if target.is_file():
        return f"{target} exists but was not usable"
    try:
        _fetch(URL, target)
    except urllib.error.HTTPError as exc:
        return f"download of {URL} failed: HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return f"download of {URL} failed: {exc.reason}"
    except (OSError, ValueError) as exc:
        return f"download of {URL} failed: {exc}"
    found = hashlib.md5(target.read_bytes()).hexdigest()
    if found != MD5:
        target.unlink()
        return f"the downloaded file has md5 {found}, expected {MD5}; it was deleted"
    return None
