"""Options and session fixtures for the benchmark suite (`pytest --benchmark-only`).

The grid comes from bench/cases.py (``--grid``) and any of its axes can be overridden on the
command line; ``python -m bench.report`` drives this suite exactly that way.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bench import cases
from bench.models import load_eval_data, load_models, parse_weights
from bench.runtime import fix_threads
from sparsenet import convert, prune
from sparsenet.recover import recovered_network


def pytest_addoption(parser):
    group = parser.getgroup("sparsenet", "sparsenet benchmark grid")
    group.addoption("--grid", default="full", choices=sorted(cases.GRIDS),
                    help="named grid from bench/cases.py (default: full)")
    group.addoption("--datasets", help="comma-separated, overrides the grid's datasets")
    group.addoption("--methods", help="comma-separated pruning methods (weight,unit)")
    group.addoption("--sparsities", help="comma-separated fractions in [0, 1)")
    group.addoption("--batch-sizes", help="comma-separated batch sizes")
    group.addoption("--formats", help="comma-separated formats (see sparsenet.FORMATS)")
    group.addoption("--epochs", type=int, help="training epochs of the benchmarked models")
    group.addoption("--stages", help="comma-separated from oneshot,finetuned,gradual (one-shot always runs); "
                                     "recovered networks are trained on first use, then cached")
    group.addoption("--recovery-sparsities", help="comma-separated sparsities of the recovered networks")
    group.addoption("--recovery-epochs", type=int, help="training budget of each recovered network")
    group.addoption("--threads", type=int, help="numba and BLAS threads (default: all cores)")
    group.addoption("--data-dir", help="directory holding the datasets' IDX gz files")
    group.addoption("--model-cache", help="directory of the trained-model cache")
    group.addoption("--weights", help="your own networks instead of training: DATASET=PATH.npz[,...]")


def selected_grid(config) -> cases.Grid:
    grid = cases.GRIDS[config.getoption("grid")]
    over = {
        "datasets": (config.getoption("datasets"), str),
        "methods": (config.getoption("methods"), str),
        "sparsities": (config.getoption("sparsities"), float),
        "batch_sizes": (config.getoption("batch_sizes"), int),
        "formats": (config.getoption("formats"), str),
        "stages": (config.getoption("stages"), str),
        "recovery_sparsities": (config.getoption("recovery_sparsities"), float),
    }
    fields = {name: cases.parse_list(text, kind, f"--{name.replace('_', '-')}")
              for name, (text, kind) in over.items() if text}
    for name in ("epochs", "recovery_epochs"):
        if config.getoption(name):
            fields[name] = config.getoption(name)
    return cases.Grid(**{**grid.__dict__, **fields})


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    params = [pytest.param(case, id=f"{d}-{f}-{m}-s{s:.2f}-b{b}" + ("" if stage == "oneshot" else f"-{stage}"))
              for case in cases.cases(selected_grid(metafunc.config)) for d, m, s, b, f, stage in [case]]
    metafunc.parametrize("case", params)


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
def grid(pytestconfig) -> cases.Grid:
    return selected_grid(pytestconfig)


@pytest.fixture(scope="session")
def models(pytestconfig, grid):
    """Trained dense networks per dataset (from the training cache; trained on first use)."""
    return load_models(grid.datasets, grid.epochs, pytestconfig.getoption("data_dir"),
                       pytestconfig.getoption("model_cache"), parse_weights(pytestconfig.getoption("weights")))


@pytest.fixture(scope="session")
def eval_data(pytestconfig, grid):
    return load_eval_data(grid.datasets, pytestconfig.getoption("data_dir"))


@pytest.fixture(scope="session")
def build(pytestconfig, grid, models, eval_data):
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
    recovery = cases.recovery_config(grid)
    model_cache, data_dir = pytestconfig.getoption("model_cache"), pytestconfig.getoption("data_dir")

    @functools.lru_cache(maxsize=2)
    def masked_of(dataset, method, sparsity, stage):
        net = models[dataset][0]
        if stage == "oneshot":
            return prune(net, method, sparsity)
        return recovered_network(net, stage, method, sparsity, cases.RECOVERY_SCOPE, dataset, recovery,
                                 cache_dir=model_cache, data_dir=data_dir)[0]

    @functools.lru_cache(maxsize=8)
    def forward_of(dataset, method, sparsity, stage, fmt):
        return convert(masked_of(dataset, method, sparsity, stage), fmt)

    @functools.lru_cache(maxsize=4)
    def reference(dataset, method, sparsity, stage, batch):
        k = cases.BATCH1_INPUTS if batch == 1 else 1
        xs = np.ascontiguousarray(eval_data[dataset][:k * batch], dtype=models[dataset][0].dtype).reshape(k, batch, -1)
        dense = forward_of(dataset, method, sparsity, stage, "dense")
        return xs, np.stack([dense(x) for x in xs])

    def _build(dataset, method, sparsity, fmt, batch, stage="oneshot"):
        xs, expected = reference(dataset, method, sparsity, stage, batch)
        return (forward_of(dataset, method, sparsity, stage, fmt), xs, expected,
                masked_of(dataset, method, sparsity, stage))

    return _build
