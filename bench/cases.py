"""The benchmark grid as constants: named grids, and the rule for which formats go with a method."""

from __future__ import annotations

from dataclasses import dataclass

from sparsenet import FORMATS, PRUNERS


@dataclass(frozen=True)
class Grid:
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    formats: tuple[str, ...]
    epochs: int | None = None  # None: the training module's default per dataset


ALL_FORMATS = tuple(FORMATS)
DATASETS = ("fashion_mnist", "mnist")
SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)

GRIDS: dict[str, Grid] = {
    # what the committed report uses
    "full": Grid(DATASETS, tuple(sorted(PRUNERS)), SPARSITIES, (1, 64, 1024), ALL_FORMATS),
    # a few minutes end to end on 2 cores (after training)
    "quick": Grid(DATASETS, tuple(sorted(PRUNERS)), (0.0, 0.5, 0.9, 0.99), (1, 64), ALL_FORMATS),
    # CI: one dataset, a 1-epoch model, the benchmark path run once per case without timing
    "ci": Grid(("mnist",), tuple(sorted(PRUNERS)), (0.0, 0.9), (1, 64), ALL_FORMATS, epochs=1),
}


def formats_for(method: str, formats: tuple[str, ...]) -> tuple[str, ...]:
    """``shrunk`` only pays after unit pruning; weight pruning leaves no whole unit to delete."""
    return tuple(f for f in formats if not (f == "shrunk" and method != "unit"))


def parse_list(text: str, kind: type, name: str) -> tuple:
    """'0,0.5,0.9' -> (0.0, 0.5, 0.9) with an error naming the option on a bad item."""
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name} expects a comma-separated list of {kind.__name__}, found {text!r}") from None
