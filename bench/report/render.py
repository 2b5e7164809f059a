"""results dict -> report.md text. Pure string building: no I/O, no plotting."""

from __future__ import annotations

from collections import defaultdict

from bench.report.conv import conv_section
from bench.report.field import field_section
from bench.report.formats import FILE_KINDS, baseline_format, format_info, formats_of_kind, method_info, method_order
from bench.report.markdown import format_time, image_links, table
from bench.report.noise import ORDER_LIMIT, SPREAD_LIMIT, dense_references, fastest_dense, flagged, reference_of, spread
from bench.report.render_recovery import recovery_section
from bench.report.roofline import flop_peak
from bench.report.stages import oneshot_view


def _by_dataset_method(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Records grouped by (dataset, method), in first-seen order."""
    groups = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["method"])].append(r)
    return groups


def environment_section(results: dict) -> str:
    env = results["environment"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} kernels"
                     + (f" = {b['kernel_isa']}" if b.get("kernel_isa") else "") + f", {b['num_threads']} threads)"
                     for b in env["blas"]) or "unknown"
    if env.get("blas_env"):
        blas += "; set: " + ", ".join(f"`{k}={v}`" for k, v in env["blas_env"].items())
    isa = f", widest vector extension {env['cpu_vector_isa']}" if env.get("cpu_vector_isa") else ""
    rows = [
        ["CPU", f"{env['cpu']}, {env['cores']} cores{isa}"],
        ["threads", f"numba {env['numba_threads']}, BLAS {env['blas_threads']} (fixed for the whole run)"],
        ["BLAS", blas],
        ["versions", f"Python {env['python']}, NumPy {env['numpy']}, SciPy {env['scipy']}, numba {env['numba']}, "
                     f"TensorFlow {env['tensorflow']}" + "".join(f", {name} {v}" for name, v in
                                                                 (env.get("engines") or {}).items() if v)],
        ["platform", env["platform"]],
        ["git commit", str(env["git_commit"])],
        ["command", f"`{results['command']}`"],
        ["created", f"{results['created']} ({results['elapsed_s']:.0f} s)"],
        ["timing", f"pytest-benchmark, median of ≥ 5 rounds, ~{results['grid']['max_time_s']} s per case, GC off; "
                   "pruning, conversion and JIT compilation outside the timed region"],
    ]
    absent = env.get("engines_absent") or {}
    if absent:
        rows.append(["engines not timed", "; ".join(f"`{name}`: {why}" for name, why in absent.items())])
    return "## Machine and run\n\n" + "\n".join(["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def models_section(results: dict) -> str:
    rows = [[m["dataset"], "-".join(map(str, m["architecture"])), "–" if m["epochs"] is None else str(m["epochs"]),
             f"{100 * m['dense_accuracy']:.2f}%",
             f"{m['manifest']['train_seconds']:.0f} s" if "train_seconds" in m["manifest"]
             else f"user weights: `{m['manifest'].get('source')}`"]
            for m in results["models"]]
    out = "## Dense networks\n\n" + table(["dataset", "architecture", "epochs", "test accuracy", "training"], rows)
    for m in results["models"]:
        man = m["manifest"]
        if "classes" in man and "data_source" in man:  # a user's own model (--model): what it is, what it ran on
            shape = f"input shape {tuple(man['input_shape'])}, " if man.get("input_shape") else ""
            out += (f"\n\nYour model `{man['source']}` ({man.get('framework', 'sparsenet')}): {shape}"
                    f"{m['architecture'][0]} inputs, {man['classes']} classes, layers "
                    f"{'-'.join(map(str, m['architecture']))} with activations {', '.join(man['activations'])}; "
                    f"test data `{man['data_source']}` ({man['test_samples']} samples), dense test accuracy "
                    f"{100 * m['dense_accuracy']:.2f}%.")
    return out


def accuracy_section(results: dict, figures: list[str]) -> str:
    methods = method_info(results)
    named = method_order({r["method"] for r in results["accuracy"]}, results)
    removed = "; ".join(f"`{m}` removes k% of the {methods[m]['counts']}: {methods[m]['summary']}"
                        if m in methods else f"`{m}`" for m in named)
    units = [f"`{m}`" for m in named if methods.get(m, {}).get("counts") == "units"]
    out = ["## Accuracy after one-shot pruning (no retraining)",
           f"Test accuracy on the test images. {removed}. `layer` ranks within each layer, `global` across all "
           "hidden layers; the logits layer is not pruned. Rows are the requested sparsity (fraction of weights"
           + (f", or of units for {', '.join(units)}" if units else "") + "); `results.json` has the achieved "
           "weight sparsity and each layer's, and the plots use the achieved value."]
    by_ds = defaultdict(list)
    for r in results["accuracy"]:
        by_ds[r["dataset"]].append(r)
    for dataset, recs in by_ds.items():
        settings = sorted({(r["method"], r["scope"]) for r in recs}, key=lambda ms: (named.index(ms[0]), ms[1]))
        cell = {(r["method"], r["scope"], r["sparsity"]): r["accuracy"] for r in recs}
        rows = [[f"{s:.2f}"] + [f"{100 * cell[(m, sc, s)]:.2f}%" if (m, sc, s) in cell else "–"
                                for m, sc in settings]
                for s in sorted({r["sparsity"] for r in recs})]
        out += [f"### {dataset}", table(["sparsity"] + [f"{m}/{sc}" for m, sc in settings], rows),
                image_links(figures, f"accuracy-{dataset}")]
    return "\n\n".join(out)


def _cell_text(r: dict, baseline: str, references: dict, flags: dict, index: int) -> str:
    """``time ±spread (× over the dense reference · × over the fastest dense engine)``, † if flagged."""
    t, sp = r["median_s"], spread(r)
    text = format_time(t) + ("" if sp is None else f" ±{100 * sp:.0f}%")
    ref, fastest = reference_of(references, r, baseline), fastest_dense(references, r)
    if r["format"] != baseline and ref:
        ratios = f"{ref / t:.2f}×"
        if fastest and fastest[0] != baseline and fastest[0] != r["format"]:
            ratios += f" · {fastest[1] / t:.2f}× vs {fastest[0]}"
        text += f" ({ratios})"
    return text + (" †" if index in flags else "")


def latency_section(results: dict, figures: list[str]) -> str:
    baseline, info = baseline_format(results), format_info(results)
    references, flags = dense_references(results), flagged(results)
    formats_text = "; ".join(f"`{name}`: {d['summary']}" for name, d in info.items() if d.get("summary"))
    out = ["## Latency of one forward pass",
           "Median time of the whole forward pass on real test images, per format (batch 1: each call "
           "takes the next of 64 test images, so a kernel that skips zero activations cannot learn one "
           "image's pattern; larger batches: the first B test images), ± the spread of its rounds (IQR / "
           f"median); in brackets the speed-up over `{baseline}` (> 1× is faster), taken against `{baseline}`'s "
           "median over all its cells of the same dataset and batch (dense does the same work at every "
           "sparsity, so one disturbed cell cannot move it), and where another dense engine was faster, "
           f"over that one too. † marks a flagged cell (spread above {100 * SPREAD_LIMIT:.0f}%, a dense cell "
           f"{ORDER_LIMIT:g}× off its median elsewhere, or other processes busy while it ran): it is left "
           f"out of the break-even table. {formats_text}."]
    for m in results["models"]:  # say which formats sat out, and why, instead of leaving a silent gap
        acts = set(m.get("manifest", {}).get("activations") or ())
        out_ = [f"`{name}` (runs {', '.join(d['activations'])} only)" for name, d in info.items()
                if d.get("activations") and acts - set(d["activations"])]
        if out_:
            out.append(f"Not timed on {m['dataset']} ({', '.join(sorted(acts))}): {', '.join(out_)}.")
    indexed = list(enumerate(results["latency"]))
    for (dataset, method), recs in _by_dataset_method([r | {"_i": i} for i, r in indexed]).items():
        out.append(f"### {dataset}, {method} pruning")
        formats = list(dict.fromkeys(r["format"] for r in recs))
        for batch in sorted({r["batch"] for r in recs}):
            cell = {(r["sparsity"], r["format"]): r for r in recs if r["batch"] == batch}
            rows = [[f"{s:.2f}"] + [_cell_text(cell[(s, f)], baseline, references, flags, cell[(s, f)]["_i"])
                                    if (s, f) in cell else "–" for f in formats]
                    for s in sorted({k[0] for k in cell})]
            out += [f"batch {batch}:", table(["sparsity"] + formats, rows)]
        out.append(image_links(figures, f"latency-{dataset}-{method}"))
        out.append(image_links(figures, f"speedup-{dataset}-{method}"))
    again = [r for r in results["latency"] if r.get("remeasured")]
    if again:
        stayed = sum(i in flags for i, r in indexed if r.get("remeasured"))
        out.append(f"{len(again)} flagged cells were re-measured at the end of the run, each right after its "
                   f"dense case, and are shown with their second measurement; {stayed} of them stayed flagged.")
    flagged_here = [results["latency"][i] | {"why": why} for i, why in flags.items()]
    if flagged_here:
        out.append(f"Flagged cells ({len(flagged_here)}): " + "; ".join(
            f"{r['dataset']}/{r['method']}/{r['format']} at {r['sparsity']:g}, batch {r['batch']}: {r['why']}"
            for r in flagged_here[:20]) + (" …" if len(flagged_here) > 20 else "") + ".")
    return "\n\n".join(out)


def break_even_section(results: dict) -> str:
    """Per batch size, the lowest sparsity from which the fastest sparse format beats the baseline
    (its median over the dataset and batch). A sparsity where sparse lost only with a flagged cell
    in play is unknown: it does not end a winning streak, and the entry is marked †."""
    baseline, sparse = baseline_format(results), formats_of_kind(results, "sparse")
    references, flags = dense_references(results), flagged(results)
    groups = defaultdict(dict)
    for i, r in enumerate(results["latency"]):
        groups[(r["dataset"], r["method"], r["batch"])][(r["sparsity"], r["format"])] = (r, i in flags)
    batches = sorted({r["batch"] for r in results["latency"]})
    rows = []
    for dataset, method in dict.fromkeys((r["dataset"], r["method"]) for r in results["latency"]):
        row = [dataset, method]
        for batch in batches:
            cells = groups.get((dataset, method, batch), {})
            sparsities = sorted({s for s, _ in cells})
            ref = next((reference_of(references, r, baseline) for r, _ in cells.values()), None)
            best, wins = {}, []
            for s in sparsities:
                timed = [(cells[(s, f)][0]["median_s"], f, cells[(s, f)][1]) for f in sparse if (s, f) in cells]
                clean = [t for t in timed if not t[2]]
                if clean:
                    best[s] = min(clean)
                won = s in best and ref is not None and best[s][0] < ref
                wins.append(True if won else (None if any(t[2] for t in timed) else False))
            # the lowest sparsity from which sparse stays ahead at every higher grid point
            start = next((i for i in range(len(wins)) if wins[i] and all(w is not False for w in wins[i:])), None)
            if start is None:
                row.append("never")
            else:
                s = sparsities[start]
                mark = " †" if None in wins[start:] or (start and wins[start - 1] is None) else ""
                row.append(f"{s:.2f} ({best[s][1]}, {ref / best[s][0]:.2f}×){mark}")
        rows.append(row)
    return "\n\n".join([
        f"## Break-even: where sparse beats {baseline}",
        "The lowest grid sparsity from which the fastest sparse format (" + ", ".join(sparse) +
        f") is faster than `{baseline}` (its median over the dataset and batch) at every higher sparsity, per "
        "batch size; in brackets that format and its speed-up there. Flagged cells (see the latency section) "
        "are left out; † marks an entry next to a sparsity where only a flagged cell could tell.",
        table(["dataset", "method"] + [f"batch {b}" for b in batches], rows)])


def size_section(results: dict, figures: list[str]) -> str:
    size = [r if "in_memory_bytes" in r else {**r, "in_memory_bytes": r["bytes"]} for r in results["size"]]
    with_files = any("on_disk_bytes" in r for r in size)
    if with_files:
        intro = ("Bytes in memory at inference: every array the built format keeps (weights, indices, biases, "
                 "every internal copy: `sparse` holds CSR for batches and CSC or dense blocks for batch 1; "
                 "`auto` counts the candidate it chose at the smallest batch). On disk: the file each format is "
                 "deployed from, written for real: the dense file keeps the pruned weights as zeros in place, the "
                 "shrunk file has the dead units deleted, the compact .spz holds CSR with the narrowest index type; "
                 "and the "
                 "same file zipped (deflate, level 9: TensorFlow Model Optimization's strip-and-zip measure). Ratios "
                 "are against the dense float32 file.")
    else:
        intro = ("Bytes of weight storage per format (values plus index arrays; biases excluded). Sizes depend "
                 "only on the architecture and the masks' counts, shown here per method for each dataset.")
    out = ["## Model size", intro]
    accuracy = {(r["dataset"], r["method"], r.get("scope", "layer"), r["sparsity"]): r["accuracy"]
                for r in results.get("accuracy", ())}
    quantized = {label: {(r["dataset"], r["method"], r.get("scope", "layer"), r["sparsity"]): r[field]
                         for r in results.get("accuracy", ()) if r.get(field) is not None}
                 for field, label in QUANTIZED_ACCURACY}
    baseline = baseline_format(results)
    for (dataset, method), recs in _by_dataset_method(size).items():
        formats = list(dict.fromkeys(r["format"] for r in recs))
        sparsities = sorted({r["sparsity"] for r in recs})
        cell = {(r["sparsity"], r["format"]): r["in_memory_bytes"] for r in recs}
        rows = [[f"{s:.2f}"] + [f"{cell[(s, f)] / 1e6:.2f} MB" if (s, f) in cell else "–" for f in formats]
                for s in sparsities]
        out += [f"### {dataset}, {method} pruning", table(["sparsity"] + formats, rows)]
        if with_files:
            out.append(_file_size_table(recs, baseline, accuracy, dataset, method, quantized))
        out.append(image_links(figures, f"size-{dataset}-{method}"))
        if with_files:
            out.append(image_links(figures, f"disk-{dataset}-{method}"))
    return "\n\n".join(p for p in out if p)


# accuracy records' quantized fields, as the file table's columns name them (a column only where a record has it)
QUANTIZED_ACCURACY = (("int8_accuracy", "int8 accuracy"), ("int8_static_accuracy", "int8 static accuracy"),
                      ("tflite_int8_accuracy", "TFLite int8 accuracy"))


def _file_size_table(recs: list[dict], baseline: str, accuracy: dict, dataset: str, method: str,
                     quantized: dict | None = None) -> str:
    """On disk and zipped, per file kind, with the accuracy at that sparsity and the best ratio to dense float32."""
    files = {}  # (sparsity, saved_as) -> (on disk, zipped); every format saved the same way writes the same file
    scope = {}
    for r in recs:
        if "on_disk_bytes" in r:
            files.setdefault((r["sparsity"], r["saved_as"]), (r["on_disk_bytes"], r["zipped_bytes"]))
            scope.setdefault(r["sparsity"], r.get("scope", "layer"))
    reference = next((r["on_disk_bytes"] for r in recs if r["format"] == baseline and "on_disk_bytes" in r), None)
    kinds = [k for k in FILE_KINDS if any(saved == k for _, saved in files)]
    columns = {label: accs for label, accs in (quantized or {}).items() if accs}
    header = ["sparsity", "accuracy"] + list(columns) + [f"{FILE_KINDS[k]}: on disk / zipped" for k in kinds]
    header += ["smallest vs dense float32"] if reference else []
    rows = []
    for s in sorted({s for s, _ in files}):
        acc = accuracy.get((dataset, method, scope.get(s, "layer"), s))
        row = [f"{s:.2f}", "–" if acc is None else f"{100 * acc:.2f}%"]
        for accs in columns.values():
            other = accs.get((dataset, method, scope.get(s, "layer"), s))
            row.append(f"{100 * other:.2f}%" if other is not None else "–")
        row += [f"{files[(s, k)][0] / 1e6:.3f} / {files[(s, k)][1] / 1e6:.3f} MB" if (s, k) in files else "–"
                for k in kinds]
        if reference:
            smallest = min(min(v) for (s2, _), v in files.items() if s2 == s)
            row.append(f"{reference / smallest:.1f}x")
        rows.append(row)
    lead = (f"Files: the dense float32 file is {reference / 1e6:.3f} MB." if reference else "Files:")
    return lead + "\n\n" + table(header, rows)


def _ceiling_samples(m: dict) -> str:
    """How many timings each ceiling is the highest of, and their range (runs before 2026-12-06: none)."""
    samples = m.get("samples")
    if not samples:
        return ""
    names = {"gemm_gflops": ("GEMM", "GFLOP/s"), "fma_gflops": ("FMA", "GFLOP/s"), "cache_gbps": ("cache", "GB/s"),
             "dram_gbps": ("DRAM", "GB/s")}
    spans = [f"{names[k][0]} {min(v):.0f}-{max(v):.0f} {names[k][1]}" for k, v in samples.items() if v and k in names]
    n = max(len(v) for v in samples.values())
    return (f" Each ceiling is the highest of {n} timings, taken before and after the latency stage (a timing "
            f"taken while something else held a core can only come out low): {', '.join(spans)}.")


def roofline_section(results: dict, figures: list[str]) -> str:
    m = results.get("machine")
    if not m or not results.get("roofline"):
        return ""
    out = ["## Roofline: how close each format is to the machine's limit",
           f"Measured in this run with {m['threads']} threads: dense float32 GEMM peak "
           f"{m['gemm_gflops']:.0f} GFLOP/s" + (f", FMA peak {m['fma_gflops']:.0f} GFLOP/s (a register-only loop "
           f"on {m['vector_bits']}-bit vectors; the floor uses the higher: {flop_peak(m)[1]})"
           if "fma_gflops" in m else "") + f", read bandwidth {m['cache_gbps']:.0f} GB/s from cache "
           + (f"(a {m['cache_probe_bytes'] >> 20} MiB array; L3 {m['l3_bytes'] >> 20} MiB) "
              if "cache_probe_bytes" in m else f"(L3, {m['l3_bytes'] >> 20} MiB) ")
           + f"and {m['dram_gbps']:.0f} GB/s from DRAM. A cell's floor is the larger of "
           "its FLOP time (2 × multiplied weights × batch / peak; dense formats multiply the zeros too) and "
           "its weight-read time (dense: the matrices; sparse formats: kept weights × 6 bytes, the leanest "
           "CSR; int8 formats: 1 byte a value); full-integer int8 engines (int8 x int8 into int32: "
           "`tflite_int8`) get 4x the float32 peak, an assumed ceiling (four int8 products per 32-bit "
           "lane in AVX2's vpmaddubsw, AVX-512 VNNI, ARM's sdot), not a measured one; activations are not "
           "counted, and skipping zero activations (the `sparse` format at batch 1) can beat the floor. "
           "Shown: floor / measured at sparsity 0.9, with the bound that "
           "sets the floor." + _ceiling_samples(m) + (" These ceilings were timed briefly (a smoke run): read "
                                                      "them as rough." if m.get("quick") else "")]
    for (dataset, method), recs in _by_dataset_method(results["roofline"]).items():
        at = [r for r in recs if abs(r["sparsity"] - 0.9) < 1e-9] or recs
        formats = list(dict.fromkeys(r["format"] for r in at))
        cell = {(r["batch"], r["format"]): r for r in at}
        rows = [[str(b)] + [f"{100 * cell[(b, f)]['efficiency']:.0f}% of {format_time(cell[(b, f)]['floor_s'])} "
                            f"({cell[(b, f)]['bound']})" if (b, f) in cell else "–" for f in formats]
                for b in sorted({r["batch"] for r in at})]
        out += [f"### {dataset}, {method} pruning, sparsity {at[0]['sparsity']:.2f}",
                table(["batch"] + formats, rows), image_links(figures, f"roofline-{dataset}-{method}")]
    return "\n\n".join(out)


def weights_section(results: dict, figures: list[str]) -> str:
    """Per layer, the spread (standard deviation) of the dense weights and of those kept."""
    rows = results.get("weights") or []
    if not rows:
        return ""
    out = ["## Weight distributions",
           "Per layer, the standard deviation of the dense network's weights and of the weights kept after "
           f"`{rows[0]['method']}` pruning ({rows[0]['scope']} scope); the figures show the histograms. Magnitude "
           "pruning keeps the tails, so how heavy they are (a flat-topped distribution against a Gaussian one) "
           "decides how early accuracy drops."]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        recs = [r for r in rows if r["dataset"] == dataset]
        sparsities = sorted({r["sparsity"] for r in recs})
        cell = {(r["layer"], r["sparsity"]): r for r in recs}
        table_rows = [[f"{layer} ({'×'.join(map(str, cell[(layer, 0.0)]['shape']))})"]
                      + [f"{cell[(layer, s)]['std']:.4f}" if (layer, s) in cell else "–" for s in sparsities]
                      for layer in sorted({r["layer"] for r in recs})]
        out += [f"### {dataset}", table(["layer"] + ["dense" if s == 0 else f"kept at {s:.2f}" for s in sparsities],
                                        table_rows), image_links(figures, f"weights-{dataset}")]
    return "\n\n".join(out)


def warnings_section(results: dict) -> str:
    """What a reader must know before trusting a speed-up: a dense baseline below the machine."""
    env = results.get("environment", {})
    lines = [f"- **The dense baseline runs below this CPU**: {line}"
             + (f" (set: {', '.join(f'`{k}={v}`' for k, v in env['blas_env'].items())})" if env.get("blas_env") else "")
             + ". NumPy `dense` is slower here than this machine allows; read speed-ups against the fastest dense "
               "engine of the run too." for line in env.get("blas_below_cpu") or ()]
    flags, n = flagged(results), len(results.get("latency") or ())
    if flags:
        busy = sum("other processes" in why for why in flags.values())
        lines.append(f"- **{len(flags)} of {n} latency cells are flagged** (†: spread, order or a busy machine"
                     + (f"; other processes were busy during {busy} of them" if busy else "") + "). "
                     "They are marked in the tables and left out of the break-even table.")
    return "\n".join(lines)


def render_markdown(results: dict, figures: list[str]) -> str:
    title = f"# sparsenet report: {', '.join(m['dataset'] for m in results['models'])}"
    oneshot = oneshot_view(results)
    parts = [title,
             "Generated by `python -m bench.report`; every number below comes from `results.json` in this "
             "folder. Never edited by hand.", warnings_section(results),
             environment_section(results), models_section(results), accuracy_section(oneshot, figures),
             recovery_section(results, figures), conv_section(results, figures), break_even_section(oneshot),
             latency_section(oneshot, figures), field_section(oneshot),
             roofline_section(oneshot, figures), size_section(oneshot, figures), weights_section(results, figures)]
    return "\n\n".join(p for p in parts if p) + "\n"
