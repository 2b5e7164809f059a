"""python -m bench.report: train (or reuse), prune, convert, benchmark and report, end to end.

Writes a new run folder under ``--out`` (default ``reports/``) holding ``results.json``,
``report.md``, the PNG plots and pytest-benchmark's raw JSON. The folder is assembled under a
temporary name and renamed at the end, so an interrupted run leaves no half-written report,
and an earlier run is never overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.grid import (
    RECOVERY_SCOPE,
    Grid,
    add_options,
    batch_sizes,
    cases,
    filter_recovery,
    grid_args,
    grid_from_options,
    is_conv,
    parse_list,
    recovery_config,
    recovery_methods,
    recovery_sparsities,
)
from bench.models import load_study, parse_weights
from bench.report.accuracy import accuracy_records, recovery_records
from bench.report.conv import conv_summary
from bench.report.formats import describe_methods, describe_registry
from bench.report.machine import measure_machine, merge_ceilings
from bench.report.remeasure import MAX_CELLS, merge_remeasured, remeasure_cases
from bench.report.render import render_markdown
from bench.report.results import compact_raw, latency_and_size, recovery_summary
from bench.report.roofline import roofline_records
from bench.report.weights import weight_records
from bench.runtime import environment, fix_threads
from sparsenet import PRUNERS, SCOPES
from sparsenet.errors import cli_error
from sparsenet.files import write_json, write_text
from sparsenet.validation import check_choice

__all__ = ["console", "main", "parse_args"]

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parents[1] / "test_forward.py"
# in a checkout, runs go to its reports/; installed (the `sparsenet` command), to ./reports
DEFAULT_OUT = REPO / "reports" if (REPO / "pyproject.toml").is_file() else Path("reports")
SCHEMA_VERSION = 1
PARENT_PID_ENV = "SPARSENET_PARENT_PID"  # read by bench/conftest.py: the benchmark child dies with the report
OWNER_FILE = ".owner"  # "<pid> <start time>" of the run that owns an .incomplete-* folder


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


_PATH_OPTIONS = ("--data-dir", "--model-cache", "--model", "--train-data")


def _for_child(opt: str, value) -> str:
    """An option's value for the suite's process, which runs in the repository: the paths a user
    typed, relative to their own working directory, made absolute (``--data`` only where it names a
    file rather than a built-in dataset; ``--weights`` per DATASET=PATH item)."""
    if opt == "--weights":
        return ",".join(f"{d}={os.path.abspath(os.path.expanduser(p))}" if sep else d
                        for d, sep, p in (item.partition("=") for item in str(value).split(",")))
    if opt in _PATH_OPTIONS or (opt == "--data" and os.path.exists(os.path.expanduser(str(value)))):
        return os.path.abspath(os.path.expanduser(str(value)))
    return str(value)


def run_benchmarks(grid: Grid, args, threads: int, raw_json: Path, only: list | None = None) -> None:
    """Run bench/test_forward.py in a fresh process with pytest-benchmark; its JSON is the only output.
    ``only``: these cases (bench.grid.Case) alone, in this order, instead of the whole grid."""
    targets = [f"{SUITE}::test_forward[{case.id}]" for case in only] if only else [str(SUITE)]
    cmd = [sys.executable, "-m", "pytest", *targets, "--benchmark-only",
           "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:terminal", "-o", "addopts=", "--progress",
           f"--benchmark-json={Path(raw_json).resolve()}", f"--benchmark-max-time={args.max_time}",
           "--benchmark-min-rounds=5", "--benchmark-disable-gc", "--benchmark-sort=name",
           "--benchmark-columns=median,iqr,rounds", "--benchmark-warmup=on", f"--threads={threads}",
           *grid_args(grid, grid_name(args), own_model=args.model is not None)]
    for opt, value in (("--data-dir", args.data_dir), ("--quiet-wait", args.quiet_wait),
                       ("--model-cache", args.model_cache),
                       ("--weights", args.weights), ("--model", args.model), ("--data", args.data),
                       ("--train-data", args.train_data)):
        if value is not None and value != "":
            cmd.append(f"{opt}={_for_child(opt, value)}")
    shown = cmd[2:] if not only else ["pytest", f"<{len(only)} cases>"] + cmd[3 + len(targets):]
    print("  $ " + shlex.join(shown), flush=True)
    result = run_child(cmd, cwd=REPO if (REPO / "pyproject.toml").is_file() else None)
    if result.returncode != 0:
        raise SystemExit(f"benchmark suite failed (pytest exit {result.returncode}); see its output above")


SMOKE_MAX_TIME_S, SMOKE_CELLS = 0.05, 4


def remeasure_flagged(grid: Grid, args, threads: int, raw_json: Path, latency: list[dict]) -> list[dict]:
    """Time the flagged cells again at the end of the run, each right after its dense case
    (:mod:`bench.report.remeasure`); returns the latency records with those cells replaced."""
    from bench.report.noise import flagged
    from sparsenet.formats import baseline

    flags = flagged({"formats": describe_registry(), "latency": latency})
    if not flags or args.max_time <= 0:
        return latency
    # a smoke run (rounds of a few ms) flags cells by the dozen and means nothing by them: a few
    # re-measured cells show the path works
    cells = MAX_CELLS if args.max_time >= SMOKE_MAX_TIME_S else SMOKE_CELLS
    again = remeasure_cases(latency, flags, baseline(), cells)
    print(f"      re-measuring {min(len(flags), cells)} of {len(flags)} flagged cells, each after its dense "
          f"case ({len(again)} cases)", flush=True)
    run_benchmarks(grid, args, threads, raw_json, only=again)
    fresh, _ = latency_and_size(compact_raw(json.loads(raw_json.read_text())))
    write_json(raw_json, compact_raw(json.loads(raw_json.read_text())))
    merged = merge_remeasured(latency, fresh, flags)
    still = flagged({"formats": describe_registry(), "latency": merged})
    print(f"      {len(still)} cells still flagged", flush=True)
    return merged


def run_child(cmd: list[str], cwd=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group, and kill that group whenever this process stops
    waiting for it: at its end (leftover grandchildren), on Ctrl-C or any exception. The child
    also learns this process's PID (``$SPARSENET_PARENT_PID``) so that bench/conftest.py can
    have it killed if this process is killed outright (SIGKILL runs no ``finally``)."""
    # a report started from inside a pytest-xdist worker (the test suite) must not make its child
    # believe it is one: pytest-benchmark then refuses --benchmark-only
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
           PARENT_PID_ENV: str(os.getpid())}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    try:
        # wait without reaping: while the child is a zombie its PID (= the group's id) cannot be reused
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode)


def new_run_dir(out: Path, tag: str) -> Path:
    """The run folder's final name, unique even for runs started in the same second: its
    ``.incomplete-<name>`` work folder is created here exclusively (``mkdir``, retried with a
    suffix), with this process's identity inside, after folders of dead runs are removed."""
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_runs(out)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    for n in range(1, 10_000):
        run = out / (f"{stamp}-{tag}" if n == 1 else f"{stamp}-{tag}-{n}")
        if run.exists():
            continue
        try:
            (out / f".incomplete-{run.name}").mkdir()
        except FileExistsError:  # another run took this name first
            continue
        (out / f".incomplete-{run.name}" / OWNER_FILE).write_text(_identity(os.getpid()))
        return run
    raise FileExistsError(f"{out}: no free run folder name for {stamp}-{tag}")


def finish_run(work: Path, run_dir: Path) -> None:
    """Rename the finished work folder onto its final name (without its owner file)."""
    (work / OWNER_FILE).unlink(missing_ok=True)
    os.replace(work, run_dir)


def clean_stale_runs(out: Path) -> list[Path]:
    """Remove ``.incomplete-*`` folders whose owner is dead (killed runs); never a live run's."""
    removed = []
    for work in out.glob(".incomplete-*"):
        try:
            owner = (work / OWNER_FILE).read_text().split()
            pid = int(owner[0])
        except (OSError, ValueError, IndexError):
            # no owner file: a run from before owner files, or one between its mkdir and the write
            try:
                if time.time() - work.stat().st_mtime < 60:
                    continue
            except OSError:
                continue
        else:
            if _identity(pid) == " ".join(owner):
                continue  # alive (and the same process, not a new one that reused the PID)
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work)
    if removed:
        print(f"removed {len(removed)} unfinished run folder(s) of runs that died: "
              f"{', '.join(p.name for p in removed)}", flush=True)
    return removed


def _identity(pid: int) -> str:
    """``"<pid> <start time>"`` of a live process (start time from /proc on Linux), else ``""``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass  # alive, another user's
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid} {start}"


def conv_layer_records(grid: Grid, models: dict, data: dict) -> list[dict]:
    """Per-layer times of each conv network (bench.report.layers) at the grid's sparsities and
    batch sizes, in those of ``dense`` and ``sparse_conv`` the grid has."""
    from bench.report.layers import layer_time_records

    formats = [f for f in ("dense", "sparse_conv") if f in grid.resolved().formats]
    records = []
    for d in (d for d in grid.datasets if is_conv(d) and formats):
        print(f"      per-layer times of the {d} MobileNetV2 ({', '.join(formats)})", flush=True)
        records += layer_time_records(d, models[d][0], data[d].x_test, grid.sparsities, batch_sizes(grid, d),
                                      tuple(formats))
    return records


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
        if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
            raise ValueError(f"--data-dir: no such directory or file: {args.data_dir}")
        # a user's own model and data are read and checked before any work starts
        study = load_study((), None, args.data_dir, args.model_cache, None, args.model, args.data,
                           args.train_data) if args.model else None
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag = args.tag or grid_name(args)
    out = Path(args.out)
    try:
        run_dir = new_run_dir(out, tag)
    except OSError as exc:  # --out is a file, unwritable, ...
        return cli_error(exc)
    work = out / f".incomplete-{run_dir.name}"
    started = time.time()
    try:
        threads = fix_threads(args.threads)
        if study is None:
            print(f"[1/5] models for {', '.join(grid.datasets)} (trained once, then cached)", flush=True)
            study = load_study(grid.datasets, grid.epochs, args.data_dir, args.model_cache, weights, grid=grid)
        else:
            print(f"[1/5] your model {args.model} on {', '.join(grid.datasets)}", flush=True)
        models, data = study
        recovered = grid.stages[1:]
        recovered_at = {s for d in grid.datasets for s in recovery_sparsities(grid, d)} if recovered else set()
        sparsities = tuple(sorted(set(grid.sparsities) | recovered_at))
        print(f"[2/5] one-shot accuracy: {len(grid.methods)} methods x {len(scopes)} scopes x "
              f"{len(sparsities)} sparsities per dataset", flush=True)
        accuracy = accuracy_records(models, data, grid.methods, scopes, sparsities, formats=grid.formats)
        unstructured = ([m for m in grid.methods if not PRUNERS[m].structured and not PRUNERS[m].block_rows]
                        or list(grid.methods))
        # per-layer histograms of the MLPs (MobileNetV2's 36 pruned layers would not read at a glance)
        weights = weight_records({d: m for d, m in models.items() if not is_conv(d)}, unstructured[0],
                                 [s for s in (0.5, 0.9, max(sparsities)) if s in sparsities])
        config = recovery_config(grid)
        plan = [(d, scope) for d in grid.datasets for scope in (scopes if is_conv(d) else [RECOVERY_SCOPE])]
        n_recovered = sum(len(recovered) * len(recovery_methods(grid, d)) * len(recovery_sparsities(grid, d))
                          for d, _ in plan) + sum(len(filter_recovery(grid, d)) for d in grid.datasets)
        print(f"[3/5] recovery: {n_recovered} networks ({', '.join(recovered) or 'none'}), "
              f"{' / '.join(sorted({str(recovery_config(grid, d).epochs) for d in grid.datasets}))} epochs "
              f"each on top of the dense training (trained once, then cached)", flush=True)
        for d, scope in plan:  # the conv section recovers at both scopes: the classic flat-vs-layer figure
            accuracy += recovery_records({d: models[d]}, data, recovery_methods(grid, d), recovered,
                                         recovery_sparsities(grid, d), scope, recovery_config(grid, d),
                                         args.data_dir, args.model_cache)
        for d in grid.datasets:  # filter pruning of the conv networks: fine-tuned per layer (issue 12's target)
            if filter_recovery(grid, d):
                accuracy += recovery_records({d: models[d]}, data, ["unit"], ["finetuned"], filter_recovery(grid, d),
                                             "layer", recovery_config(grid, d), args.data_dir, args.model_cache)
        n_cases = len(cases(grid))
        # the ceilings once before the latency stage and once after it: the higher of each is kept
        smoke = args.max_time < SMOKE_MAX_TIME_S
        ceilings_before = measure_machine(quick=smoke)
        print(f"[4/5] latency: {n_cases} benchmark cases, {threads} threads", flush=True)
        raw_path = work / f"raw-{run_dir.name}.json"  # named by run: pytest-benchmark compare labels runs by file
        run_benchmarks(grid, args, threads, raw_path)
        raw = compact_raw(json.loads(raw_path.read_text()))
        write_json(raw_path, raw)
        latency, size = latency_and_size(raw)
        latency = remeasure_flagged(grid, args, threads, work / f"raw-{run_dir.name}-remeasured.json", latency)
        layers = conv_layer_records(grid, models, data)
        print("[5/5] measuring the machine's GEMM and FMA peaks and bandwidth; writing results.json, plots, report.md",
              flush=True)
        machine = merge_ceilings(ceilings_before, measure_machine(quick=smoke))
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
            "weights": weights,
            **({"recovery": recovery_summary(grid, config, models)} if recovered else {}),
            **({"conv": conv_summary(grid, models, data)} if any(is_conv(d) for d in models) else {}),
            "latency": latency,
            **({"layers": layers} if layers else {}),
            "size": size,
            "machine": machine,
            "roofline": roofline_records([r for r in latency if r["stage"] == "oneshot"], size, machine, formats),
            "elapsed_s": None,
        }
        results["elapsed_s"] = round(time.time() - started, 1)
        figures = write_figures(results, work)
        write_json(work / "results.json", results)
        write_text(work / "report.md", render_markdown(results, figures))
        finish_run(work, run_dir)
    except (ValueError, OSError) as exc:  # bad or corrupt data, model or path (FileFormatError too): one line
        shutil.rmtree(work, ignore_errors=True)
        return cli_error(exc)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; 130 as a shell reports SIGINT
        shutil.rmtree(work, ignore_errors=True)
        print(f"interrupted: nothing written ({work.name} removed; earlier runs in {out} untouched)",
              file=sys.stderr)
        return 130
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"report: {run_dir / 'report.md'}  ({results['elapsed_s']:.0f} s)")
    return 0


CONSOLE_USAGE = """usage: sparsenet report MODEL --data TEST [--train-data TRAIN] [--quick] [options]
       sparsenet export MODEL --sparsity S --out PATH [--method weight|unit] [--scope layer|global] [--shrink]
                        [--int8]
       sparsenet compare RUN_A RUN_B [--out DIR] [--threshold 0.05]

  MODEL   your trained network: a Keras model (.keras, .h5), an ONNX graph (.onnx) or a sparsenet .npz
  TEST    its test data: an .npz with arrays x (inputs) and y (integer labels), or mnist / fashion_mnist

Prunes MODEL at every sparsity of the grid, checks and times every format on this machine and
writes a report folder (accuracy, latency, sizes, plots). `sparsenet report --help` lists every
option; `python -m bench.report --model MODEL --data TEST` is the same job.

`sparsenet export` prunes MODEL once and writes it out: PATH ending in .keras (plain Keras, zeros
in place), .onnx (an ONNX graph) or anything else (sparsenet's compact sparse file, e.g. .spz,
which sparsenet.load_pruned reads back); --shrink deletes pruned units (Keras and ONNX); --int8
writes the compact file with int8 weights, one scale per unit (sparsenet.export_int8.load_sparse_int8
runs it as the sparse_int8 format).

`sparsenet compare` says, cell by cell, whether report run RUN_B is faster than RUN_A beyond the
noise of both runs (`python -m bench.compare RUN_A RUN_B` is the same job).
"""


def export_main(argv) -> int:
    """``sparsenet export MODEL --sparsity S --out PATH``: prune a model once and save it."""
    from bench.models import read_model
    from sparsenet import prune, save_pruned
    from sparsenet.export_int8 import check_int8_path, save_int8

    p = argparse.ArgumentParser(prog="sparsenet export", description="prune a model and save the pruned network")
    p.add_argument("model", help="a Keras model (.keras, .h5), an ONNX graph or a sparsenet .npz")
    p.add_argument("--sparsity", type=float, required=True, help="fraction of weights (or units) to remove")
    p.add_argument("--method", default="weight", help="pruning method (see sparsenet.PRUNERS; default weight)")
    p.add_argument("--scope", default="layer", help="layer or global (default layer)")
    p.add_argument("--out", required=True, help="output file: .keras, .onnx, or a compact sparse file (.spz)")
    p.add_argument("--shrink", action="store_true", help="delete pruned units (Keras and ONNX exports)")
    p.add_argument("--int8", action="store_true",
                   help="int8 weights (one scale per unit) in the compact file; runs as the sparse_int8 format")
    args = p.parse_args(argv)
    try:
        path = Path(args.model).expanduser()
        if not path.is_file():
            raise ValueError(f"no model file at {path}")
        if args.int8 and args.shrink:
            raise ValueError("--shrink is for Keras and ONNX exports; the int8 compact file keeps the masks "
                             "(convert(load_pruned(path), 'shrunk_int8') deletes the dead units)")
        if args.int8:  # checked before the (slow) model read: the int8 file is never Keras or ONNX
            check_int8_path(args.out)
        net, _ = read_model(path)
        masked = prune(net, args.method, args.sparsity, args.scope)
        if args.int8:
            written = save_int8(masked, args.out, source=str(path))
        else:
            written = save_pruned(masked, args.out, shrink=args.shrink, source=str(path))
    except (ValueError, TypeError, NotImplementedError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{written}: {masked.method} pruning at {masked.achieved_sparsity():.2%} of the weights"
          f"{', int8 weights' if args.int8 else ''} ({Path(written).stat().st_size:,} bytes)")
    return 0


def console(argv=None) -> int:
    """The ``sparsenet`` command: ``sparsenet report MODEL --data TEST [...]`` and ``sparsenet export``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(CONSOLE_USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "export":
        return export_main(rest)
    if command == "compare":
        from bench.compare.cli import main as compare_main

        return compare_main(rest)
    if command != "report":
        print(f"error: unknown command {command!r}; commands: report, export, compare\n\n{CONSOLE_USAGE}",
              file=sys.stderr, end="")
        return 2
    if rest and not rest[0].startswith("-"):
        rest = ["--model", rest[0], *rest[1:]]
    return main(rest)

