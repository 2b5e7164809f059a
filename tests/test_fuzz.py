"""A bounded fuzz pass over every reader (issue 15): mutated bytes of a valid input must load or
raise :class:`sparsenet.FileFormatError` (never another exception), stay under the memory cap
and never hang.

``make test`` runs a fixed, seeded number of mutations per reader (:data:`N_INPUTS`, well under
a minute in all). Run it longer with a time budget per reader::

    SPARSENET_FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/test_fuzz.py -s

(``-s`` shows each reader's counts: inputs, loaded, distinct errors.) ``SPARSENET_FUZZ_SEED``
changes the seed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sparsenet import FileFormatError, prune, save_network
from sparsenet import cache as cache_mod
from sparsenet import data as data_mod
from sparsenet import io as io_mod
from sparsenet.cache import TRAINED_FIELDS, read_manifest
from sparsenet.formats import auto
from sparsenet.io import load_masked, load_network, save_masked

from conftest import random_net

N_INPUTS = {"idx": 300, "npz": 400, "masked": 300, "manifest": 400, "auto": 300}
SECONDS = float(os.environ.get("SPARSENET_FUZZ_SECONDS") or 0)
SEED = int(os.environ.get("SPARSENET_FUZZ_SEED") or 15)
CAP = 4 << 20  # the .npz cap during the fuzz: a mutated header may declare anything
MAX_INPUT_S = 5.0  # one input taking longer than this counts as a hang


def mutate(rng: np.random.Generator, blob: bytes) -> bytes:
    """One random mutation: flip, overwrite with an edge value, truncate, insert, repeat or append."""
    b = bytearray(blob)
    if not b:  # an earlier mutation emptied it
        return rng.bytes(int(rng.integers(1, 64)))
    kind = rng.integers(7)
    pos = int(rng.integers(len(b))) if b else 0
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        edge = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"9" * 12, b"-1"]
        v = edge[int(rng.integers(len(edge)))]
        b[pos:pos + len(v)] = v
    elif kind == 2:
        del b[pos:]
    elif kind == 3:
        b[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == 4:
        n = int(rng.integers(1, 256))
        b[pos:pos] = b[pos:pos + n] * int(rng.integers(1, 8))
    elif kind == 5:
        b += rng.bytes(int(rng.integers(1, 64)))
    else:
        del b[pos:pos + int(rng.integers(1, 64))]
    return bytes(b)


def mutate_text(rng: np.random.Generator, text: str) -> str:
    """Structure-aware JSON mutations: numbers, strings and brackets swapped for other values."""
    if rng.random() < 0.5:
        return mutate(rng, text.encode()).decode("utf-8", "replace")
    values = ['"x"', "null", "[]", "{}", "-1", "1e999", "NaN", "true", '["dense"]', "0", "1.5", '{"a": [1]}']
    tokens = re.split(r'("[^"]*"|-?\d+(?:\.\d+)?(?:e-?\d+)?|[\[\]{}])', text)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(tokens)))
        tokens[i] = values[int(rng.integers(len(values)))]
    return "".join(tokens)


def rezip(rng: np.random.Generator, blob: bytes) -> bytes:
    """Mutate one member of a .npz (often its .npy header) and write a valid zip around it, so that
    the mutation reaches the .npy reader instead of stopping at the CRC check."""
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    name = sorted(members)[int(rng.integers(len(members)))]
    member = bytearray(members[name])
    if rng.random() < 0.6 and len(member) > 10:  # the header: shape, dtype, order
        header_end = member.index(b"\n") + 1 if b"\n" in member else 64
        head = member[:header_end].decode("latin1")
        swaps = [("(", "(99999999999, "), ("'<f4'", "'|O'"), ("'<f4'", "'<f8'"), ("False", "True"),
                 ("<i8", "<i4"), ("'<U", "'<S"), (",)", ", 1)"), ("shape", "shap"), (")", ", -1)")]
        old, new = swaps[int(rng.integers(len(swaps)))]
        head = head.replace(old, new, 1)
        member = bytearray(head.encode("latin1")) + member[header_end:]
    else:
        member = bytearray(mutate(rng, bytes(member)))
    members[name] = bytes(member)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return out.getvalue()


def regzip(rng: np.random.Generator, blob: bytes) -> bytes:
    """Mutate the decompressed IDX payload (mostly its header) and gzip it again."""
    raw = bytearray(gzip.decompress(blob))
    if rng.random() < 0.7:
        pos = int(rng.integers(16))
        raw[pos:pos + 4] = rng.bytes(4)
    else:
        raw = bytearray(mutate(rng, bytes(raw)))
    return gzip.compress(bytes(raw), compresslevel=1)


def fuzz(name: str, valid: bytes, structured: Callable | None, write: Callable[[bytes], None],
         read: Callable[[], object]) -> dict:
    """Feed mutations of ``valid`` to ``read``; return counts. Fails on any other exception."""
    rng = np.random.default_rng([SEED, sum(name.encode())])
    counts, errors = {"inputs": 0, "loaded": 0}, set()
    start, slowest = time.perf_counter(), 0.0
    while (time.perf_counter() - start < SECONDS) if SECONDS else counts["inputs"] < N_INPUTS[name]:
        blob = structured(rng, valid) if structured is not None and rng.random() < 0.5 else mutate(rng, valid)
        if rng.random() < 0.2:  # stack a second mutation now and then
            blob = mutate(rng, blob)
        write(blob)
        t0 = time.perf_counter()
        try:
            read()
        except FileFormatError as exc:
            errors.add(re.sub(r"\d+", "N", str(exc).split(": ", 1)[-1])[:80])
        except Exception as exc:
            pytest.fail(f"{name}: input {counts['inputs']} raised {type(exc).__name__}: {exc}\n"
                        f"(reproduce: SPARSENET_FUZZ_SEED={SEED}, {len(blob)} bytes: {blob[:80]!r}...)")
        else:
            counts["loaded"] += 1
        slowest = max(slowest, time.perf_counter() - t0)
        counts["inputs"] += 1
    assert slowest < MAX_INPUT_S, f"{name}: one input took {slowest:.1f} s"
    counts.update(distinct_errors=len(errors), seconds=round(time.perf_counter() - start, 2),
                  slowest_s=round(slowest, 3))
    print(f"fuzz {name}: {counts}")
    return counts


@pytest.fixture
def capped(monkeypatch):
    """A low .npz cap and a tracemalloc watch: no input may make a reader allocate much above it."""
    monkeypatch.setattr(io_mod, "MAX_BYTES", CAP)
    tracemalloc.start()
    yield
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * CAP, f"peak {peak} bytes traced, cap {CAP}"


@pytest.fixture(scope="module")
def small_masked():
    net = random_net(np.random.default_rng(1), (12, 9, 7, 4), bias=True)
    return prune(net, "weight", 0.5)


def test_fuzz_network_npz(tmp_path, small_masked, capped):
    good = save_network(tmp_path / "good.npz", small_masked.net).read_bytes()
    path = tmp_path / "fuzzed.npz"
    counts = fuzz("npz", good, rezip, path.write_bytes, lambda: load_network(path))
    assert counts["distinct_errors"] >= 10


def test_fuzz_masked_npz(tmp_path, small_masked, capped):
    good = save_masked(tmp_path / "good.npz", small_masked).read_bytes()
    path = tmp_path / "fuzzed.npz"
    counts = fuzz("masked", good, rezip, path.write_bytes, lambda: load_masked(path))
    assert counts["distinct_errors"] >= 10


def test_fuzz_idx_gz(tmp_path):
    src = Path(data_mod.load_dataset("mnist", download=False).source) / "t10k-labels-idx1-ubyte.gz"
    if not src.is_file():
        pytest.skip("MNIST is not a directory of IDX files here")
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    tracemalloc.start()
    try:
        counts = fuzz("idx", src.read_bytes(), regzip, path.write_bytes, lambda: data_mod._read_idx(path, "y_test"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * data_mod.CHUNK_BYTES, f"peak {peak} bytes for 10 kB of labels"
    assert counts["distinct_errors"] >= 5


def test_fuzz_manifest_json(tmp_path, capsys):
    good = json.dumps({"config_key": "abc", "test_accuracy": 0.9, "test_accuracy_numpy": 0.9, "created": "now",
                       "epochs": 2, "epoch_seconds": [1.0, 2.0], "train_seconds": 3.0, "architecture": [784, 10]})
    path = tmp_path / "manifest.json"

    def read():
        m = read_manifest(path, "abc", fields=TRAINED_FIELDS)
        assert m is None or isinstance(m["test_accuracy"], float | int)
        if m is None:  # an absent entry is this reader's "error": count it by its reason
            raise FileFormatError(path, cache_mod._manifest_problem(path, "abc", "config_key", TRAINED_FIELDS)[0])
        return m

    counts = fuzz("manifest", good.encode(), lambda rng, b: mutate_text(rng, b.decode()).encode(), path.write_bytes,
                  read)
    capsys.readouterr()  # read_manifest's one line per unusable input
    with capsys.disabled():
        print(f"fuzz manifest: {counts}")


def test_fuzz_auto_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path))
    good = json.dumps({f"cpu|numba2|blas[2]|{i:016x}|b{2 ** i}": n for i, n in
                       enumerate(["dense", "sparse", "shrunk"])})

    def read():
        decisions = auto._read_cache()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in decisions.items())
        return decisions

    counts = fuzz("auto", good.encode(), lambda rng, b: mutate_text(rng, b.decode()).encode(),
                  lambda b: Path(auto.cache_file()).write_bytes(b), read)
    assert counts["loaded"] == counts["inputs"], "auto.json never raises: a damaged file is measured over"
    capsys.readouterr()
    with capsys.disabled():
        print(f"fuzz auto: {counts}")


def test_the_mutators_reach_deep(tmp_path, small_masked):
    """The structured mutators produce valid zips and gzips (so the fuzz is not all CRC errors)."""
    rng = np.random.default_rng(0)
    good = save_network(tmp_path / "good.npz", small_masked.net).read_bytes()
    assert zipfile.ZipFile(io.BytesIO(rezip(rng, good))).testzip() is None
    assert zlib.decompress(regzip(rng, gzip.compress(bytes(100))), 16 + zlib.MAX_WBITS)
