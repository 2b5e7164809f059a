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

from bench import cases
from bench.accuracy import accuracy_records
from bench.models import load_models, parse_weights
from bench.machine import measure_machine
from bench.render import render_markdown
from bench.roofline import roofline_records
from bench.runtime import environment, fix_threads
from sparsenet._files import write_json, write_text
from sparsenet._validation import check_choice, check_sparsity

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
                       ("batch_sizes", int), ("formats", str)):
        text = getattr(args, name)
        if text:
            fields[name] = cases.parse_list(text, kind, f"--{name.replace('_', '-')}")
    if args.epochs:
        fields["epochs"] = args.epochs
    grid = cases.Grid(**{**grid.__dict__, **fields})
    for d in grid.datasets:
        check_choice("dataset", d, cases.DATASETS)
    for m in grid.methods:
        check_choice("pruning method", m, cases.PRUNERS)
    for f in grid.formats:
        check_choice("format", f, cases.ALL_FORMATS)
    for s in grid.sparsities:
        check_sparsity(s)
    if any(b < 1 for b in grid.batch_sizes) or (grid.epochs is not None and grid.epochs < 1):
        raise ValueError("batch sizes and epochs must be positive integers")
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
           f"--formats={','.join(grid.formats)}", f"--threads={threads}"]
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
        latency.append({**key, "batch": info["batch"], "threads": info["threads"], "median_s": stats["median"],
                        "iqr_s": stats["iqr"], "rounds": stats["rounds"], "min_s": stats["min"],
                        "achieved_sparsity": info["achieved_sparsity"]})
        if info["batch"] == min(b["extra_info"]["batch"] for b in raw["benchmarks"]):
            size.append({**key, "bytes": info["bytes"], "nnz": info["nnz"]})
    return latency, size


def compact_raw(raw: dict) -> dict:
    """pytest-benchmark's JSON without the per-round samples (``stats.data``): every statistic
    stays, and a full-grid run shrinks from ~80 MB to under 1 MB."""
    for bench in raw["benchmarks"]:
        bench["stats"].pop("data", None)
    return raw


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
        print(f"[1/4] models for {', '.join(grid.datasets)} (trained once, then cached)", flush=True)
        models = load_models(grid.datasets, grid.epochs, args.data_dir, args.model_cache, weights)
        print(f"[2/4] accuracy: {len(grid.methods)} methods x {len(scopes)} scopes x "
              f"{len(grid.sparsities)} sparsities per dataset", flush=True)
        accuracy = accuracy_records(models, grid.methods, scopes, grid.sparsities, args.data_dir)
        n_cases = sum(len(cases.formats_for(m, grid.formats)) for m in grid.methods) \
            * len(grid.datasets) * len(grid.sparsities) * len(grid.batch_sizes)
        print(f"[3/4] latency: {n_cases} benchmark cases, {threads} threads", flush=True)
        raw_path = work / "raw-benchmarks.json"
        run_benchmarks(grid, args, threads, raw_path)
        raw = compact_raw(json.loads(raw_path.read_text()))
        write_json(raw_path, raw)
        latency, size = latency_and_size(raw)
        print("[4/4] measuring the machine's GEMM peak and bandwidth; writing results.json, plots and report.md",
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
            "latency": latency,
            "size": size,
            "machine": machine,
            "roofline": roofline_records(latency, size, machine),
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
