"""The benchmark grid as constants: named grids, and the rule for which formats go with a method."""

from __future__ import annotations

from dataclasses import dataclass

from sparsenet import FORMATS, PRUNERS
from sparsenet.recover import STAGES, RecoveryConfig


@dataclass(frozen=True)
class Grid:
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    formats: tuple[str, ...]
    epochs: int | None = None  # None: the training module's default per dataset
    # accuracy recovery (sparsenet.recover): which stages (one-shot always runs), at which
    # sparsities, with what budget
    stages: tuple[str, ...] = ("oneshot",)
    recovery_sparsities: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98)
    recovery_epochs: int = 5
    recovery_samples: int | None = None  # train on the first N samples only (CI)


ALL_FORMATS = tuple(FORMATS)
DATASETS = ("fashion_mnist", "mnist")
SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
# Recovered networks are timed where a user picks an operating point, in the formats that can win.
RECOVERY_BATCH_SIZES = (1, 64)
# Distinct test images a batch-1 benchmark cycles through (bench/conftest.py: build).
BATCH1_INPUTS = 64
RECOVERY_FORMATS = ("dense", "sparse", "shrunk", "auto")
RECOVERY_SCOPE = "layer"

GRIDS: dict[str, Grid] = {
    # what the committed report uses
    "full": Grid(DATASETS, tuple(sorted(PRUNERS)), SPARSITIES, (1, 64, 1024), ALL_FORMATS, stages=STAGES),
    # a few minutes end to end on 2 cores (after training): one recovery epoch at two sparsities
    "quick": Grid(DATASETS, tuple(sorted(PRUNERS)), (0.0, 0.5, 0.9, 0.99), (1, 64), ALL_FORMATS, stages=STAGES,
                  recovery_sparsities=(0.9, 0.95), recovery_epochs=1),
    # CI: one dataset, a 1-epoch model, the benchmark path run once per case without timing;
    # recovery on a sixth of the training set, so every stage runs for real in seconds
    "ci": Grid(("mnist",), tuple(sorted(PRUNERS)), (0.0, 0.9), (1, 64), ALL_FORMATS, epochs=1, stages=STAGES,
               recovery_sparsities=(0.9,), recovery_epochs=1, recovery_samples=10_000),
}


def formats_for(method: str, formats: tuple[str, ...]) -> tuple[str, ...]:
    """``shrunk`` only pays after unit pruning; weight pruning leaves no whole unit to delete."""
    return tuple(f for f in formats if not (f == "shrunk" and method != "unit"))


def recovery_config(grid: Grid) -> RecoveryConfig:
    return RecoveryConfig(epochs=grid.recovery_epochs, train_samples=grid.recovery_samples)


def cases(grid: Grid) -> list[tuple[str, str, float, int, str, str]]:
    """Every benchmark case ``(dataset, method, sparsity, batch, format, stage)`` of ``grid``:
    the whole grid for one-shot networks, and for each recovered stage its sparsities at
    RECOVERY_BATCH_SIZES in RECOVERY_FORMATS (those the grid has)."""
    out = [(d, m, s, b, f, "oneshot") for d in grid.datasets for m in grid.methods for s in grid.sparsities
           for b in grid.batch_sizes for f in formats_for(m, grid.formats)]
    formats = tuple(f for f in grid.formats if f in RECOVERY_FORMATS)
    out += [(d, m, s, b, f, stage) for stage in grid.stages if stage != "oneshot" for d in grid.datasets
            for m in grid.methods for s in grid.recovery_sparsities for b in RECOVERY_BATCH_SIZES
            for f in formats_for(m, formats)]
    return out


def parse_list(text: str, kind: type, name: str) -> tuple:
    """'0,0.5,0.9' -> (0.0, 0.5, 0.9) with an error naming the option on a bad item."""
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name} expects a comma-separated list of {kind.__name__}, found {text!r}") from None
