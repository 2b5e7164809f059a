"""python -m bench.report: train (or reuse), prune, convert, benchmark and report, end to end.

Writes a new run folder under ``--out`` (default ``reports/``) holding ``results.json``,
``report.md``, the PNG plots and pytest-benchmark's raw JSON. The folder is assembled under a
temporary name and renamed at the end, so an interrupted run leaves no half-written report,
and an earlier run is never overwritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.grid import (
    RECOVERY_SCOPE,
    Grid,
    add_options,
    cases,
    grid_args,
    grid_from_options,
    parse_list,
    recovery_config,
)
from bench.models import load_study, parse_weights
from bench.report.accuracy import accuracy_records, recovery_records
from bench.report.formats import describe_methods, describe_registry
from bench.report.machine import measure_machine
from bench.report.render import render_markdown
from bench.report.results import compact_raw, latency_and_size, recovery_summary
from bench.report.roofline import roofline_records
from bench.runtime import environment, fix_threads
from sparsenet import SCOPES
from sparsenet.files import write_json, write_text
from sparsenet.validation import check_choice

__all__ = ["console", "main", "parse_args"]

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parents[1] / "test_forward.py"
# in a checkout, runs go to its reports/; installed (the `sparsenet` command), to ./reports
DEFAULT_OUT = REPO / "reports" if (REPO / "pyproject.toml").is_file() else Path("reports")
SCHEMA_VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the quick grid (sparsity 0/.5/.9/.99, batch 1/64)")
    add_options(p.add_argument)  # the grid's options, shared with the benchmark suite (bench/grid.py)
    p.add_argument("--scopes", default=",".join(sorted(SCOPES, reverse=True)),
                   help="accuracy sweep scopes (default: layer,global)")
    p.add_argument("--max-time", type=float, default=0.25,
                   help="pytest-benchmark seconds per case (default 0.25; at least 5 rounds always)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"parent folder of the run folder (default: {DEFAULT_OUT})")
    p.add_argument("--tag", help="name suffix of the run folder (default: the grid name)")
    return p.parse_args(argv)


def grid_name(args) -> str:
    return args.grid or ("quick" if args.quick else "full")


def run_benchmarks(grid: Grid, args, threads: int, raw_json: Path) -> None:
    """Run bench/test_forward.py in a fresh process with pytest-benchmark; its JSON is the only output."""
    cmd = [sys.executable, "-m", "pytest", str(SUITE), "--benchmark-only",
           "-p", "no:cacheprovider", "-q", "--no-header",
           f"--benchmark-json={raw_json}", f"--benchmark-max-time={args.max_time}",
           "--benchmark-min-rounds=5", "--benchmark-disable-gc", "--benchmark-sort=name",
           "--benchmark-columns=median,iqr,rounds", "--benchmark-warmup=on", f"--threads={threads}",
           *grid_args(grid, grid_name(args), own_model=args.model is not None)]
    for opt, value in (("--data-dir", args.data_dir), ("--model-cache", args.model_cache),
                       ("--weights", args.weights), ("--model", args.model), ("--data", args.data),
                       ("--train-data", args.train_data)):
        if value:
            cmd.append(f"{opt}={value}")
    print("  $ " + shlex.join(cmd[2:]), flush=True)
    result = subprocess.run(cmd, cwd=REPO if (REPO / "pyproject.toml").is_file() else None)
    if result.returncode != 0:
        raise SystemExit(f"benchmark suite failed (pytest exit {result.returncode}); see its output above")


def new_run_dir(out: Path, tag: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    run, n = out / f"{stamp}-{tag}", 2
    while run.exists():
        run, n = out / f"{stamp}-{tag}-{n}", n + 1
    return run


def write_figures(results: dict, folder: Path) -> list[str]:
    from bench.report.plots import figure_names  # matplotlib only needed from here on

    written = []
    for stem, make in figure_names(results):
        fig = make()
        fig.savefig(folder / f"{stem}.png", dpi=110)
        written.append(f"{stem}.png")
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        grid = grid_from_options(vars(args), default=grid_name(args))
        scopes = parse_list(args.scopes, str, "--scopes")
        for s in scopes:
            check_choice("scope", s, SCOPES)
        weights = parse_weights(args.weights)
        for dataset, path in weights.items():
            check_choice("dataset", dataset, grid.datasets)
            if not path.is_file():
                raise ValueError(f"--weights: no file at {path}")
        # a user's own model and data are read and checked before any work starts
        study = load_study((), None, args.data_dir, args.model_cache, None, args.model, args.data,
                           args.train_data) if args.model else None
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag = args.tag or grid_name(args)
    out = Path(args.out)
    run_dir = new_run_dir(out, tag)
    work = out / f".incomplete-{run_dir.name}"
    work.mkdir(parents=True)
    started = time.time()
    try:
        threads = fix_threads(args.threads)
        if study is None:
            print(f"[1/5] models for {', '.join(grid.datasets)} (trained once, then cached)", flush=True)
            study = load_study(grid.datasets, grid.epochs, args.data_dir, args.model_cache, weights)
        else:
            print(f"[1/5] your model {args.model} on {', '.join(grid.datasets)}", flush=True)
        models, data = study
        recovered = grid.stages[1:]
        sparsities = tuple(sorted(set(grid.sparsities) | (set(grid.recovery_sparsities) if recovered else set())))
        print(f"[2/5] one-shot accuracy: {len(grid.methods)} methods x {len(scopes)} scopes x "
              f"{len(sparsities)} sparsities per dataset", flush=True)
        accuracy = accuracy_records(models, data, grid.methods, scopes, sparsities)
        config = recovery_config(grid)
        n_recovered = len(recovered) * len(grid.datasets) * len(grid.methods) * len(grid.recovery_sparsities)
        print(f"[3/5] recovery: {n_recovered} networks ({', '.join(recovered) or 'none'}), {config.epochs} epochs "
              f"each on top of the dense training (trained once, then cached)", flush=True)
        accuracy += recovery_records(models, data, grid.methods, recovered, grid.recovery_sparsities,
                                     RECOVERY_SCOPE, config, args.data_dir, args.model_cache)
        n_cases = len(cases(grid))
        print(f"[4/5] latency: {n_cases} benchmark cases, {threads} threads", flush=True)
        raw_path = work / "raw-benchmarks.json"
        run_benchmarks(grid, args, threads, raw_path)
        raw = compact_raw(json.loads(raw_path.read_text()))
        write_json(raw_path, raw)
        latency, size = latency_and_size(raw)
        print("[5/5] measuring the machine's GEMM peak and bandwidth; writing results.json, plots and report.md",
              flush=True)
        machine = measure_machine()
        formats = describe_registry()
        results = {
            "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m bench.report " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "grid": {**grid.__dict__, "scopes": scopes, "max_time_s": args.max_time},
            "environment": environment(),
            "formats": formats,
            "methods": describe_methods(),
            "models": [{"dataset": d, "architecture": m["architecture"], "epochs": m["epochs"],
                        "dense_accuracy": m["test_accuracy_numpy"], "manifest": m}
                       for d, (_, m) in models.items()],
            "accuracy": accuracy,
            **({"recovery": recovery_summary(grid, config, models)} if recovered else {}),
            "latency": latency,
            "size": size,
            "machine": machine,
            "roofline": roofline_records([r for r in latency if r["stage"] == "oneshot"], size, machine,
                                         {name: d["kind"] for name, d in formats.items()}),
            "elapsed_s": None,
        }
        results["elapsed_s"] = round(time.time() - started, 1)
        figures = write_figures(results, work)
        write_json(work / "results.json", results)
        write_text(work / "report.md", render_markdown(results, figures))
        os.replace(work, run_dir)
    except (FileNotFoundError, ValueError) as exc:  # missing/corrupt data or model files: say so, no traceback
        shutil.rmtree(work, ignore_errors=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"report: {run_dir / 'report.md'}  ({results['elapsed_s']:.0f} s)")
    return 0


CONSOLE_USAGE = """usage: sparsenet report MODEL --data TEST [--train-data TRAIN] [--quick] [options]

  MODEL   your trained network: a Keras model (.keras, .h5), an ONNX graph (.onnx) or a sparsenet .npz
  TEST    its test data: an .npz with arrays x (inputs) and y (integer labels), or mnist / fashion_mnist

Prunes MODEL at every sparsity of the grid, checks and times every format on this machine and
writes a report folder (accuracy, latency, sizes, plots). `sparsenet report --help` lists every
option; `python -m bench.report --model MODEL --data TEST` is the same job.
"""


def console(argv=None) -> int:
    """The ``sparsenet`` command: ``sparsenet report MODEL --data TEST [...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(CONSOLE_USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command != "report":
        print(f"error: unknown command {command!r}; commands: report\n\n{CONSOLE_USAGE}", file=sys.stderr, end="")
        return 2
    if rest and not rest[0].startswith("-"):
        rest = ["--model", rest[0], *rest[1:]]
    return main(rest)

