from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sparsenet import Layer, Network
from sparsenet.train import TrainConfig

# Property tests (tests/test_properties.py) are deterministic and cheap: the same examples on every
# run, no example database, no deadline (the first example of a format pays its numba compile).
settings.register_profile("sparsenet", derandomize=True, database=None, deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sparsenet")

# The one real training the suite shares (test_train, test_recover): ~2 s on 2 cores, ~89 % test
# accuracy: small enough for CI, good enough to see learning and to win accuracy back after pruning.
TINY = TrainConfig("mnist", widths=(784, 64, 32, 10), epochs=2, batch_size=64, schedule="constant",
                   train_samples=5000)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, different per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def random_net(rng, widths, dtype=np.float32, bias=False, scale=None) -> Network:
    """ReLU MLP with a softmax output; weights ~ N(0, 1/n_in) like a trained net's scale."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in) * (scale or 1.0)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype) * 0.1 if bias else None
        layers.append(Layer(w, b, "softmax" if i == len(widths) - 2 else "relu"))
    return Network(tuple(layers))


def net_of(*weights: np.ndarray, activation: str = "relu") -> Network:
    """A network from raw (n_out, n_in) matrices, last layer softmax."""
    acts = [activation] * (len(weights) - 1) + ["softmax"]
    return Network(tuple(Layer(w, None, a) for w, a in zip(weights, acts)))


@pytest.fixture
def small_net(rng) -> Network:
    return random_net(rng, (37, 64, 48, 21, 10), bias=True)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Trained models, recovered networks and auto's decisions go to a per-session cache, never
    the user's; session-scoped so that module-scoped fixtures (the report runs) see it too.
    ``$SPARSENET_TEST_CACHE`` (set by ``make test``) puts it where the CI benchmark grid that runs
    next finds the networks these tests trained."""
    root = os.environ.get("SPARSENET_TEST_CACHE") or tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARSENET_CACHE", str(Path(root) / "sparsenet-cache"))
        yield


@pytest.fixture(scope="session")
def mnist():
    from sparsenet.data import load_dataset

    return load_dataset("mnist", download=False)


@pytest.fixture(scope="session")
def tiny_trained(mnist):
    """``train(TINY, mnist)``, once per test run: ``(network, manifest)``. Treat it as read-only."""
    pytest.importorskip("tensorflow", reason="training needs the 'train' extra (tensorflow)")
    from sparsenet.train import train

    return train(TINY, mnist, progress=False)


# The files that take longest (report subprocesses, kill runs, TensorFlow, numba compiles) go first:
# make test runs the suite in two pytest-xdist workers a file at a time, and a long file handed out
# last leaves one worker idle while the other finishes it. make test passes --no-loadscope-reorder:
# by default xdist re-sorts files by their number of tests, which put the report files (few tests,
# 140-170 s each) last. Order from --durations=0 on a cold numba cache (2026-12-02, 2 cores).
_SLOW_FIRST = ("test_report.py", "test_report_inputs.py", "test_kernels.py", "test_report_conv.py", "test_kill.py",
               "test_sparse_conv.py", "test_formats.py", "test_int8_formats.py", "test_recover_conv.py",
               "test_recover.py", "test_train.py", "test_tflite_int8.py", "test_tflite_conv.py",
               "test_report_layers.py", "test_train_conv.py", "test_export.py", "test_fuzz.py", "test_data.py",
               "test_import.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return _SLOW_FIRST.index(name) if name in _SLOW_FIRST else len(_SLOW_FIRST)

    items.sort(key=rank)  # stable: tests keep their order within a file
