"""Train (or reuse) one dense network and copy its files out.

Usage::

    python -m sparsenet.train --dataset mnist [--epochs N] [--seed S] [--out DIR]
                              [--data-dir DIR] [--cache-dir DIR] [--widths 784,64,10] [--train-samples N]
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from .data import DATASETS
from .errors import cli_error
from .files import atomic_path
from .train import DEFAULT_EPOCHS, TrainConfig, model_dir, trained_network


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sparsenet.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--epochs", type=int, help=f"default per dataset: {DEFAULT_EPOCHS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also copy weights.npz and manifest.json into this directory")
    parser.add_argument("--data-dir", type=Path, help="directory holding the dataset's *-ubyte.gz files")
    parser.add_argument("--cache-dir", type=Path, help="default: $SPARSENET_CACHE or ~/.cache/sparsenet")
    parser.add_argument("--widths", help="layer widths for a smaller net, e.g. 784,64,32,10 "
                        "(default: 784,1000,1000,500,200,10)")
    parser.add_argument("--train-samples", type=int, help="train on the first N samples only (quick runs)")
    args = parser.parse_args(argv)
    extra = {}
    if args.widths is not None:
        try:
            extra["widths"] = tuple(int(w) for w in args.widths.split(","))
        except ValueError:
            parser.error(f"--widths takes comma-separated integers such as 784,64,10, found {args.widths!r}")
    try:
        config = TrainConfig(args.dataset, epochs=args.epochs, seed=args.seed,
                             train_samples=args.train_samples, **extra)
    except ValueError as exc:
        parser.error(str(exc))
    if args.data_dir is not None and not args.data_dir.expanduser().exists():
        parser.error(f"--data-dir: no such directory or file: {args.data_dir}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out: {args.out} is a file, expected a directory")
    try:
        _, manifest = trained_network(config, cache_dir=args.cache_dir, data_dir=args.data_dir)
        directory = model_dir(config, args.cache_dir)
        if args.out is not None:
            for name in ("weights.npz", "manifest.json"):
                with atomic_path(args.out / name) as tmp:
                    shutil.copyfile(directory / name, tmp)
            directory = args.out
    except (ValueError, OSError) as exc:  # missing or corrupt data (FileFormatError), unwritable paths
        return cli_error(exc)
    epoch_s = manifest["epoch_seconds"]
    print(f"{config.dataset}: test accuracy {manifest['test_accuracy']:.2%} (numpy export "
          f"{manifest['test_accuracy_numpy']:.2%}), {manifest['epochs']} epochs, "
          f"{sum(epoch_s) / len(epoch_s):.1f} s/epoch, {manifest['train_seconds']:.0f} s; files in {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
