"""The auto format: measured choice among its candidates, cached in memory and on disk."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sparsenet import convert, prune
from sparsenet.formats import auto
from sparsenet.testing import assert_forward_close

from conftest import random_net


def test_auto_picks_a_candidate_per_bucket_and_caches_it(rng):
    masked = prune(random_net(rng, (40, 30, 20, 5)), "unit", 0.5)
    forward = convert(masked, "auto")
    assert set(forward.candidates) == {"dense", "sparse", "shrunk"}
    x = rng.random((5, 40)).astype(np.float32)
    assert forward.choice(5) == "unmeasured"
    assert_forward_close(forward(x), convert(masked, "dense")(x))
    assert forward.choice(5) in forward.candidates
    assert forward.choice(8) == forward.choice(5), "5 and 8 share the power-of-two bucket"
    stored = json.loads(open(auto.cache_file()).read())
    assert [k.rsplit("|", 1)[1] for k in stored if forward.fingerprint in k] == ["b8"]


def test_auto_reuses_the_disk_cache_without_measuring(rng, monkeypatch):
    masked = prune(random_net(rng, (40, 30, 5)), "weight", 0.9)
    x = rng.random((1, 40)).astype(np.float32)
    first = convert(masked, "auto")
    first(x)

    def no_timing(*args, **kwargs):
        raise AssertionError("measured again despite a cached decision")

    monkeypatch.setattr(auto, "median_seconds", no_timing)
    second = convert(masked, "auto")
    second(x)
    assert second.choice(1) == first.choice(1)


def test_auto_without_deleted_units_has_no_shrunk_candidate(rng):
    forward = convert(prune(random_net(rng, (20, 10, 4)), "weight", 0.5), "auto")
    assert set(forward.candidates) == {"dense", "sparse"}
    # nothing chosen yet: it counts every candidate it holds
    assert forward.in_memory_bytes == sum(f.in_memory_bytes for f in forward.candidates.values())


def test_auto_validates_before_timing(rng):
    forward = convert(prune(random_net(rng, (20, 10, 4)), "weight", 0.5), "auto")
    with pytest.raises(ValueError, match="input must have shape"):
        forward(np.zeros((3, 7), np.float32))
    assert forward.choice(3) == "unmeasured"


def test_auto_survives_a_corrupt_cache_file(rng):
    path = auto.cache_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{not json")
    forward = convert(prune(random_net(rng, (20, 10, 4)), "weight", 0.5), "auto")
    x = rng.random((2, 20)).astype(np.float32)
    forward(x)
    assert json.loads(open(path).read()), "the cache is rewritten as valid JSON"


def test_auto_decisions_go_under_the_cache_root(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path))
    assert Path(auto.cache_file()) == tmp_path / "auto.json"
    forward = convert(prune(random_net(rng, (20, 10, 4)), "weight", 0.5), "auto")
    forward(rng.random((2, 20)).astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.json", "auto.json.lock"]  # + its process lock


@pytest.mark.parametrize("content", ['{"k": ["dense"]}', '[1, 2]', '{"k": {"a": 1}}', '"dense"'])
def test_auto_ignores_non_string_decisions(rng, capsys, content):
    """Before: ``["dense"] in candidates`` raised TypeError: unhashable, on every auto benchmark."""
    forward = convert(prune(random_net(rng, (20, 10, 4)), "weight", 0.5), "auto")
    key = f"{auto._machine_key()}|{forward.fingerprint}|b2"
    path = auto.cache_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content.replace('"k"', json.dumps(key)))
    x = rng.random((2, 20)).astype(np.float32)
    assert_forward_close(forward(x), forward.candidates["dense"](x))
    assert forward.choice(2) in forward.candidates
    assert "auto: ignoring" in capsys.readouterr().err
    assert isinstance(json.loads(open(path).read())[key], str), "the decision is rewritten as a name"


def test_auto_is_not_fooled_by_one_disturbed_measurement(monkeypatch):
    """A candidate slowed down during one of its turns (another process took the core) still wins
    when it is the faster one: each candidate is timed in two passes and keeps its better median."""
    import time

    import numpy as np

    monkeypatch.setattr(auto, "MEASURE_S", 0.0)
    monkeypatch.setattr(auto, "MEASURE_ROUNDS", 3)
    monkeypatch.setattr(auto, "SETTLE_S", 0.0)
    turns = {"fast": 0}

    def fast(x):
        turns["fast"] += 1
        if turns["fast"] <= 4:  # its whole first turn (1 untimed + 3 timed calls) is disturbed
            time.sleep(0.02)
        return x

    def slow(x):
        time.sleep(0.005)
        return x

    times = auto.measure({"fast": fast, "slow": slow}, np.zeros((1, 3), np.float32))
    assert min(times, key=times.get) == "fast"
    assert times["fast"] < 0.005 < times["slow"]
