"""sparsenet.cache: one cache root for the library, and manifests that count only when valid."""

import json
from pathlib import Path

from sparsenet.cache import cache_root, read_manifest


def test_cache_root_prefers_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("SPARSENET_CACHE")
    assert cache_root() == Path.home() / ".cache" / "sparsenet"
    monkeypatch.setenv("SPARSENET_CACHE", "~/elsewhere")
    assert cache_root() == Path.home() / "elsewhere"


def test_the_test_session_never_uses_the_users_cache():
    assert Path.home() / ".cache" / "sparsenet" not in (cache_root(), *cache_root().parents)


def test_read_manifest_accepts_only_a_valid_entry_for_its_key(tmp_path):
    path = tmp_path / "manifest.json"
    assert read_manifest(path, "abc") is None  # absent
    good = {"config_key": "abc", "test_accuracy": 0.9}
    path.write_text(json.dumps(good))
    assert read_manifest(path, "abc") == good
    assert read_manifest(path, "other") is None  # another config's entry
    path.write_text(json.dumps({"key": "abc", "test_accuracy": 0.9}))
    assert read_manifest(path, "abc", key_field="key")["key"] == "abc"
    for text in ('{"config_key": "ab', "[1, 2]", json.dumps({"config_key": "abc"})):  # torn, not a dict, no accuracy
        path.write_text(text)
        assert read_manifest(path, "abc") is None
