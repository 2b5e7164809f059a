"""results dict -> report.md text. Pure string building: no I/O, no plotting."""

from __future__ import annotations

import statistics
from collections import defaultdict

from bench.roofline import SPARSE_FORMATS
from sparsenet.recover import STAGES

# How the evaluated network was obtained (sparsenet.recover). Records written before recovery
# existed carry no "stage": they are "oneshot". bench.plots reads stages through this module too.
STAGE_LABELS = {"oneshot": "one-shot", "finetuned": "one-shot + fine-tune", "gradual": "gradual"}
_STAGED = ("accuracy", "latency", "size", "roofline")  # record lists that may carry a stage
_MISSING = "—"
_OPERATING_BATCHES = (1, 64)  # the batch sizes recovered networks are timed at


def record_stage(record: dict, where: str | None = None) -> str:
    """The record's stage ("oneshot" when absent); ValueError naming an unknown one and ``where`` it is."""
    stage = record.get("stage", "oneshot")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} in {where or 'record ' + _describe(record)}; "
                         f"expected one of {list(STAGES)} (no stage means 'oneshot')")
    return stage


def oneshot_view(results: dict) -> dict:
    """results with only one-shot records in its staged lists: what the pre-recovery sections read."""
    return results | {t: [r for r in results[t] if record_stage(r) == "oneshot"] for t in _STAGED if t in results}


def stage_budgets(results: dict, dataset: str) -> dict[str, str]:
    """Epochs per stage of ``dataset``, from its records: {"dense": "15 epochs", "finetuned": "15+5", ...}.

    A recovered budget reads dense+recovery epochs; "?" stands for dense epochs nobody recorded (a
    user-supplied network). Records of one stage with different budgets are listed with " / ".
    """
    model = next((m for m in results.get("models", ()) if m["dataset"] == dataset), {})
    epochs = model.get("epochs")
    if epochs is None:
        epochs = results.get("recovery", {}).get("dense_epochs", {}).get(dataset)
    out = {"dense": "unknown epochs" if epochs is None else f"{epochs} epochs"}
    for stage in STAGES[1:]:
        pairs = sorted({(r.get("epochs"), r.get("recovery_epochs", 0)) for r in results.get("accuracy", ())
                        if r["dataset"] == dataset and record_stage(r) == stage},
                       key=lambda p: (p[0] is None, p))
        if pairs:
            out[stage] = " / ".join(f"{'?' if e is None else e - extra}+{extra}" for e, extra in pairs)
    return out


def dense_latency(latency: list[dict], dataset: str, batch: int) -> float | None:
    """The dense network's dense-format median at ``batch``: one-shot records at sparsity 0 (median
    over methods), else the median of the dense format across the recovered records."""
    rows = [r for r in latency if r["dataset"] == dataset and r["batch"] == batch and r["format"] == "dense"]
    at_zero = [r["median_s"] for r in rows if record_stage(r) == "oneshot" and r["sparsity"] == 0.0]
    recovered = [r["median_s"] for r in rows if record_stage(r) != "oneshot"]
    return statistics.median(at_zero or recovered) if at_zero or recovered else None


def _describe(record: dict) -> str:
    return "/".join(str(record[k]) for k in ("dataset", "method", "sparsity") if k in record)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _by_dataset_method(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Records grouped by (dataset, method), in first-seen order."""
    groups = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["method"])].append(r)
    return groups


def _images(figures: list[str], prefix: str) -> str:
    return "\n".join(f"![{name[:-4]}]({name})" for name in figures if name.startswith(prefix))


def environment_section(results: dict) -> str:
    env = results["environment"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} kernels, {b['num_threads']} threads)"
                     for b in env["blas"]) or "unknown"
    rows = [
        ["CPU", f"{env['cpu']}, {env['cores']} cores"],
        ["threads", f"numba {env['numba_threads']}, BLAS {env['blas_threads']} (fixed for the whole run)"],
        ["BLAS", blas],
        ["versions", f"Python {env['python']}, NumPy {env['numpy']}, SciPy {env['scipy']}, numba {env['numba']}, "
                     f"TensorFlow {env['tensorflow']}"],
        ["platform", env["platform"]],
        ["git commit", str(env["git_commit"])],
        ["command", f"`{results['command']}`"],
        ["created", f"{results['created']} ({results['elapsed_s']:.0f} s)"],
        ["timing", f"pytest-benchmark, median of ≥ 5 rounds, ~{results['grid']['max_time_s']} s per case, GC off; "
                   "pruning, conversion and JIT compilation outside the timed region"],
    ]
    return "## Machine and run\n\n" + "\n".join(["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def models_section(results: dict) -> str:
    rows = [[m["dataset"], "-".join(map(str, m["architecture"])), "–" if m["epochs"] is None else str(m["epochs"]),
             f"{100 * m['dense_accuracy']:.2f}%",
             f"{m['manifest']['train_seconds']:.0f} s" if "train_seconds" in m["manifest"]
             else f"user weights: `{m['manifest'].get('source')}`"]
            for m in results["models"]]
    return "## Dense networks\n\n" + _table(["dataset", "architecture", "epochs", "test accuracy", "training"], rows)


def accuracy_section(results: dict, figures: list[str]) -> str:
    out = ["## Accuracy after one-shot pruning (no retraining)",
           "Test accuracy on the 10,000 test images. `weight`: the k% smallest |w| of each hidden matrix "
           "removed; `unit`: the k% hidden units with the smallest L2 norm removed. `layer` ranks within "
           "each layer, `global` across all hidden layers; the logits layer is not pruned. Rows are the requested "
           "sparsity (fraction of weights, or of units for `unit`); `results.json` has the achieved weight "
           "sparsity and each layer's, and the plots use the achieved value."]
    by_ds = defaultdict(list)
    for r in results["accuracy"]:
        by_ds[r["dataset"]].append(r)
    for dataset, recs in by_ds.items():
        settings = sorted({(r["method"], r["scope"]) for r in recs}, key=lambda ms: (ms[0] != "weight", ms[1]))
        cell = {(r["method"], r["scope"], r["sparsity"]): r["accuracy"] for r in recs}
        rows = [[f"{s:.2f}"] + [f"{100 * cell[(m, sc, s)]:.2f}%" if (m, sc, s) in cell else "–"
                                for m, sc in settings]
                for s in sorted({r["sparsity"] for r in recs})]
        out += [f"### {dataset}", _table(["sparsity"] + [f"{m}/{sc}" for m, sc in settings], rows),
                _images(figures, f"accuracy-{dataset}")]
    return "\n\n".join(out)


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
                 f"{_MISSING} where a stage was not run at that sparsity.")
    out = ["## Accuracy recovery: fine-tuning and gradual pruning", " ".join(intro)]
    for dataset in dict.fromkeys(r["dataset"] for r in recovered):
        out += [f"### {dataset}", _budget_line(results, dataset), _recovery_table(results["accuracy"], dataset)]
    out.append(_operating_points(results))
    out += [_images(figures, "recovery-"), _images(figures, "tradeoff-")]
    return "\n\n".join(p for p in out if p)


def _budget_line(results: dict, dataset: str) -> str:
    model = next((m for m in results["models"] if m["dataset"] == dataset), None)
    budgets = stage_budgets(results, dataset)
    dense = f"{100 * model['dense_accuracy']:.2f}% after {budgets['dense']}" if model else budgets["dense"]
    return f"Dense network: {dense}. Budgets: " + ", ".join(
        f"{STAGE_LABELS[st]} {budgets[st]}" for st in STAGES[1:] if st in budgets) + "."


def _recovery_table(accuracy: list[dict], dataset: str) -> str:
    recs = [r for r in accuracy if r["dataset"] == dataset]
    cell = {(r["method"], r["scope"], r["sparsity"], record_stage(r)): r["accuracy"] for r in recs}
    points = sorted({(r["method"], r["scope"], r["sparsity"]) for r in recs if record_stage(r) != "oneshot"},
                    key=lambda p: (p[0] != "weight", p))
    scopes = len({p[1] for p in points}) > 1  # a scope column only when it varies
    rows = [[m] + [sc] * scopes + [f"{s:.2f}"] + [_percent_or_missing(cell.get((m, sc, s, st))) for st in STAGES]
            for m, sc, s in points]
    return _table(["method"] + ["scope"] * scopes + ["sparsity", "one-shot", "fine-tuned", "gradual"], rows)


def _operating_points(results: dict) -> str:
    """Each recovered network with its accuracy and, per batch, the fastest measured format."""
    latency = results["latency"]
    recovered = [r for r in latency if record_stage(r) != "oneshot"]
    batches = [b for b in _OPERATING_BATCHES if any(r["batch"] == b for r in recovered)]
    if not batches:
        return ""
    accuracy = {(r["dataset"], r["method"], r["scope"], r["sparsity"], record_stage(r)): r["accuracy"]
                for r in results["accuracy"]}
    median = defaultdict(dict)
    for r in recovered:
        median[(r["dataset"], r["method"], record_stage(r), r["sparsity"], r.get("scope", "layer"))][
            (r["batch"], r["format"])] = r["median_s"]
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in recovered):
        dense = {b: dense_latency(latency, dataset, b) for b in batches}
        model = next((m for m in results["models"] if m["dataset"] == dataset), {})
        rows.append([dataset, _MISSING, "dense", "0.00", _percent_or_missing(model.get("dense_accuracy"))]
                    + [_latency_cell("dense", dense[b], dense[b]) for b in batches])
        keys = sorted((k for k in median if k[0] == dataset),
                      key=lambda k: (k[1] != "weight", k[1], STAGES.index(k[2]), k[3], k[4]))
        for key in keys:
            _, method, stage, s, scope = key
            rows.append([dataset, method, stage, f"{s:.2f}",
                         _percent_or_missing(accuracy.get((dataset, method, scope, s, stage)))]
                        + [_fastest(median[key], b, dense[b]) for b in batches])
    return "\n\n".join([
        "### Operating points",
        "Per recovered network: its test accuracy and, per batch size, the fastest format measured, its median "
        "latency and in brackets its speed-up over the dense network run by the `dense` format (one-shot "
        "records at sparsity 0).",
        _table(["dataset", "method", "stage", "sparsity", "accuracy"] + [f"batch {b}" for b in batches], rows)])


def _fastest(median: dict, batch: int, dense: float | None) -> str:
    timed = [(t, fmt) for (b, fmt), t in median.items() if b == batch]
    if not timed:
        return _MISSING
    seconds, fmt = min(timed)
    return _latency_cell(fmt, seconds, dense)


def _latency_cell(fmt: str, seconds: float | None, dense: float | None) -> str:
    if seconds is None:
        return _MISSING
    return f"`{fmt}` {_time(seconds)}" + (f" ({dense / seconds:.2f}×)" if dense else "")


def _percent_or_missing(fraction: float | None) -> str:
    return _MISSING if fraction is None else f"{100 * fraction:.2f}%"


def latency_section(results: dict, figures: list[str]) -> str:
    out = ["## Latency of one forward pass",
           "Median time of the whole 5-layer forward pass on real test images, per format; in brackets the "
           "speed-up over `dense` in the same run (> 1× is faster). `dense` keeps the zeros and uses BLAS; "
           "`csr_scipy` is SciPy's CSR; `csr_numba` / `csr_numba_par` are sparsenet's numba CSR kernels "
           "(serial / row-parallel, one call per layer); `sparse` is sparsenet's fastest kernel set (the whole "
           "network in one compiled call; batch 1 skips zero activations, larger batches run tiled CSR); "
           "`shrunk` deletes the pruned units and runs BLAS on the smaller matrices; `auto` measures "
           "dense / sparse / shrunk on its first call at each batch size and keeps the fastest."]
    for (dataset, method), recs in _by_dataset_method(results["latency"]).items():
        out.append(f"### {dataset}, {method} pruning")
        formats = list(dict.fromkeys(r["format"] for r in recs))
        for batch in sorted({r["batch"] for r in recs}):
            med = {(r["sparsity"], r["format"]): r["median_s"] for r in recs if r["batch"] == batch}
            rows = []
            for s in sorted({k[0] for k in med}):
                dense = med.get((s, "dense"))
                row = [f"{s:.2f}"]
                for f in formats:
                    t = med.get((s, f))
                    if t is None:
                        row.append("–")
                    elif f == "dense" or dense is None:
                        row.append(_time(t))
                    else:
                        row.append(f"{_time(t)} ({dense / t:.2f}×)")
                rows.append(row)
            out += [f"batch {batch}:", _table(["sparsity"] + formats, rows)]
        out.append(_images(figures, f"latency-{dataset}-{method}"))
        out.append(_images(figures, f"speedup-{dataset}-{method}"))
    return "\n\n".join(out)




def break_even_section(results: dict) -> str:
    """Per batch size, the lowest sparsity from which the fastest sparse format beats dense."""
    groups = defaultdict(dict)
    for r in results["latency"]:
        groups[(r["dataset"], r["method"], r["batch"])][(r["sparsity"], r["format"])] = r["median_s"]
    batches = sorted({r["batch"] for r in results["latency"]})
    rows = []
    for dataset, method in dict.fromkeys((r["dataset"], r["method"]) for r in results["latency"]):
        row = [dataset, method]
        for batch in batches:
            med = groups.get((dataset, method, batch), {})
            sparsities = sorted({s for s, _ in med})
            wins = []
            for s in sparsities:
                best = min((med[(s, f)], f) for f in SPARSE_FORMATS if (s, f) in med) if any(
                    (s, f) in med for f in SPARSE_FORMATS) else None
                wins.append(best is not None and (s, "dense") in med and best[0] < med[(s, "dense")])
            # the lowest sparsity from which sparse stays ahead at every higher grid point
            start = next((i for i in range(len(wins)) if all(wins[i:])), None)
            if start is None:
                row.append("never")
            else:
                s = sparsities[start]
                best = min((med[(s, f)], f) for f in SPARSE_FORMATS if (s, f) in med)
                row.append(f"{s:.2f} ({best[1]}, {med[(s, 'dense')] / best[0]:.2f}×)")
        rows.append(row)
    return "\n\n".join([
        "## Break-even: where sparse beats dense",
        "The lowest grid sparsity from which the fastest sparse format (" + ", ".join(SPARSE_FORMATS) +
        ") is faster than `dense` at every higher sparsity, per batch size; in brackets that format and its "
        "speed-up there.",
        _table(["dataset", "method"] + [f"batch {b}" for b in batches], rows)])


def size_section(results: dict, figures: list[str]) -> str:
    out = ["## Model size",
           "Bytes of weight storage per format (values plus index arrays; biases excluded). Sizes depend "
           "only on the architecture and the masks' counts, shown here per method for each dataset."]
    for (dataset, method), recs in _by_dataset_method(results["size"]).items():
        formats = list(dict.fromkeys(r["format"] for r in recs))
        cell = {(r["sparsity"], r["format"]): r["bytes"] for r in recs}
        rows = [[f"{s:.2f}"] + [f"{cell[(s, f)] / 1e6:.2f} MB" if (s, f) in cell else "–" for f in formats]
                for s in sorted({r["sparsity"] for r in recs})]
        out += [f"### {dataset}, {method} pruning", _table(["sparsity"] + formats, rows),
                _images(figures, f"size-{dataset}-{method}")]
    return "\n\n".join(out)


def roofline_section(results: dict, figures: list[str]) -> str:
    m = results.get("machine")
    if not m or not results.get("roofline"):
        return ""
    out = ["## Roofline: how close each format is to the machine's limit",
           f"Measured in this run with {m['threads']} threads: dense float32 GEMM peak "
           f"{m['gemm_gflops']:.0f} GFLOP/s, read bandwidth {m['cache_gbps']:.0f} GB/s from L3 "
           f"({m['l3_bytes'] >> 20} MiB) and {m['dram_gbps']:.0f} GB/s from DRAM. A cell's floor is the larger of "
           "its FLOP time (2 × multiplied weights × batch / peak; dense formats multiply the zeros too) and "
           "its weight-read time (dense: the matrices; sparse formats: kept weights × 6 bytes, the leanest "
           "CSR); activations are not counted, and skipping zero activations (the `sparse` format at batch 1) "
           "can beat the floor. Shown: floor / measured at sparsity 0.9, with the bound that "
           "sets the floor."]
    for (dataset, method), recs in _by_dataset_method(results["roofline"]).items():
        at = [r for r in recs if abs(r["sparsity"] - 0.9) < 1e-9] or recs
        formats = list(dict.fromkeys(r["format"] for r in at))
        cell = {(r["batch"], r["format"]): r for r in at}
        rows = [[str(b)] + [f"{100 * cell[(b, f)]['efficiency']:.0f}% of {_time(cell[(b, f)]['floor_s'])} "
                            f"({cell[(b, f)]['bound']})" if (b, f) in cell else "–" for f in formats]
                for b in sorted({r["batch"] for r in at})]
        out += [f"### {dataset}, {method} pruning, sparsity {at[0]['sparsity']:.2f}",
                _table(["batch"] + formats, rows), _images(figures, f"roofline-{dataset}-{method}")]
    return "\n\n".join(out)


def render_markdown(results: dict, figures: list[str]) -> str:
    title = f"# sparsenet report: {', '.join(m['dataset'] for m in results['models'])}"
    oneshot = oneshot_view(results)
    parts = [title,
             "Generated by `python -m bench.report`; every number below comes from `results.json` in this "
             "folder. Never edited by hand.",
             environment_section(results), models_section(results), accuracy_section(oneshot, figures),
             recovery_section(results, figures), break_even_section(oneshot), latency_section(oneshot, figures),
             roofline_section(oneshot, figures), size_section(oneshot, figures)]
    return "\n\n".join(p for p in parts if p) + "\n"
