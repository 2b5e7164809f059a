"""results dict -> the report's accuracy-recovery section: one-shot against fine-tuned and gradual
accuracy, and the recovered networks' fastest formats. Pure string building: no I/O, no plotting."""

from __future__ import annotations

from collections import defaultdict

from bench.report.formats import baseline_format, method_order
from bench.report.markdown import MISSING, format_time, image_links, table
from bench.report.stages import STAGE_LABELS, STAGES, dense_latency, record_stage, stage_budgets

__all__ = ["recovery_section"]


def recovery_section(results: dict, figures: list[str]) -> str:
    """One-shot against fine-tuned and gradual accuracy, then the recovered networks' fastest formats."""
    recovery = results.get("recovery")
    recovered = [r for r in results["accuracy"] if record_stage(r) != "oneshot"]
    if not recovery or not recovered:  # e.g. a run with --stages oneshot
        return ""
    intro = ["`one-shot`: pruned once, no retraining (the section above)."]
    for key, stage in (("finetune", "fine-tuned"), ("gradual", "gradual")):
        if key in recovery:  # descriptions come from the run, shown as written
            intro.append(f"`{stage}`, {recovery[key]['epochs']} epochs: {recovery[key]['description'].rstrip('.')}.")
    scopes = ", ".join(f"`{sc}`" for sc in sorted({r["scope"] for r in recovered}))
    intro.append(f"Budgets are dense + recovery epochs, read from the records. Scope {scopes}; test accuracy, "
                 f"{MISSING} where a stage was not run at that sparsity.")
    out = ["## Accuracy recovery: fine-tuning and gradual pruning", " ".join(intro)]
    for dataset in dict.fromkeys(r["dataset"] for r in recovered):
        out += [f"### {dataset}", _budget_line(results, dataset), _recovery_table(results, dataset)]
    out.append(_operating_points(results))
    out += [image_links(figures, "recovery-"), image_links(figures, "tradeoff-")]
    return "\n\n".join(p for p in out if p)


def _budget_line(results: dict, dataset: str) -> str:
    model = next((m for m in results["models"] if m["dataset"] == dataset), None)
    budgets = stage_budgets(results, dataset)
    dense = f"{100 * model['dense_accuracy']:.2f}% after {budgets['dense']}" if model else budgets["dense"]
    return f"Dense network: {dense}. Budgets: " + ", ".join(
        f"{STAGE_LABELS[st]} {budgets[st]}" for st in STAGES[1:] if st in budgets) + "."


def _recovery_table(results: dict, dataset: str) -> str:
    recs = [r for r in results["accuracy"] if r["dataset"] == dataset]
    cell = {(r["method"], r["scope"], r["sparsity"], record_stage(r)): r["accuracy"] for r in recs}
    points = {(r["method"], r["scope"], r["sparsity"]) for r in recs if record_stage(r) != "oneshot"}
    methods = method_order({p[0] for p in points}, results)
    points = sorted(points, key=lambda p: (methods.index(p[0]), p))
    scopes = len({p[1] for p in points}) > 1  # a scope column only when it varies
    rows = [[m] + [sc] * scopes + [f"{s:.2f}"] + [_percent_or_missing(cell.get((m, sc, s, st))) for st in STAGES]
            for m, sc, s in points]
    return table(["method"] + ["scope"] * scopes + ["sparsity", "one-shot", "fine-tuned", "gradual"], rows)


def _operating_points(results: dict) -> str:
    """Each recovered network with its accuracy and, per batch, the fastest measured format."""
    latency = results["latency"]
    recovered = [r for r in latency if record_stage(r) != "oneshot"]
    batches = sorted({r["batch"] for r in recovered})
    if not batches:
        return ""
    baseline = baseline_format(results)
    accuracy = {(r["dataset"], r["method"], r["scope"], r["sparsity"], record_stage(r)): r["accuracy"]
                for r in results["accuracy"]}
    median = defaultdict(dict)
    for r in recovered:
        median[(r["dataset"], r["method"], record_stage(r), r["sparsity"], r.get("scope", "layer"))][
            (r["batch"], r["format"])] = r["median_s"]
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in recovered):
        dense = {b: dense_latency(latency, dataset, b, baseline) for b in batches}
        model = next((m for m in results["models"] if m["dataset"] == dataset), {})
        rows.append([dataset, MISSING, "dense", "0.00", _percent_or_missing(model.get("dense_accuracy"))]
                    + [_latency_cell(baseline, dense[b], dense[b]) for b in batches])
        keys = [k for k in median if k[0] == dataset]
        methods = method_order({k[1] for k in keys}, results)
        keys = sorted(keys, key=lambda k: (methods.index(k[1]), k[1], STAGES.index(k[2]), k[3], k[4]))
        for key in keys:
            _, method, stage, s, scope = key
            rows.append([dataset, method, stage, f"{s:.2f}",
                         _percent_or_missing(accuracy.get((dataset, method, scope, s, stage)))]
                        + [_fastest(median[key], b, dense[b]) for b in batches])
    return "\n\n".join([
        "### Operating points",
        "Per recovered network: its test accuracy and, per batch size, the fastest format measured, its median "
        f"latency and in brackets its speed-up over the dense network run by the `{baseline}` format (one-shot "
        "records at sparsity 0).",
        table(["dataset", "method", "stage", "sparsity", "accuracy"] + [f"batch {b}" for b in batches], rows)])


def _fastest(median: dict, batch: int, dense: float | None) -> str:
    timed = [(t, fmt) for (b, fmt), t in median.items() if b == batch]
    if not timed:
        return MISSING
    seconds, fmt = min(timed)
    return _latency_cell(fmt, seconds, dense)


def _latency_cell(fmt: str, seconds: float | None, dense: float | None) -> str:
    if seconds is None:
        return MISSING
    return f"`{fmt}` {format_time(seconds)}" + (f" ({dense / seconds:.2f}×)" if dense else "")


def _percent_or_missing(fraction: float | None) -> str:
    return MISSING if fraction is None else f"{100 * fraction:.2f}%"
