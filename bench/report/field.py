"""`sparse` against the field: one table per network that answers "is it the fastest thing I could run?".

For sparsenet's own sparse formats (kind ``sparse`` with operating points), per cell of the
one-shot grid: the time, the speed-up over the dense baseline's reference (as in the latency
tables), the fastest *other* float format of that cell (any kind: dense, an engine or another
sparse kernel; quantized formats compute something else, and adaptive ones run our own kernels,
so neither counts) with the ratio to it, and how close the cell came to the machine's floor
(:mod:`bench.report.roofline`). A ratio to the fastest other format below 1 means something on
the table beat `sparse` in that cell; flagged cells (:func:`bench.report.noise.flagged`) on
either side are marked, since their ratio is not to be trusted.
"""

from __future__ import annotations

from bench.report.formats import baseline_format, format_info
from bench.report.markdown import format_time, table
from bench.report.noise import dense_formats, dense_references, flagged, reference_of

__all__ = ["field_rows", "field_section"]


def _mine(info: dict) -> list[str]:
    return [name for name, d in info.items()
            if d.get("kind") == "sparse" and d.get("operating_points") and not d.get("quantized")]


def _rivals(info: dict, mine: str) -> set[str]:
    return {name for name, d in info.items()
            if name != mine and not d.get("quantized") and d.get("kind") not in ("adaptive", None)}


def field_rows(results: dict, fmt: str) -> list[dict]:
    """One dict per one-shot latency cell of ``fmt``: dataset, method, batch, sparsity, time_s,
    vs_baseline, rival, rival_s, vs_rival, efficiency, bound, flagged (this cell or the rival's)."""
    info = format_info(results)
    baseline = baseline_format(results)
    references, flags = dense_references(results), flagged(results)
    dense = set(dense_formats(results))
    rivals = _rivals(info, fmt)
    latency = results.get("latency") or []
    cells: dict[tuple, dict[str, tuple[float, bool]]] = {}
    for i, r in enumerate(latency):
        if r.get("stage", "oneshot") != "oneshot":
            continue
        key = (r["dataset"], r["method"], r["batch"], r["sparsity"])
        # a dense format costs the same at every sparsity: its reference, as in the latency tables
        t = reference_of(references, r, r["format"]) if r["format"] in dense else r["median_s"]
        cells.setdefault(key, {})[r["format"]] = (t or r["median_s"], i in flags)
    roof = {(r["dataset"], r["method"], r["batch"], r["sparsity"], r["format"]): r
            for r in results.get("roofline") or ()}
    rows = []
    for key in sorted(k for k, by_format in cells.items() if fmt in by_format):
        by_format = cells[key]
        t, bad = by_format[fmt]
        others = {name: v for name, v in by_format.items() if name in rivals}
        rival = min(others, key=lambda name: others[name][0]) if others else None
        base = by_format.get(baseline)
        rl = roof.get(key + (fmt,), {})
        rows.append({
            "dataset": key[0], "method": key[1], "batch": key[2], "sparsity": key[3], "time_s": t,
            "vs_baseline": base[0] / t if base else None,
            "rival": rival, "rival_s": others[rival][0] if rival else None,
            "vs_rival": others[rival][0] / t if rival else None,
            "efficiency": rl.get("efficiency"), "bound": rl.get("bound"),
            "flagged": bad or (rival is not None and others[rival][1]),
        })
    return rows


def field_section(results: dict) -> str:
    info = format_info(results)
    baseline = baseline_format(results)
    machine = results.get("machine") or {}
    env = results.get("environment") or {}
    out = []
    for fmt in _mine(info):
        rows = field_rows(results, fmt)
        if not rows:
            continue
        isa = env.get("cpu_vector_isa")
        bits = machine.get("vector_bits")
        out.append(f"## `{fmt}` against the field\n\n"
                   f"Per cell of the one-shot grid: `{fmt}`'s time, its speed-up over `{baseline}`, the fastest "
                   "other float format of the same cell (dense, an engine or another sparse kernel; int8 formats "
                   "and `auto` left out) and the ratio to it (below 1×: that one was faster), and the fraction of "
                   "the machine's floor it reached (roofline section; 100% is the limit). "
                   + (f"sparsenet's kernels ran with {bits}-bit vectors" if bits else "")
                   + (f" on a CPU whose widest vector extension is {isa}" if isa else "")
                   + (". " if bits or isa else "")
                   + "† marks a cell where this or the rival cell is flagged (see the latency section).")
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["dataset"], r["method"]), []).append(r)
        for (dataset, method), recs in groups.items():
            batches = sorted({r["batch"] for r in recs})
            sparsities = sorted({r["sparsity"] for r in recs})
            cell = {(r["batch"], r["sparsity"]): r for r in recs}
            body = []
            for b in batches:
                for s in sparsities:
                    r = cell.get((b, s))
                    if r is None:
                        continue
                    body.append([
                        str(b), f"{s:.2f}", format_time(r["time_s"]) + (" †" if r["flagged"] else ""),
                        "–" if r["vs_baseline"] is None else f"{r['vs_baseline']:.2f}×",
                        "–" if r["rival"] is None else f"`{r['rival']}` {format_time(r['rival_s'])}",
                        "–" if r["vs_rival"] is None else f"{r['vs_rival']:.2f}×",
                        "–" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}% ({r['bound']})",
                    ])
            out.append(f"### {dataset}, {method} pruning\n\n" + table(
                ["batch", "sparsity", f"`{fmt}`", f"× `{baseline}`", "fastest other", "× it", "of floor"], body))
    return "\n\n".join(out)
