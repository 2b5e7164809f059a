"""python -m bench.compare RUN_A RUN_B: is run B faster than run A, cell by cell, beyond noise?

RUN_A and RUN_B are run folders written by ``python -m bench.report`` (or their results.json).
Writes a new folder ``compare-<A>-vs-<B>/`` (under --out; default: RUN_B's parent folder) with
comparison.md, comparison.json and the plots (comparison.png, comparison-<dataset>.png). The
folder is assembled under a temporary name and renamed at the end; an existing comparison is
never overwritten (a new one gets a -2, -3, ... suffix).

A cell is "same" when |ln(B/A)| <= max(threshold, sqrt(spread_A^2 + spread_B^2)), spread =
IQR / median of the cell's benchmark rounds; see bench/compare/cells.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
from pathlib import Path

from bench.compare.cells import DEFAULT_FLOOR, compare_runs
from bench.compare.render import render_markdown
from bench.compare.runs import Run, read_run
from bench.compare.setup import setup_rows, setup_verdict
from bench.report.noise import flagged
from sparsenet.errors import cli_error
from sparsenet.files import write_json, write_text

__all__ = ["SCHEMA_VERSION", "build_comparison", "main", "new_compare_dir", "parse_args"]

SCHEMA_VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", help="the run compared against (a run folder or its results.json)")
    p.add_argument("run_b", help="the new run")
    p.add_argument("--out", help="parent folder of the comparison folder (default: RUN_B's parent folder)")
    p.add_argument("--threshold", type=float, default=DEFAULT_FLOOR,
                   help=f"noise floor: the smallest change called faster or slower, as a fraction "
                        f"(default {DEFAULT_FLOOR:g} = {100 * DEFAULT_FLOOR:g}%%)")
    return p.parse_args(argv)


def build_comparison(a: Run, b: Run, floor: float = DEFAULT_FLOOR) -> dict:
    """Everything comparison.json holds: the runs, the noise rule, setup differences, cells, summaries."""
    pair = compare_runs(a.results["latency"], b.results["latency"], floor, names=("A", "B"),
                        results=_styles_results(a, b), flags=(flagged(a.results), flagged(b.results)))
    rows = setup_rows(a.results, b.results)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_a": _describe(a), "run_b": _describe(b),
        "noise": {"floor": floor, "rule": "same when |ln(B/A)| <= max(floor, sqrt(spread_a^2 + spread_b^2)), "
                                          "spread = iqr_s / median_s of the cell in each run"},
        "setup": {**setup_verdict(rows), "rows": rows},
        **pair,
    }


def _describe(run: Run) -> dict:
    return {"name": run.name, "path": str(run.path), "created": run.results.get("created"),
            "command": run.results.get("command")}


def _styles_results(a: Run, b: Run) -> dict:
    """A results-shaped dict for format order and colours: B's stored formats over A's, both runs' records."""
    formats = {**(a.results.get("formats") or {}), **(b.results.get("formats") or {})}
    return {"formats": formats, "latency": [*a.results["latency"], *b.results["latency"]]}


def _name_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "run"


def new_compare_dir(out: Path, name: str) -> tuple[Path, Path]:
    """``(work folder, final folder)``: a free ``name`` (or ``name-2``, ...) under ``out``, its
    ``.incomplete-`` work folder created exclusively so two comparisons never share one."""
    out.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        final = out / (name if n == 1 else f"{name}-{n}")
        if final.exists():
            continue
        work = out / f".incomplete-{final.name}"
        try:
            work.mkdir()
        except FileExistsError:
            continue
        return work, final
    raise FileExistsError(f"{out}: no free comparison folder name for {name}")


def write_figures(cmp: dict, styles_results: dict, folder: Path) -> list[str]:
    from bench.compare.plot import figure_names  # matplotlib only from here on

    written = []
    for stem, make in figure_names(cmp, styles_results):
        fig = make()
        fig.savefig(folder / f"{stem}.png", dpi=110)
        written.append(f"{stem}.png")
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        a = read_run(args.run_a, "RUN_A")
        b = read_run(args.run_b, "RUN_B")
        cmp = build_comparison(a, b, args.threshold)
        # next to RUN_B's run folder; next to the file itself when it is not a run folder's results.json
        beside = b.path.parent.parent if b.path.name == "results.json" else b.path.parent
        out = Path(args.out).expanduser() if args.out else beside
        work, final = new_compare_dir(out, f"compare-{_name_part(a.name)}-vs-{_name_part(b.name)}")
    except (ValueError, TypeError, OSError) as exc:  # FileFormatError is a ValueError
        return cli_error(exc)
    try:
        styles_results = _styles_results(a, b)
        figures = write_figures(cmp, styles_results, work)
        write_json(work / "comparison.json", cmp)
        write_text(work / "comparison.md", render_markdown(cmp, figures))
        if final.exists():  # taken since new_compare_dir looked: never replace it
            raise FileExistsError(f"{final} appeared while this comparison was written; run it again")
        os.rename(work, final)
    except (ValueError, OSError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        return cli_error(exc)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    s = cmp["summary"]["all"]
    print(f"{s['cells']} cells: {s['faster']} faster, {s['same']} same, {s['slower']} slower in B "
          f"(geometric-mean B/A {s['geomean_ratio']:.3f})" +
          ("; different machines: ratios compare machines, not code" if cmp["setup"]["same_machine"] is False else ""))
    print(f"comparison: {final / 'comparison.md'}")
    return 0

