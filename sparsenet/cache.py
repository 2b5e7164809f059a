"""Where sparsenet keeps what it computed once: trained models, recovered networks, auto's choices.

One root for every cache, read here and nowhere else in the library::

    <root>/models/<dataset>-<key>/     weights.npz + manifest.json    (sparsenet.train)
    <root>/recovered/<name>-<key>/     network.npz + manifest.json    (sparsenet.recover)
    <root>/auto.json                   measured format choices         (sparsenet.formats.auto)

The root is the ``cache_dir`` a caller passes, else ``$SPARSENET_CACHE``, else
``~/.cache/sparsenet``. An entry's manifest is written after its weights, so an entry whose
manifest is missing, unreadable, for another key or with a field of the wrong type counts as
absent (:func:`read_manifest`, which says so in one line when the file was there), and the entry
is rebuilt. Processes that share a cache build an entry once: :func:`entry_lock` is a
cross-process file lock (``<entry>.lock`` beside it, from the ``filelock`` package) held while
an entry is looked up and built; the OS releases it when its holder dies.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import filelock

ENV_VAR = "SPARSENET_CACHE"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few kB; a bigger file is not one


def _fraction(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0.0 <= v <= 1.0


def _seconds(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# field -> (check, rule for the message): what the readers of a cache entry's manifest rely on
RECOVERED_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "test_accuracy": (_fraction, "a number in [0, 1]"),
}
TRAINED_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    **RECOVERED_FIELDS,
    "test_accuracy_numpy": (_fraction, "a number in [0, 1]"),
    "created": (lambda v: isinstance(v, str), "a string"),
    "epochs": (lambda v: _count(v) and v > 0, "a positive integer"),
    "epoch_seconds": (lambda v: isinstance(v, list) and len(v) > 0 and all(map(_seconds, v)),
                      "a non-empty list of seconds"),
    "train_seconds": (_seconds, "a number of seconds"),
    "architecture": (lambda v: isinstance(v, list) and len(v) > 1 and all(_count(w) and w > 0 for w in v),
                     "a list of positive widths"),
}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$SPARSENET_CACHE``, else ``~/.cache/sparsenet``.

    Read on every call (not at import), so a process that sets the variable, as the test suite
    does, sends every later cache write there.

    Examples
    --------
    >>> str(cache_root("/tmp/mine"))
    '/tmp/mine'
    """
    root = cache_dir or os.environ.get(ENV_VAR) or Path.home() / ".cache" / "sparsenet"
    return Path(root).expanduser()


def read_manifest(path: str | os.PathLike, key: str, key_field: str = "config_key",
                  fields: Mapping[str, tuple[Callable[[object], bool], str]] = RECOVERED_FIELDS) -> dict | None:
    """The manifest at ``path`` if it is a JSON object whose ``key_field`` is ``key`` and whose
    ``fields`` (default: ``test_accuracy``) pass their checks; else None (the cache entry counts
    as absent). A file that exists but fails says why on stderr, in one line."""
    problem, manifest = _manifest_problem(Path(path), key, key_field, fields)
    if problem is None:
        return manifest
    if problem != "absent":
        print(f"cache entry {Path(path).parent} is unusable ({path}: {problem}); building it again",
              file=sys.stderr, flush=True)
    return None


def _manifest_problem(path: Path, key: str, key_field: str, fields) -> tuple[str | None, dict | None]:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return f"{path.stat().st_size} bytes, more than {MAX_MANIFEST_BYTES}", None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "absent", None
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, not JSON, nested too deep
        return f"not readable JSON ({type(exc).__name__}: {exc})", None
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, expected an object", None
    if manifest.get(key_field) != key:
        return f"{key_field} is {manifest.get(key_field)!r:.80}, expected {key!r}", None
    for name, (check, rule) in fields.items():
        if name not in manifest:
            return f"field {name!r} is missing", None
        if not check(manifest[name]):
            return f"field {name!r} must be {rule}, found {manifest[name]!r:.80}", None
    return None, manifest


@contextlib.contextmanager
def entry_lock(entry: str | os.PathLike, what: str = "this cache entry") -> Iterator[None]:
    """Hold the cross-process lock of cache entry ``entry`` (a path) for the block.

    A second process that wants the same entry waits (saying so once) and then finds it built.
    """
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(entry) + ".lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"waiting for another process that is building {what} ({entry})", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
