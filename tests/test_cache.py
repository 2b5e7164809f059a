"""sparsenet.cache: one cache root for the library, and manifests that count only when valid."""

import json
from pathlib import Path

import numpy as np

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


# --- issue 15: manifests checked like data, corrupt entries rebuilt, one builder at a time ---------

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402

from sparsenet.cache import TRAINED_FIELDS, entry_lock  # noqa: E402

GOOD = {"config_key": "abc", "test_accuracy": 0.9, "test_accuracy_numpy": 0.9, "created": "2026-01-01T00:00:00+00:00",
        "epochs": 2, "epoch_seconds": [1.0, 1.0], "train_seconds": 2.0, "architecture": [784, 10]}


@pytest.mark.parametrize("change, problem", [
    ({"test_accuracy": "x"}, "field 'test_accuracy' must be a number in [0, 1]"),
    ({"test_accuracy": float("nan")}, "field 'test_accuracy' must be a number in [0, 1]"),
    ({"test_accuracy": True}, "field 'test_accuracy' must be"),
    ({"created": None}, "field 'created' must be a string"),
    ({"created": ...}, "field 'created' is missing"),
    ({"epochs": 0}, "field 'epochs' must be a positive integer"),
    ({"epoch_seconds": []}, "field 'epoch_seconds' must be a non-empty list of seconds"),
    ({"architecture": ["784"]}, "field 'architecture' must be a list of positive widths"),
    ({"config_key": ["abc"]}, "config_key is ['abc'], expected 'abc'"),
])
def test_manifest_field_types_are_checked_and_reported(tmp_path, capsys, change, problem):
    path = tmp_path / "entry" / "manifest.json"
    path.parent.mkdir()
    bad = {k: v for k, v in {**GOOD, **change}.items() if v is not ...}
    path.write_text(json.dumps(bad))
    assert read_manifest(path, "abc", fields=TRAINED_FIELDS) is None
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1, err
    path.write_text(json.dumps(GOOD))
    assert read_manifest(path, "abc", fields=TRAINED_FIELDS) == GOOD


def test_deeply_nested_or_huge_manifest_is_absent(tmp_path, capsys):
    path = tmp_path / "manifest.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert read_manifest(path, "abc") is None
    path.write_bytes(b" " * (2 << 20))
    assert read_manifest(path, "abc") is None
    assert "more than" in capsys.readouterr().err


@pytest.mark.parametrize("change", [{"test_accuracy": "x"}, {"created": ...}])
def test_a_corrupt_manifest_retrains_instead_of_crashing(tmp_path, monkeypatch, capsys, change):
    """Before: ValueError (format of 'x') or KeyError ('created') from train.py; now: trained again."""
    from sparsenet import train as train_mod
    from sparsenet.io import save_network
    from sparsenet.train import TrainConfig, config_key, model_dir, trained_network

    from conftest import random_net

    config = TrainConfig("mnist", widths=(784, 8, 10), epochs=1, train_samples=100)
    net = random_net(np.random.default_rng(0), config.widths)
    calls = []

    def fake(cfg, dataset, progress=True):
        calls.append(cfg)
        return net, {**GOOD, "config_key": config_key(cfg), "architecture": list(cfg.widths)}

    monkeypatch.setattr(train_mod, "train", fake)
    entry = model_dir(config, tmp_path)
    save_network(entry / "weights.npz", net)
    bad = {k: v for k, v in {**GOOD, "config_key": config_key(config), **change}.items() if v is not ...}
    (entry / "manifest.json").write_text(json.dumps(bad))
    _, manifest = trained_network(config, cache_dir=tmp_path, progress=True)
    assert len(calls) == 1 and manifest["test_accuracy"] == 0.9
    assert "is unusable" in capsys.readouterr().err
    trained_network(config, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1, "the rebuilt entry is reused"


CONCURRENT = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import random_net
    from sparsenet import train as train_mod
    from sparsenet.train import TrainConfig, config_key, trained_network

    def fake(cfg, dataset, progress=True):
        with open({log!r}, "a") as f:
            f.write("trained\\n")
        time.sleep(1.5)  # long enough that the other process arrives while this one trains
        return random_net(np.random.default_rng(0), cfg.widths), {{
            "config_key": config_key(cfg), "test_accuracy": 0.5, "test_accuracy_numpy": 0.5, "created": "now",
            "epochs": 1, "epoch_seconds": [1.0], "train_seconds": 1.0, "architecture": list(cfg.widths)}}

    train_mod.train = fake
    net, manifest = trained_network(TrainConfig("mnist", widths=(784, 8, 10), epochs=1, train_samples=100),
                                    cache_dir={cache!r}, progress=False)
    print(manifest["test_accuracy"])
""")


def test_two_processes_with_one_cache_train_once(tmp_path):
    log, cache = tmp_path / "trained.log", tmp_path / "cache"
    code = CONCURRENT.format(tests=str(Path(__file__).parent), log=str(log), cache=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert log.read_text() == "trained\n", "the second process waited and reused the first one's network"
    assert any("waiting for another process" in err for _, err in outs)


def test_entry_lock_is_released_when_its_holder_is_killed(tmp_path):
    entry = tmp_path / "models" / "x"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom sparsenet.cache import entry_lock\n"
                               f"with entry_lock({str(entry)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with entry_lock(entry):  # would wait forever if a dead holder kept it
        pass
