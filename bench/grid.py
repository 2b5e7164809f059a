"""The benchmark grid, defined once for the suite (`pytest --benchmark-only`) and the report.

A :class:`Grid` names the axes; :data:`GRIDS` are the named ones; :data:`OPTIONS` are the
command-line options that override them, added to pytest's parser by ``bench/conftest.py`` and
to argparse by ``python -m bench.report`` through :func:`add_options`, and read back through
:func:`grid_from_options`, so both parse and check them the same way. The report hands its grid
to the suite's child process with :func:`grid_args`.

Formats and pruning methods are never listed here: a grid with ``formats=None`` or
``methods=None`` takes every registered one, and :func:`cases` asks the registries which formats
go with which method (``sparsenet.formats.formats_for``) and which are timed on the recovered
networks (``Forward.operating_points``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sparsenet import FORMATS, PRUNERS
from sparsenet.data import DATASETS
from sparsenet.formats import formats_for
from sparsenet.image_data import IMAGE_DATASETS
from sparsenet.recover import STAGES, RecoveryConfig
from sparsenet.train_conv import MOBILENET_ACTIVATIONS, MOBILENET_LAYER_KINDS, ConvTrainConfig
from sparsenet.validation import check_choice, check_sparsity

__all__ = ["BATCH1_INPUTS", "CONV_MAX_BATCH", "GRIDS", "OPTIONS", "RECOVERY_BATCH_SIZES", "RECOVERY_SCOPE",
           "SPARSITIES", "Case", "Grid", "Option", "add_options", "batch_sizes", "cases", "conv_config", "data_label",
           "filter_recovery", "grid_args", "grid_from_options", "is_conv", "recovery_config", "recovery_methods",
           "recovery_sparsities"]


@dataclass(frozen=True)
class Grid:
    datasets: tuple[str, ...]
    sparsities: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    methods: tuple[str, ...] | None = None  # None: every registered pruning method
    formats: tuple[str, ...] | None = None  # None: every registered format
    epochs: int | None = None  # None: the training module's default per dataset
    # accuracy recovery (sparsenet.recover): which stages (one-shot always runs), at which
    # sparsities, with what budget
    stages: tuple[str, ...] = ("oneshot",)
    recovery_sparsities: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98)
    recovery_epochs: int = 5
    recovery_samples: int | None = None  # train on the first N samples only (CI)
    # the conv section (image datasets: MobileNetV2, sparsenet.train_conv): its own training and
    # recovery budgets, accuracy on the first conv_test_samples test images (None: all), batch
    # sizes up to CONV_MAX_BATCH, recovery of the unstructured methods at both scopes
    conv_alpha: float = 1.0
    # width 1.0 on fashion_mnist_32, 2 cores: 2 epochs without augmentation reached 87.7 %; 15 with
    # augmentation (sparsenet.train_conv) take ~2 min each on a quiet AVX-512 Xeon
    conv_epochs: int = 15
    conv_samples: int | None = None
    conv_recovery_sparsities: tuple[float, ...] = (0.5, 0.7, 0.9)
    conv_recovery_epochs: int = 2  # 1 epoch of gradual pruning left 90 % far below dense
    conv_recovery_samples: int | None = None
    # filter (unit) pruning per layer, fine-tuned, at these sparsities of the channels (the issue's
    # 50 % target; timed as `shrunk` through the one-shot networks of the same shapes)
    conv_filter_sparsities: tuple[float, ...] = (0.5,)
    conv_test_samples: int | None = 5000

    def resolved(self) -> Grid:
        """The grid with ``None`` axes filled from the registries (at call time, so a format
        registered later is included)."""
        return dataclasses.replace(self, methods=tuple(sorted(PRUNERS)) if self.methods is None else self.methods,
                                   formats=tuple(FORMATS) if self.formats is None else self.formats)


SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
# Recovered networks are timed where a user picks an operating point.
RECOVERY_BATCH_SIZES = (1, 64)
RECOVERY_SCOPE = "layer"
# Distinct test images a batch-1 benchmark cycles through (bench/conftest.py: build).
BATCH1_INPUTS = 64
# Conv networks are timed at batch sizes up to this (the 1 and 64; a batch of 1024
# MobileNetV2 images takes seconds per call)
CONV_MAX_BATCH = 64
# the gradual schedule of the conv section starts at 50 % (the classic study's 50 % -> 90 %)
CONV_INITIAL_SPARSITY = 0.5

GRIDS: dict[str, Grid] = {
    # what the committed report uses
    "full": Grid(DATASETS + ("fashion_mnist_32",), SPARSITIES, (1, 64, 1024), stages=STAGES),
    # a few minutes end to end on 2 cores (after training): one recovery epoch at two sparsities
    "quick": Grid(DATASETS, (0.0, 0.5, 0.9, 0.99), (1, 64), stages=STAGES, recovery_sparsities=(0.9, 0.95),
                  recovery_epochs=1),
    # CI: one dataset, a 1-epoch model, the benchmark path run once per case without timing;
    # recovery on a sixth of the training set, so every stage runs for real in seconds; the two
    # methods every format runs after (block pruning and sparse_block are tests/test_block.py's)
    "ci": Grid(("mnist",), (0.0, 0.9), (1, 64), methods=("unit", "weight"), epochs=1, stages=STAGES,
               recovery_sparsities=(0.9,), recovery_epochs=1, recovery_samples=10_000),
}


class Option(NamedTuple):
    """One command-line option: ``--flag`` sets ``dest``; ``item`` is the type of each
    comma-separated item (lists) or of the value (``single``)."""

    flag: str
    dest: str
    item: type
    help: str
    single: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("--grid", "grid", str, f"named grid: {', '.join(GRIDS)} (default: full)", single=True),
    Option("--datasets", "datasets", str, f"comma-separated, from {', '.join(DATASETS)}"),
    Option("--methods", "methods", str, "comma-separated pruning methods (see sparsenet.PRUNERS)"),
    Option("--sparsities", "sparsities", float, "comma-separated fractions in [0, 1)"),
    Option("--batch-sizes", "batch_sizes", int, "comma-separated batch sizes"),
    Option("--formats", "formats", str, "comma-separated formats (see sparsenet.FORMATS)"),
    Option("--epochs", "epochs", int, "training epochs of the dense networks (default: per dataset)", single=True),
    Option("--stages", "stages", str, f"comma-separated from {','.join(STAGES)} (one-shot always runs); "
                                      "recovered networks are trained on first use, then cached"),
    Option("--recovery-sparsities", "recovery_sparsities", float, "comma-separated sparsities of the recovered "
                                                                  "networks (default: 0.8,0.9,0.95,0.98)"),
    Option("--recovery-epochs", "recovery_epochs", int, "training budget of each recovered network (default: 5)",
           single=True),
    Option("--conv-alpha", "conv_alpha", float, "MobileNetV2 width multiplier of the conv section (image "
                                                "datasets: fashion_mnist_32, cifar10; default 1.0)", single=True),
    Option("--conv-epochs", "conv_epochs", int, "training epochs of the MobileNetV2 (default 15)", single=True),
    Option("--conv-samples", "conv_samples", int, "train the MobileNetV2 on the first N images only (default: all)",
           single=True),
    Option("--conv-recovery-sparsities", "conv_recovery_sparsities", float,
           "sparsities of the recovered MobileNetV2s (default: 0.5,0.7,0.9)"),
    Option("--conv-recovery-epochs", "conv_recovery_epochs", int, "training budget of each recovered MobileNetV2 "
                                                                  "(default 2)", single=True),
    Option("--conv-recovery-samples", "conv_recovery_samples", int, "recover the MobileNetV2s on the first N "
                                                                    "training images only (default: all)", single=True),
    Option("--conv-filter-sparsities", "conv_filter_sparsities", float,
           "fine-tuned filter pruning of the MobileNetV2 per layer at these fractions of the channels (default 0.5; "
           "with the unit method and the finetuned stage)"),
    Option("--conv-test-samples", "conv_test_samples", int, "MobileNetV2 accuracy on the first N test images "
                                                            "(default 5000; 0: all)", single=True),
    Option("--threads", "threads", int, "numba and BLAS threads for the whole run (default: all cores)", single=True),
    Option("--data-dir", "data_dir", str, "directory holding the datasets (also: $SPARSENET_DATA_DIR)", single=True),
    Option("--quiet-wait", "quiet_wait", float, "seconds the benchmark run may spend in all waiting, before a case, "
                                                "for other processes to leave the CPU (default 120; 0: never)",
           single=True),
    Option("--model-cache", "model_cache", str, "trained-model cache (default: $SPARSENET_CACHE or "
                                                "~/.cache/sparsenet)", single=True),
    Option("--weights", "weights", str, "your own networks instead of training: DATASET=PATH.npz[,...]", single=True),
    Option("--model", "model", str, "report on your own model alone (.keras, .h5, .onnx or a sparsenet .npz) "
                                    "instead of ours; needs --data", single=True),
    Option("--data", "data", str, "with --model: its test data, an .npz with arrays x and y (integer labels), "
                                  f"or a built-in dataset ({', '.join(DATASETS)})", single=True),
    Option("--train-data", "train_data", str, "with --model: training data (.npz with x and y) for fine-tuning "
                                              "and gradual pruning; without it only one-shot pruning runs",
           single=True),
)
_GRID_FIELDS = {f.name for f in dataclasses.fields(Grid)}


def add_options(add: Callable[..., Any]) -> None:
    """Register :data:`OPTIONS` with ``add`` (argparse's ``add_argument`` or pytest's ``addoption``).
    Values arrive as strings (lists) or typed scalars; :func:`grid_from_options` checks them."""
    for opt in OPTIONS:
        add(opt.flag, dest=opt.dest, default=None, help=opt.help, **({"type": opt.item} if opt.single else {}))


def parse_list(text: str, kind: type, name: str) -> tuple:
    """'0,0.5,0.9' -> (0.0, 0.5, 0.9) with an error naming the option on a bad or empty list."""
    items = [v.strip() for v in text.split(",")]
    if not any(items):
        raise ValueError(f"{name} needs at least one value, found {text!r}")
    try:
        return tuple(kind(v) for v in items if v)
    except ValueError:
        raise ValueError(f"{name} expects a comma-separated list of {kind.__name__}, found {text!r}") from None


def grid_from_options(values: Mapping[str, Any], default: str = "full") -> Grid:
    """The grid named by ``values["grid"]`` (else ``default``) with every given axis overridden,
    resolved against the registries and checked; ValueError naming the first bad option."""
    name = values.get("grid") or default
    check_choice("grid", name, GRIDS)
    fields = {}
    for opt in OPTIONS:
        value = values.get(opt.dest)
        if opt.dest not in _GRID_FIELDS or value is None:
            continue
        fields[opt.dest] = value if opt.single else parse_list(value, opt.item, opt.flag)
    own = values.get("model")
    if own is not None or values.get("data") is not None or values.get("train_data") is not None:
        if own is None or values.get("data") is None:
            raise ValueError("--model, --data and --train-data go together: --model needs --data (its test data)")
        if values.get("datasets") is not None or values.get("weights") is not None:
            raise ValueError("--model reports on your model alone: leave out --datasets and --weights")
        fields["datasets"] = (data_label(values["data"]),)
        if values.get("train_data") is None:
            fields["stages"] = ("oneshot",)  # recovery needs training data
    grid = dataclasses.replace(GRIDS[name], **fields).resolved()
    for stage in grid.stages:
        check_choice("stage", stage, STAGES)
    grid = dataclasses.replace(grid, stages=tuple(s for s in STAGES if s == "oneshot" or s in grid.stages))
    for d in grid.datasets if own is None else ():
        check_choice("dataset", d, DATASETS + IMAGE_DATASETS)
    for m in grid.methods:
        check_choice("pruning method", m, PRUNERS)
    for f in grid.formats:
        check_choice("format", f, FORMATS)
    for s in grid.sparsities + grid.recovery_sparsities + grid.conv_recovery_sparsities + grid.conv_filter_sparsities:
        check_sparsity(s)
    if grid.conv_test_samples == 0:
        grid = dataclasses.replace(grid, conv_test_samples=None)
    ConvTrainConfig(alpha=grid.conv_alpha, epochs=grid.conv_epochs, train_samples=grid.conv_samples)  # checks
    for what, value in (("batch sizes", min(grid.batch_sizes)), ("epochs", grid.epochs),
                        ("recovery epochs", grid.recovery_epochs), ("threads", values.get("threads")),
                        ("conv recovery epochs", grid.conv_recovery_epochs),
                        ("conv recovery samples", grid.conv_recovery_samples),
                        ("conv test samples", grid.conv_test_samples)):
        if value is not None and value < 1:
            raise ValueError(f"{what} must be positive integers, found {value}")
    return grid


def data_label(data: str) -> str:
    """What a run calls the user's ``--data``: a built-in dataset's name, or the file's stem."""
    return data if data in DATASETS else Path(data).stem


def grid_args(grid: Grid, name: str, own_model: bool = False) -> list[str]:
    """Command-line options that make the suite run exactly ``grid``, derived from the named grid
    ``name`` (every axis with an option spelled out; the named grid supplies the rest). With
    ``own_model`` the datasets and stages follow from ``--model``/``--data``/``--train-data``,
    which the caller passes on."""
    args = [f"--grid={name}", *([] if own_model else [f"--datasets={','.join(grid.datasets)}"]),
            f"--methods={','.join(grid.methods)}",
            f"--sparsities={','.join(map(str, grid.sparsities))}",
            f"--batch-sizes={','.join(map(str, grid.batch_sizes))}", f"--formats={','.join(grid.formats)}",
            f"--stages={','.join(grid.stages)}",
            f"--recovery-sparsities={','.join(map(str, grid.recovery_sparsities))}",
            f"--recovery-epochs={grid.recovery_epochs}"]
    if grid.epochs:
        args.append(f"--epochs={grid.epochs}")
    args += [f"--conv-alpha={grid.conv_alpha}", f"--conv-epochs={grid.conv_epochs}",
             f"--conv-recovery-sparsities={','.join(map(str, grid.conv_recovery_sparsities))}",
             f"--conv-recovery-epochs={grid.conv_recovery_epochs}",
             f"--conv-filter-sparsities={','.join(map(str, grid.conv_filter_sparsities))}",
             f"--conv-test-samples={grid.conv_test_samples or 0}"]
    args += [f"--{flag}={value}" for flag, value in (("conv-samples", grid.conv_samples),
                                                      ("conv-recovery-samples", grid.conv_recovery_samples))
             if value is not None]
    return args


class Case(NamedTuple):
    dataset: str
    method: str
    sparsity: float
    batch: int
    format: str
    stage: str = "oneshot"

    @property
    def id(self) -> str:
        return (f"{self.dataset}-{self.format}-{self.method}-s{self.sparsity:.2f}-b{self.batch}"
                + ("" if self.stage == "oneshot" else f"-{self.stage}"))


def is_conv(dataset: str) -> bool:
    """Whether ``dataset`` is an image dataset, whose network is the conv section's MobileNetV2."""
    return dataset in IMAGE_DATASETS


def _formats(grid: Grid, method: str, recovered: bool, dataset: str = "") -> tuple[str, ...]:
    kinds = (MOBILENET_LAYER_KINDS, MOBILENET_ACTIVATIONS) if is_conv(dataset) else ()
    pruner = PRUNERS[method]
    worth = formats_for(pruner.structured, *kinds, method_blocks=pruner.block_rows is not None)
    return tuple(f for f in grid.formats if f in worth and (not recovered or FORMATS[f].operating_points))


def batch_sizes(grid: Grid, dataset: str, sizes: tuple[int, ...] | None = None) -> tuple[int, ...]:
    sizes = grid.batch_sizes if sizes is None else sizes
    return (tuple(b for b in sizes if b <= CONV_MAX_BATCH) or (min(sizes),)) if is_conv(dataset) else sizes


def recovery_sparsities(grid: Grid, dataset: str) -> tuple[float, ...]:
    return grid.conv_recovery_sparsities if is_conv(dataset) else grid.recovery_sparsities


def recovery_methods(grid: Grid, dataset: str) -> tuple[str, ...]:
    """The conv section recovers unstructured weight pruning at its recovery sparsities (filter
    pruning only fine-tuned, per layer, at ``conv_filter_sparsities``: :func:`filter_recovery`;
    block pruning has no conv format that pays for it, and a MobileNetV2 recovery costs minutes)."""
    return tuple(m for m in grid.methods
                 if not (is_conv(dataset) and (PRUNERS[m].structured or PRUNERS[m].block_rows)))


def filter_recovery(grid: Grid, dataset: str) -> tuple[float, ...]:
    """The sparsities at which the conv section fine-tunes filter-pruned networks (none where the
    grid has no unit method or finetuned stage, or for an MLP dataset)."""
    wanted = is_conv(dataset) and "unit" in grid.methods and "finetuned" in grid.stages
    return grid.conv_filter_sparsities if wanted else ()


def cases(grid: Grid) -> list[Case]:
    """Every benchmark case of ``grid``: the whole grid for one-shot networks, and for each
    recovered stage its sparsities at RECOVERY_BATCH_SIZES in the formats that time operating
    points (those the grid has). Conv datasets: the formats that run MobileNetV2's layer kinds,
    batch sizes up to CONV_MAX_BATCH."""
    grid = grid.resolved()
    out = [Case(d, m, s, b, f) for d in grid.datasets for m in grid.methods for s in grid.sparsities
           for b in batch_sizes(grid, d) for f in _formats(grid, m, False, d)]
    out += [Case(d, m, s, b, f, stage) for stage in grid.stages if stage != "oneshot" for d in grid.datasets
            for m in recovery_methods(grid, d) for s in recovery_sparsities(grid, d)
            for b in batch_sizes(grid, d, RECOVERY_BATCH_SIZES) for f in _formats(grid, m, True, d)]
    return out


def recovery_config(grid: Grid, dataset: str = "") -> RecoveryConfig:
    if is_conv(dataset):
        return RecoveryConfig(epochs=grid.conv_recovery_epochs, train_samples=grid.conv_recovery_samples,
                              initial_sparsity=CONV_INITIAL_SPARSITY)
    return RecoveryConfig(epochs=grid.recovery_epochs, train_samples=grid.recovery_samples)


def conv_config(grid: Grid, dataset: str) -> ConvTrainConfig:
    """The MobileNetV2 the conv section trains (or reuses from the cache) for ``dataset``; a run
    that trains on a subset (``conv_samples``, the test path) also scores it on the test subset."""
    return ConvTrainConfig(dataset=dataset, alpha=grid.conv_alpha, epochs=grid.conv_epochs,
                           train_samples=grid.conv_samples,
                           test_samples=grid.conv_test_samples if grid.conv_samples is not None else None)
