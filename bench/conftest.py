"""Options and session fixtures for the benchmark suite (`pytest --benchmark-only`).

The grid comes from bench/grid.py (``--grid``) and any of its axes can be overridden on the
command line with the options defined there; ``python -m bench.report`` drives this suite
exactly that way.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from bench.conv_sizes import conv_file_bytes
from bench.grid import (
    BATCH1_INPUTS,
    OPTIONS,
    RECOVERY_SCOPE,
    Grid,
    add_options,
    cases,
    grid_from_options,
    recovery_config,
)
from bench.models import load_study, parse_weights
from bench.progress import GridProgress, estimate_seconds
from bench.runtime import fix_threads
from sparsenet import convert, prune
from sparsenet.formats import baseline
from sparsenet.host import wait_until_quiet
from sparsenet.layers import SPATIAL_KINDS
from sparsenet.recover import recovered_network
from sparsenet.sizes import file_bytes
from sparsenet.userdata import LabelledData


def pytest_sessionstart(session):
    """Die with the report: ``python -m bench.report`` names its PID in ``$SPARSENET_PARENT_PID``
    (bench/report/cli.py, which runs this suite in its own process group). Killed outright
    (SIGKILL), the report cannot kill this process itself, so ask Linux to (PR_SET_PDEATHSIG),
    and everywhere watch the parent PID from a thread."""
    parent = os.environ.get("SPARSENET_PARENT_PID")
    if not parent or not parent.isdigit():
        return
    parent = int(parent)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def pytest_addoption(parser):
    group = parser.getgroup("sparsenet", "sparsenet benchmark grid (bench/grid.py)")
    add_options(group.addoption)
    group.addoption("--progress", action="store_true",
                    help="a progress bar with elapsed time and estimate instead of pytest's dots (with -p no:terminal)")


def pytest_configure(config):
    if config.getoption("progress", default=False):
        config.pluginmanager.register(GridProgress(float(config.getoption("benchmark_max_time"))), "sparsenet-progress")


def pytest_report_collectionfinish(config, items):
    """Say up front how many benchmark cases will be timed and roughly how long that takes."""
    timed = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
    if not timed or not config.getoption("benchmark_only"):
        return None
    max_time = float(config.getoption("benchmark_max_time"))
    return (f"sparsenet: {len(timed)} benchmark cases, about {estimate_seconds(len(timed), max_time) / 60:.0f} min "
            f"at --benchmark-max-time={max_time:g} (after the networks are trained and cached)")


def selected_grid(config) -> Grid:
    try:
        return grid_from_options({opt.dest: config.getoption(opt.dest) for opt in OPTIONS})
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


CASE_PARAMS = "dataset,method,sparsity,batch,fmt,stage"  # bench.grid.Case's fields, one parameter each


def pytest_generate_tests(metafunc):
    """One parameter per case field (not one tuple), so pytest-benchmark's JSON holds each of them
    and ``--benchmark-group-by=param:batch`` (or ``param:fmt``, ...) works."""
    if "fmt" not in metafunc.fixturenames:
        return
    grid = selected_grid(metafunc.config)
    metafunc.parametrize(CASE_PARAMS, [pytest.param(*case, id=case.id) for case in cases(grid)])


def pytest_collection_modifyitems(config, items):
    """Plain `pytest` runs the unit tests; benchmarks need `--benchmark-only` or naming bench/."""
    named = any("bench" in str(arg) for arg in config.invocation_params.args if not str(arg).startswith("-"))
    if config.getoption("benchmark_only") or named:
        return
    skip = pytest.mark.skip(reason="benchmark: run with `pytest --benchmark-only` or `pytest bench`")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def threads(pytestconfig) -> int:
    return fix_threads(pytestconfig.getoption("threads"))


@pytest.fixture(scope="session")
def grid(pytestconfig) -> Grid:
    return selected_grid(pytestconfig)


@pytest.fixture(scope="session")
def study(pytestconfig, grid):
    """``(models, data)``: dense networks per dataset (ours from the training cache, trained on
    first use; or the user's --weights / --model) and each one's dataset."""
    opt = pytestconfig.getoption
    return load_study(grid.datasets, grid.epochs, opt("data_dir"), opt("model_cache"), parse_weights(opt("weights")),
                      opt("model"), opt("data"), opt("train_data"), grid=grid)


@pytest.fixture(scope="session")
def models(study):
    return study[0]


@pytest.fixture(scope="session")
def eval_data(study):
    """Test inputs per dataset (float32, (n, n_in)): what every latency is measured on."""
    return {name: data.x_test for name, data in study[1].items()}


@pytest.fixture(scope="session")
def build(pytestconfig, grid, models, eval_data, study):
    """``build(dataset, method, sparsity, fmt, batch, stage) -> (forward, xs, dense_outputs, masked)``.

    ``xs`` is a stack of distinct input batches, ``(k, batch, n_in)``, that a timed loop cycles
    through: k = BATCH1_INPUTS test images at batch 1, where the sparse and shrunk kernels skip
    zero inputs and a repeated image would let the branch predictor learn its zero pattern
    (measured: 2x faster than on changing images at sparsity 0.9); k = 1 for larger batches,
    whose kernels take no input-dependent branches.

    Pruning (or recovery: trained on first use, then read from the cache) and conversion are
    cached for the neighbouring cases (the grid is ordered dataset > method > sparsity), so
    they are paid once per setting and never timed.
    """
    model_cache, data_dir = pytestconfig.getoption("model_cache"), pytestconfig.getoption("data_dir")

    @functools.lru_cache(maxsize=2)
    def masked_of(dataset, method, sparsity, stage):
        net = models[dataset][0]
        if stage == "oneshot":
            return prune(net, method, sparsity)
        data = study[1][dataset]
        data = data if isinstance(data, LabelledData) else dataset  # a user's data travels as itself
        return recovered_network(net, stage, method, sparsity, RECOVERY_SCOPE, data, recovery_config(grid, dataset),
                                 cache_dir=model_cache, data_dir=data_dir,
                                 keras_model=models[dataset][1].get("keras_model"))[0]

    @functools.lru_cache(maxsize=8)
    def forward_of(dataset, method, sparsity, stage, fmt):
        return convert(masked_of(dataset, method, sparsity, stage), fmt)

    @functools.lru_cache(maxsize=4)
    def reference(dataset, method, sparsity, stage, batch):
        k = BATCH1_INPUTS if batch == 1 else 1
        xs = np.ascontiguousarray(eval_data[dataset][:k * batch], dtype=models[dataset][0].dtype).reshape(k, batch, -1)
        dense = forward_of(dataset, method, sparsity, stage, baseline())
        return xs, np.stack([dense(x) for x in xs])

    def _build(dataset, method, sparsity, fmt, batch, stage="oneshot"):
        xs, expected = reference(dataset, method, sparsity, stage, batch)
        forward = forward_of(dataset, method, sparsity, stage, fmt)
        if getattr(forward, "quantized", False):  # int8: checked against its own dequantized network
            expected = np.stack([forward.reference(x) for x in xs])
        return forward, xs, expected, masked_of(dataset, method, sparsity, stage)

    return _build


class QuietWaits:
    """Before a timed case, wait while other processes keep more than BUSY_LIMIT cores busy (at most
    PER_CASE_S per case and ``budget_s`` per session, ``--quiet-wait``, so a machine that never
    quiets down still finishes; cases timed while it was busy are flagged and re-measured later)."""

    BUSY_LIMIT, PER_CASE_S, BUDGET_S = 0.5, 3.0, 120.0

    def __init__(self, budget_s: float | None = None):
        self.spent, self.budget_s = 0.0, self.BUDGET_S if budget_s is None else budget_s
        if self.budget_s < 0:
            raise pytest.UsageError(f"--quiet-wait must be >= 0 seconds, found {self.budget_s:g}")

    def wait(self) -> float:
        left = min(self.PER_CASE_S, self.budget_s - self.spent)
        if left <= 0:
            return 0.0
        waited, _ = wait_until_quiet(self.BUSY_LIMIT, window_s=0.1, max_wait_s=left)
        waited = 0.0 if waited <= 0.1 else waited  # one window to look is not a wait
        self.spent += waited
        return waited


@pytest.fixture(scope="session")
def quiet(pytestconfig) -> QuietWaits:
    return QuietWaits(pytestconfig.getoption("quiet_wait"))


@pytest.fixture(scope="session")
def file_sizes():
    """``file_sizes(masked, saved_as) -> (on_disk_bytes, zipped_bytes)`` of the pruned network
    written as ``saved_as`` (:func:`sparsenet.sizes.file_bytes`): real files, written once per
    network and file kind (the grid's neighbouring cases share a network), never timed."""
    memo: dict = {}

    def _sizes(masked, saved_as):
        key = (id(masked), saved_as)
        if key not in memo:
            if len(memo) >= 8:
                memo.clear()
            sizes = conv_file_bytes if masked.net.layer_kinds & SPATIAL_KINDS else file_bytes
            memo[key] = (masked, sizes(masked, saved_as))  # masked kept alive: its id stays its own
        return memo[key][1]

    return _sizes
