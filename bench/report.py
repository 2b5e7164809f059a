"""python -m bench.report: train (or reuse), prune, convert, benchmark and report, end to end.

Writes a new run folder under ``--out`` (default ``reports/``) holding ``results.json``,
``report.md``, the PNG plots and pytest-benchmark's raw JSON. The folder is assembled under a
temporary name and renamed at the end, so an interrupted run leaves no half-written report,
and an earlier run is never overwritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import cases
from bench.accuracy import accuracy_records, recovery_records
from bench.models import load_models, parse_weights
from bench.machine import measure_machine
from bench.render import render_markdown
from bench.roofline import roofline_records
from bench.runtime import environment, fix_threads
from sparsenet._files import write_json, write_text
from sparsenet._validation import check_choice, check_sparsity
from sparsenet.recover import STAGES

REPO = Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small grid (sparsity 0/.5/.9/.99, batch 1/64)")
    p.add_argument("--grid", choices=sorted(cases.GRIDS), help="named grid (default: full, or quick with --quick)")
    p.add_argument("--datasets", help=f"comma-separated, from {list(cases.DATASETS)}")
    p.add_argument("--methods", help="comma-separated pruning methods: weight,unit")
    p.add_argument("--scopes", default="layer,global", help="accuracy sweep scopes (default: layer,global)")
    p.add_argument("--sparsities", help="comma-separated fractions in [0, 1)")
    p.add_argument("--batch-sizes", help="comma-separated batch sizes")
    p.add_argument("--formats", help=f"comma-separated, from {list(cases.ALL_FORMATS)}")
    p.add_argument("--epochs", type=int, help="training epochs (default: per dataset, see sparsenet.train)")
    p.add_argument("--stages", help="accuracy recovery stages from oneshot,finetuned,gradual (one-shot always "
                                    "runs; default: all three, --stages oneshot skips recovery)")
    p.add_argument("--recovery-epochs", type=int,
                   help="training budget of every fine-tuned and gradually pruned network (default: 5, quick: 1)")
    p.add_argument("--recovery-sparsities", help="comma-separated sparsities to recover (default: 0.8,0.9,0.95,0.98)")
    p.add_argument("--threads", type=int, help="numba and BLAS threads for the whole run (default: all cores)")
    p.add_argument("--max-time", type=float, default=0.25,
                   help="pytest-benchmark seconds per case (default 0.25; at least 5 rounds always)")
    p.add_argument("--out", default=str(REPO / "reports"), help="parent folder of the run folder")
    p.add_argument("--tag", help="name suffix of the run folder (default: the grid name)")
    p.add_argument("--data-dir", help="directory with the IDX gz files (also: SPARSENET_DATA_DIR)")
    p.add_argument("--model-cache", help="trained-model cache (default: $SPARSENET_CACHE or ~/.cache/sparsenet)")
    p.add_argument("--weights", help="benchmark your own networks (sparsenet .npz, see sparsenet.io) instead of "
                                     "training: DATASET=PATH.npz[,DATASET=PATH.npz]")
    return p.parse_args(argv)


def resolve_grid(args) -> cases.Grid:
    """The grid the run uses, after the named grid and every override; invalid values fail here."""
    grid = cases.GRIDS[args.grid or ("quick" if args.quick else "full")]
    fields = {}
    for name, kind in (("datasets", str), ("methods", str), ("sparsities", float),
                       ("batch_sizes", int), ("formats", str), ("stages", str), ("recovery_sparsities", float)):
        text = getattr(args, name)
        if text:
            fields[name] = cases.parse_list(text, kind, f"--{name.replace('_', '-')}")
    for name in ("epochs", "recovery_epochs"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    grid = cases.Grid(**{**grid.__dict__, **fields})
    for stage in grid.stages:
        check_choice("stage", stage, STAGES)
    grid = cases.Grid(**{**grid.__dict__, "stages": tuple(s for s in STAGES if s == "oneshot" or s in grid.stages)})
    for d in grid.datasets:
        check_choice("dataset", d, cases.DATASETS)
    for m in grid.methods:
        check_choice("pruning method", m, cases.PRUNERS)
    for f in grid.formats:
        check_choice("format", f, cases.ALL_FORMATS)
    for s in grid.sparsities + grid.recovery_sparsities:
        check_sparsity(s)
    if any(b < 1 for b in grid.batch_sizes) or (grid.epochs is not None and grid.epochs < 1) \
            or grid.recovery_epochs < 1:
        raise ValueError("batch sizes, epochs and recovery epochs must be positive integers")
    return grid


def run_benchmarks(grid: cases.Grid, args, threads: int, raw_json: Path) -> None:
    """Run bench/test_forward.py in a fresh process with pytest-benchmark; its JSON is the only output."""
    cmd = [sys.executable, "-m", "pytest", str(REPO / "bench" / "test_forward.py"), "--benchmark-only",
           "-p", "no:cacheprovider", "-q", "--no-header",
           f"--benchmark-json={raw_json}", f"--benchmark-max-time={args.max_time}",
           "--benchmark-min-rounds=5", "--benchmark-disable-gc", "--benchmark-sort=name",
           "--benchmark-columns=median,iqr,rounds",
           f"--datasets={','.join(grid.datasets)}", f"--methods={','.join(grid.methods)}",
           f"--sparsities={','.join(map(str, grid.sparsities))}",
           f"--batch-sizes={','.join(map(str, grid.batch_sizes))}",
           f"--formats={','.join(grid.formats)}", f"--threads={threads}",
           f"--stages={','.join(grid.stages)}",
           f"--recovery-sparsities={','.join(map(str, grid.recovery_sparsities))}",
           f"--recovery-epochs={grid.recovery_epochs}",
           f"--grid={args.grid or ('quick' if args.quick else 'full')}"]  # the axes not spelled out above
    if grid.epochs:
        cmd.append(f"--epochs={grid.epochs}")
    for opt, value in (("--data-dir", args.data_dir), ("--model-cache", args.model_cache),
                       ("--weights", args.weights)):
        if value:
            cmd.append(f"{opt}={value}")
    print("  $ " + shlex.join(cmd[2:]), flush=True)
    result = subprocess.run(cmd, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"benchmark suite failed (pytest exit {result.returncode}); see its output above")


def latency_and_size(raw: dict) -> tuple[list[dict], list[dict]]:
    latency, size = [], []
    for bench in raw["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        key = {k: info[k] for k in ("dataset", "method", "sparsity", "format")}
        stage = info.get("stage", "oneshot")
        latency.append({**key, "batch": info["batch"], "threads": info["threads"], "median_s": stats["median"],
                        "iqr_s": stats["iqr"], "rounds": stats["rounds"], "min_s": stats["min"],
                        "achieved_sparsity": info["achieved_sparsity"], "stage": stage})
        if stage == "oneshot" and info["batch"] == min(b["extra_info"]["batch"] for b in raw["benchmarks"]):
            size.append({**key, "bytes": info["bytes"], "nnz": info["nnz"]})
    return latency, size


def compact_raw(raw: dict) -> dict:
    """pytest-benchmark's JSON without the per-round samples (``stats.data``): every statistic
    stays, and a full-grid run shrinks from ~80 MB to under 1 MB."""
    for bench in raw["benchmarks"]:
        bench["stats"].pop("data", None)
    return raw


def recovery_summary(grid: cases.Grid, config, models: dict) -> dict:
    """What results.json says about the recovery budgets, next to the records that used them."""
    schedule = config.schedule(max(grid.recovery_sparsities))
    return {
        "stages": list(grid.stages), "sparsities": list(grid.recovery_sparsities),
        "scopes": [cases.RECOVERY_SCOPE], "config": dataclasses.asdict(config),
        "dense_epochs": {d: m.get("epochs") for d, (_, m) in models.items()},
        "finetune": {"epochs": config.epochs, "learning_rate": config.learning_rate,
                     "description": f"one-shot prune, then train with the masks fixed: {config.optimizer}, "
                                    f"learning rate {config.learning_rate:g} cosine-decayed to 0"},
        "gradual": {"epochs": config.epochs, "learning_rate": config.learning_rate,
                    "begin_step": schedule.begin_step, "end_step": schedule.end_step,
                    "frequency": schedule.frequency, "power": schedule.power,
                    "steps": config.epochs * config.steps_per_epoch(),
                    "description": f"train from the dense network while sparsity rises from "
                                   f"{config.initial_sparsity:g} to the target along a polynomial decay (power "
                                   f"{schedule.power:g}) over steps {schedule.begin_step}-{schedule.end_step} of "
                                   f"{config.epochs * config.steps_per_epoch()}, masks recomputed every "
                                   f"{schedule.frequency} steps, then fixed; same optimizer and learning rate "
                                   f"as fine-tuning"},
    }


def new_run_dir(out: Path, tag: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    run, n = out / f"{stamp}-{tag}", 2
    while run.exists():
        run, n = out / f"{stamp}-{tag}-{n}", n + 1
    return run


def write_figures(results: dict, folder: Path) -> list[str]:
    from matplotlib.figure import Figure  # noqa: F401  (matplotlib only needed from here on)
    from bench.plots import figure_names

    written = []
    for stem, make in figure_names(results):
        fig = make()
        fig.savefig(folder / f"{stem}.png", dpi=110)
        written.append(f"{stem}.png")
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        grid = resolve_grid(args)
        scopes = cases.parse_list(args.scopes, str, "--scopes")
        for s in scopes:
            check_choice("scope", s, ("global", "layer"))
        weights = parse_weights(args.weights)
        for dataset, path in weights.items():
            check_choice("dataset", dataset, grid.datasets)
            if not path.is_file():
                raise ValueError(f"--weights: no file at {path}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag = args.tag or args.grid or ("quick" if args.quick else "full")
    out = Path(args.out)
    run_dir = new_run_dir(out, tag)
    work = out / f".incomplete-{run_dir.name}"
    work.mkdir(parents=True)
    started = time.time()
    try:
        threads = fix_threads(args.threads)
        print(f"[1/5] models for {', '.join(grid.datasets)} (trained once, then cached)", flush=True)
        models = load_models(grid.datasets, grid.epochs, args.data_dir, args.model_cache, weights)
        recovered = grid.stages[1:]
        sparsities = tuple(sorted(set(grid.sparsities) | (set(grid.recovery_sparsities) if recovered else set())))
        print(f"[2/5] one-shot accuracy: {len(grid.methods)} methods x {len(scopes)} scopes x "
              f"{len(sparsities)} sparsities per dataset", flush=True)
        accuracy = accuracy_records(models, grid.methods, scopes, sparsities, args.data_dir)
        config = cases.recovery_config(grid)
        n_recovered = len(recovered) * len(grid.datasets) * len(grid.methods) * len(grid.recovery_sparsities)
        print(f"[3/5] recovery: {n_recovered} networks ({', '.join(recovered) or 'none'}), {config.epochs} epochs "
              f"each on top of the dense training (trained once, then cached)", flush=True)
        accuracy += recovery_records(models, grid.methods, recovered, grid.recovery_sparsities,
                                     cases.RECOVERY_SCOPE, config, args.data_dir, args.model_cache)
        n_cases = len(cases.cases(grid))
        print(f"[4/5] latency: {n_cases} benchmark cases, {threads} threads", flush=True)
        raw_path = work / "raw-benchmarks.json"
        run_benchmarks(grid, args, threads, raw_path)
        raw = compact_raw(json.loads(raw_path.read_text()))
        write_json(raw_path, raw)
        latency, size = latency_and_size(raw)
        print("[5/5] measuring the machine's GEMM peak and bandwidth; writing results.json, plots and report.md",
              flush=True)
        machine = measure_machine()
        results = {
            "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python -m bench.report " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "grid": {**grid.__dict__, "scopes": scopes, "max_time_s": args.max_time},
            "environment": environment(),
            "models": [{"dataset": d, "architecture": m["architecture"], "epochs": m["epochs"],
                        "dense_accuracy": m["test_accuracy_numpy"], "manifest": m}
                       for d, (_, m) in models.items()],
            "accuracy": accuracy,
            **({"recovery": recovery_summary(grid, config, models)} if recovered else {}),
            "latency": latency,
            "size": size,
            "machine": machine,
            "roofline": roofline_records([r for r in latency if r["stage"] == "oneshot"], size, machine),
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


if __name__ == "__main__":
    sys.exit(main())
