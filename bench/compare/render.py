"""``comparison.md``: the comparison dict (:func:`bench.compare.cli.build_comparison`) as Markdown."""

from __future__ import annotations

import math

from bench.compare.setup import MEASURED_DRIFT
from bench.report.markdown import MISSING, format_time, table
from bench.report.plots.records import group_by

__all__ = ["MAX_LISTED", "render_markdown"]

MAX_LISTED = 40  # changed cells listed per verdict in the Markdown; comparison.json holds all


def _ratio(r: float) -> str:
    return f"{r:.3f}"


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _sparsity(s: float) -> str:
    return f"{100 * s:g}%"


def _value(v) -> str:
    if v is None:
        return MISSING
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    return str(v).replace("|", "\\|")


def _how_much(g: float) -> str:
    """``"B's times are 8.0% higher"`` for small changes, ``"B takes 23.3x A's time"`` for large ones."""
    if 0.5 <= g <= 2:
        return f"B's times are {abs(g - 1):.1%} {'lower' if g < 1 else 'higher'} on the geometric mean"
    return f"B takes {g:.3g}x A's time on the geometric mean" if g > 1 else \
        f"B takes 1/{1 / g:.3g} of A's time on the geometric mean"


def headline(cmp: dict) -> str:
    s = cmp["summary"]["all"]
    g = s["geomean_ratio"]
    lines = [f"**{s['cells']} cells in both runs: {s['faster']} faster, {s['same']} the same, {s['slower']} slower "
             f"in B.** Geometric-mean ratio B/A {_ratio(g)}: {_how_much(g)} (below 1, B is faster)."]
    setup = cmp["setup"]
    if setup["same_machine"] is False:
        lines.append(f"**The runs are from different machines** ({', '.join(setup['machine_differences'])} differ): "
                     "these ratios compare machines, not code.")
    elif setup["same_machine"] is None:
        lines.append("Neither run recorded its machine: whether they ran on the same one is unknown.")
    if setup["drifted"]:
        lines.append(f"Measured in each run, {', '.join(setup['drifted'])} moved by more than "
                     f"{MEASURED_DRIFT:.0%} between the runs: another machine, or a busy one; read the ratios with "
                     "that in mind.")
    if cmp["across_threads"]:
        (ta,), (tb,) = {c["threads_a"] for c in cmp["cells"]}, {c["threads_b"] for c in cmp["cells"]}
        lines.append(f"Run A was timed at {ta} thread(s), run B at {tb}: cells are paired across thread counts, so "
                     "the ratios compare thread counts.")
    if setup["setup_differences"]:
        lines.append(f"Setup differences: {', '.join(setup['setup_differences'])} (table below).")
    changed_flagged = sum(bool(c["flag_a"] or c["flag_b"]) for c in cmp["cells"] if c["verdict"] != "same")
    if changed_flagged:
        lines.append(f"{changed_flagged} of the {s['faster'] + s['slower']} changed cells rest on a measurement "
                     "that its run's report flags (spread, order or a busy machine; column \"flags\" below): "
                     "measure those again before believing them.")
    if cmp["only_in_a"] or cmp["only_in_b"]:
        lines.append(f"{len(cmp['only_in_a'])} cells only in A and {len(cmp['only_in_b'])} only in B are listed at "
                     "the end.")
    return "\n\n".join(lines)


def setup_section(cmp: dict) -> str:
    rows = [[r["what"], _value(r["a"]), _value(r["b"]), "≠" if r["differs"] else ""] for r in cmp["setup"]["rows"]]
    return "## Machine and setup\n\n" + table(["", "A", "B", "differs"], rows)


def noise_section(cmp: dict) -> str:
    floor = cmp["noise"]["floor"]
    return (f"## How a verdict is reached\n\nRatio = median of B / median of A for the same cell (dataset, method, "
            f"sparsity, format, batch, threads, stage). Each run's spread of a cell is its IQR / median over the "
            f"benchmark rounds. A cell is **same** when |ln(B/A)| <= band, band = max({_pct(floor)}, "
            f"sqrt(spread_A² + spread_B²)): with the {_pct(floor)} floor, ratios between "
            f"{math.exp(-floor):.3f} and {math.exp(floor):.3f} are never called a change. Outside the band it is "
            "**faster** (B/A < 1) or **slower**. The floor covers the drift between runs that one run's spread "
            "cannot show (a shared machine, turbo, cache pressure); set it with `--threshold`.")


def summary_section(cmp: dict) -> str:
    s = cmp["summary"]

    def row(label, r):
        return [label, str(r["cells"]), str(r["faster"]), str(r["same"]), str(r["slower"]), str(r["flagged"]),
                _ratio(r["geomean_ratio"]), _ratio(r["min_ratio"]), _ratio(r["max_ratio"])]

    header = ["cells", "faster", "same", "slower", "flagged", "geomean B/A", "min B/A", "max B/A"]
    by_format = table(["format", *header], [row(r["format"], r) for r in s["by_format"]] + [row("all", s["all"])])
    by_batch = table(["batch", *header], [row(str(r["batch"]), r) for r in s["by_batch"]])
    batches = [r["batch"] for r in s["by_batch"]]
    cell = {(r["format"], r["batch"]): r for r in s["by_format_batch"]}
    grid = table(["format", *(f"batch {b}" for b in batches)],
                 [[r["format"], *(f"{_ratio(cell[r['format'], b]['geomean_ratio'])} "
                                  f"({cell[r['format'], b]['faster']}/{cell[r['format'], b]['same']}/"
                                  f"{cell[r['format'], b]['slower']})" if (r["format"], b) in cell else MISSING
                                  for b in batches)] for r in s["by_format"]])
    return ("## Summary\n\nPer format (every dataset, method, sparsity, batch and stage):\n\n" + by_format +
            "\n\nPer batch size:\n\n" + by_batch +
            "\n\nGeometric-mean B/A per format and batch (faster/same/slower cells):\n\n" + grid)


def _flags(cell: dict) -> str:
    return "; ".join(f"{run}: {cell[f'flag_{run.lower()}']}" for run in ("A", "B") if cell[f"flag_{run.lower()}"])


def changed_section(cmp: dict) -> str:
    parts = ["## Cells that changed"]
    for v in ("faster", "slower"):
        cells = sorted((c for c in cmp["cells"] if c["verdict"] == v), key=lambda c: -abs(math.log(c["ratio"])))
        if not cells:
            parts.append(f"No cell is {v} in B.")
            continue
        rows = [[c["dataset"], c["method"], c["stage"], c["format"], str(c["batch"]), _sparsity(c["sparsity"]),
                 format_time(c["median_a_s"]), format_time(c["median_b_s"]), _ratio(c["ratio"]), _pct(c["band"]),
                 _flags(c)]
                for c in cells[:MAX_LISTED]]
        more = f"\n\n{len(cells) - MAX_LISTED} more in comparison.json." if len(cells) > MAX_LISTED else ""
        parts.append(f"{len(cells)} cells {v} in B, largest change first:\n\n" +
                     table(["dataset", "method", "stage", "format", "batch", "sparsity", "A", "B", "B/A", "band",
                            "flags"],
                           rows) + more)
    return "\n\n".join(parts)


def only_section(cmp: dict) -> str:
    parts = ["## Cells in one run only"]
    for label, rows in (("A", cmp["only_in_a"]), ("B", cmp["only_in_b"])):
        if not rows:
            parts.append(f"None only in {label}.")
            continue
        groups = group_by(rows, "dataset", "method", "stage", "format", "batch", "threads")
        lines = [[*map(str, key), ", ".join(_sparsity(r["sparsity"]) for r in group)] for key, group in groups.items()]
        parts.append(f"{len(rows)} cells only in {label}:\n\n" +
                     table(["dataset", "method", "stage", "format", "batch", "threads", "sparsities"], lines))
    return "\n\n".join(parts)


def render_markdown(cmp: dict, figures: list[str]) -> str:
    a, b = cmp["run_a"], cmp["run_b"]
    runs = table(["run", "name", "created", "file"],
                 [[label, r["name"], _value(r["created"]), r["path"]] for label, r in (("A", a), ("B", b))])
    images = "\n\n".join(f"![{name[:-4]}]({name})" for name in figures)
    plot = ("## Plots\n\nRatio B/A on a log axis (below 1: B faster); the grey band is the noise floor. "
            "comparison.png: a dot per cell, green faster, red slower, grey the same, a black bar the geometric "
            "mean; per dataset: ratio against sparsity per format, hollow markers the same. A black ring marks a "
            "cell that either run's report flags.\n\n" + images) if figures else ""
    sections = [f"# {b['name']} against {a['name']}", runs, headline(cmp), plot, summary_section(cmp),
                setup_section(cmp), noise_section(cmp), changed_section(cmp), only_section(cmp)]
    return "\n\n".join(s for s in sections if s) + "\n"
