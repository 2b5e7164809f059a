"""Where sparsenet keeps what it computed once: trained models, recovered networks, auto's choices.

One root for every cache, read here and nowhere else in the library::

    <root>/models/<dataset>-<key>/     weights.npz + manifest.json    (sparsenet.train)
    <root>/recovered/<name>-<key>/     network.npz + manifest.json    (sparsenet.recover)
    <root>/auto.json                   measured format choices         (sparsenet.formats.auto)

The root is the ``cache_dir`` a caller passes, else ``$SPARSENET_CACHE``, else
``~/.cache/sparsenet``. An entry's manifest is written after its weights, so an entry whose
manifest is missing, unreadable or for another key counts as absent (:func:`read_manifest`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "SPARSENET_CACHE"


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


def read_manifest(path: str | os.PathLike, key: str, key_field: str = "config_key") -> dict | None:
    """The manifest at ``path`` if it is a JSON object whose ``key_field`` is ``key`` and that
    records a ``test_accuracy``; else None (the cache entry counts as absent)."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get(key_field) != key or "test_accuracy" not in manifest:
        return None
    return manifest
