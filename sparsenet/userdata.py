"""A user's own evaluation (and training) data: ``.npz`` files with arrays ``x`` and ``y``.

``x`` holds the inputs, one sample per row (any trailing shape; it is flattened to
``(n, n_in)`` float32, the orientation every format takes), ``y`` the integer class labels
``0 .. n_classes - 1``. Everything is checked before any work starts, and each error names the
file, the array and the shape: a missing array, an empty one, mismatched lengths, non-finite
inputs, labels that are not integers or lie outside the network's classes, and an input width
the network does not take. Object arrays are never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LabelledData", "load_labelled", "user_dataset"]


@dataclass(frozen=True)
class LabelledData:
    """A user's dataset in the shape of :class:`sparsenet.data.Dataset` (``x_*`` float32
    ``(n, n_in)``, ``y_*`` int64). Without training data ``x_train`` has no rows."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def has_train(self) -> bool:
        return self.x_train.shape[0] > 0


def load_labelled(path: str | os.PathLike, n_in: int | None = None,
                  n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from ``path``: x float32 ``(n, n_in)``, y int64 ``(n,)``, checked as the module says."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file (expected an .npz with arrays 'x' and 'y')")
    if not zipfile.is_zipfile(path):  # else np.load takes it for a pickle and says to allow pickles
        raise ValueError(f"{path}: not a readable .npz file (not a zip archive: truncated, or another kind of "
                         "file); save the data with np.savez(path, x=inputs, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise ValueError(f"{path}: lacks array(s) {missing}; found {sorted(npz.files)}; "
                                 "save with np.savez(path, x=inputs, y=labels)")
            x, y = npz["x"], npz["y"]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a usable .npz file ({exc})") from None
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(f"{path}: array 'x' must hold at least one sample of at least one value, one sample "
                         f"per row, found shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{path}: array 'y' must be 1-D with one label per row of 'x' ({x.shape[0]},), "
                         f"found shape {y.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{path}: array 'x' must be numeric, found dtype {x.dtype}")
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: array 'x' holds {int(x.size - np.isfinite(x).sum())} NaN/inf values")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.array_equal(y, np.round(y))):
        raise TypeError(f"{path}: array 'y' must hold integer class labels, found dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_in is not None and x.shape[1] != n_in:
        raise ValueError(f"{path}: samples have {x.shape[1]} values (array 'x' {x.shape}), the network takes {n_in}")
    top = n_classes if n_classes is not None else None
    if y.min() < 0 or (top is not None and y.max() >= top):
        bad = y[(y < 0) | (y >= top)] if top is not None else y[y < 0]
        raise ValueError(f"{path}: labels must lie in 0..{'n_classes - 1' if top is None else top - 1}, found "
                         f"{bad.size} outside (e.g. {int(bad[0])})")
    return x, y


def user_dataset(test: str | os.PathLike, train: str | os.PathLike | None = None, n_in: int | None = None,
                 n_classes: int | None = None) -> LabelledData:
    """The user's test data (and training data, for fine-tuning and gradual pruning), named after
    the test file's stem."""
    x_test, y_test = load_labelled(test, n_in, n_classes)
    if train is None:
        x_train, y_train = np.zeros((0, x_test.shape[1]), np.float32), np.zeros(0, np.int64)
    else:
        x_train, y_train = load_labelled(train, x_test.shape[1], n_classes)
    source = str(Path(test)) + ("" if train is None else f" (training data {Path(train)})")
    return LabelledData(Path(test).stem, x_train, y_train, x_test, y_test, source)
