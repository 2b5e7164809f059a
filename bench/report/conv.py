"""The conv section of a report: MobileNetV2 on an image dataset (issue 12), in one place.

:func:`conv_summary` is what ``results.json`` says about the conv networks (``results["conv"]``):
per image dataset the network, its training budget and dense accuracy, where the data came
from, the recovery budget and the formats that run it. :func:`conv_section` renders the
section: the classic accuracy table (flat vs per-layer pruning, one-shot / fine-tuned /
gradual), the latency table at batch 1 and 64 with ratios against dense and against every
other format of the run, and sizes. Every table names its dataset, because the offline proof
is Fashion-MNIST padded to 32x32, not CIFAR-10.
"""

from __future__ import annotations

import dataclasses
import statistics

from bench.grid import (
    CONV_INITIAL_SPARSITY,
    Grid,
    batch_sizes,
    is_conv,
    recovery_config,
    recovery_methods,
    recovery_sparsities,
)
from bench.report.layers import ROLES
from bench.report.markdown import table
from bench.report.stages import STAGE_LABELS, record_stage

__all__ = ["conv_section", "conv_summary"]

DATASET_WORDS = {
    "fashion_mnist_32": "Fashion-MNIST padded to 32x32 (1 channel): the offline stand-in, not CIFAR-10",
    "cifar10": "CIFAR-10 (32x32x3, the Python archive)",
}


def conv_summary(grid: Grid, models: dict, data: dict) -> dict:
    """``{dataset: {...}}`` for every image dataset of the run (see the module docstring)."""
    out = {}
    for dataset, (net, manifest) in models.items():
        if not is_conv(dataset):
            continue
        config = recovery_config(grid, dataset)
        schedule = config.schedule(max(recovery_sparsities(grid, dataset)))
        out[dataset] = {
            "dataset_words": DATASET_WORDS.get(dataset, dataset), "network": manifest.get("network"),
            "alpha": manifest.get("alpha"), "epochs": manifest.get("epochs"),
            "train_samples": manifest.get("train_samples"), "epoch_seconds": manifest.get("epoch_seconds"),
            "train_seconds": manifest.get("train_seconds"), "threads": manifest.get("threads"),
            "dense_accuracy": manifest.get("test_accuracy_numpy"), "dense_test_images": manifest.get("test_samples"),
            "test_images_in_report": int(len(data[dataset].y_test)), "data_source": data[dataset].source,
            "weights": int(net.n_weights), "layers": len(net.layers), "layer_kinds": sorted(net.layer_kinds),
            "batch_sizes": list(batch_sizes(grid, dataset)),
            "recovery": {"methods": list(recovery_methods(grid, dataset)),
                         "sparsities": list(recovery_sparsities(grid, dataset)),
                         "config": dataclasses.asdict(config), "steps": config.epochs * config.steps_per_epoch(),
                         "gradual": f"sparsity {CONV_INITIAL_SPARSITY:g} at step 0 rising to the target by step "
                                    f"{schedule.end_step}, masks recomputed every {schedule.frequency} steps "
                                    f"(polynomial, power {schedule.power:g}), then fixed"},
        }
    return out


def conv_section(results: dict, figures: list[str]) -> str:
    conv = results.get("conv") or {}
    if not conv:
        return ""
    parts = ["## Conv networks: MobileNetV2 (issue 12)",
             "Weight pruning of the 1x1 convolutions and the stem (depthwise kernels and the classifier are "
             "kept, as in the published sparse MobileNets); batch norm is folded into the convolutions on import. "
             "Recovered networks train the Keras model itself (batch norm trainable, masks on its kernels), then "
             "are imported again."]
    for dataset, info in conv.items():
        parts += [f"### {dataset}: {info['dataset_words']}", _budget(info),
                  _accuracy_table(results, dataset), *_figure_lines(figures, dataset),
                  _latency_table(results, dataset), _filter_table(results, dataset), _layer_table(results, dataset),
                  _size_table(results, dataset)]
    return "\n\n".join(p for p in parts if p)


def _budget(info: dict) -> str:
    rec = info["recovery"]
    epochs = info.get("epoch_seconds") or []
    per_epoch = f"{statistics.median(epochs):.0f} s per epoch" if epochs else "epoch time not recorded"
    dense = info.get("dense_accuracy")
    scored = info.get("dense_test_images")
    return (f"{info.get('network')}: {info['weights']:,} weights in {info['layers']} layers, trained "
            f"{info.get('epochs')} epochs on {info.get('train_samples')} images ({per_epoch}, "
            f"{info.get('threads')} threads); dense test accuracy "
            f"{'?' if dense is None else f'{dense:.2%}'} on "
            f"{'the whole test set' if scored is None else f'the first {scored} test images'}. "
            f"Accuracies below are on the first "
            f"{info['test_images_in_report']} test images. Recovery: {rec['config']['epochs']} epoch(s) "
            f"({rec['steps']} steps of {rec['config']['batch_size']}, learning rate "
            f"{rec['config']['learning_rate']:g} cosine-decayed, {rec['config']['optimizer']}) per network, "
            f"methods {', '.join(rec['methods'])}; gradual: {rec['gradual']}.")


def _accuracy_table(results: dict, dataset: str) -> str:
    recs = [r for r in results.get("accuracy", ()) if r["dataset"] == dataset]
    recovered = sorted({r["sparsity"] for r in recs if record_stage(r) != "oneshot"})
    if not recs:
        return ""
    sparsities = recovered or sorted({r["sparsity"] for r in recs})
    cell = {(r["method"], r["scope"], record_stage(r), r["sparsity"]): r["accuracy"] for r in recs}
    rows = []
    for method in sorted({r["method"] for r in recs}):
        for scope in ("global", "layer"):
            for stage in STAGE_LABELS:
                values = [cell.get((method, scope, stage, s)) for s in sparsities]
                if all(v is None for v in values):
                    continue
                rows.append([method, "flat (global)" if scope == "global" else "per layer", STAGE_LABELS[stage],
                             *("-" if v is None else f"{v:.2%}" for v in values)])
    return (f"Test accuracy ({dataset}), by sparsity of the prunable weights:\n\n"
            + table(["method", "scope", "stage", *(f"{s:.2f}" for s in sparsities)], rows))


def _figure_lines(figures: list[str], dataset: str) -> list[str]:
    return [f"![{name} ({dataset})]({name})" for name in figures if name.startswith("conv-") and dataset in name]


def _latency_table(results: dict, dataset: str) -> str:
    rows_in = [r for r in results.get("latency", ()) if r["dataset"] == dataset and record_stage(r) == "oneshot"
               and r["method"] == "weight"]
    if not rows_in:
        return ""
    formats = list(dict.fromkeys(r["format"] for r in rows_in))
    described = results.get("formats") or {}
    dense_like = [f for f in formats if described.get(f, {}).get("computes") == "dense" or f == "dense"]
    sparse = [f for f in formats if described.get(f, {}).get("kind") == "sparse"]
    median = {(r["format"], r["sparsity"], r["batch"]): r["median_s"] for r in rows_in}
    rows = []
    for batch in sorted({r["batch"] for r in rows_in}):
        fastest = min(((median[f, 0.0, batch], f) for f in dense_like if (f, 0.0, batch) in median), default=None)
        for s in sorted({r["sparsity"] for r in rows_in}):
            times = {f: median.get((f, s, batch)) for f in formats}
            dense = median.get(("dense", 0.0, batch))
            best = min((t, f) for f, t in times.items() if t is not None)
            rows.append([str(batch), f"{s:.2f}", *(_ms(times[f]) for f in formats),
                         *(f"{dense / times[f]:.2f}x" if dense and times[f] else "-" for f in formats if f != "dense"),
                         *(f"{fastest[0] / times[f]:.2f}x ({fastest[1]})" if fastest and times[f] else "-"
                           for f in sparse),
                         best[1]])
    others = [f for f in formats if f != "dense"]
    return (f"Latency ({dataset}, weight pruning, per-layer scope, one-shot), median per call; speed-up = dense "
            "network (sparsity 0) in `dense` / this format at this sparsity; against the fastest dense engine = "
            f"the fastest of {', '.join(f'`{f}`' for f in dense_like)} on the dense network (sparsity 0) / this "
            "format, same run:\n\n"
            + table(["batch", "sparsity", *(f"{f} (ms)" for f in formats), *(f"{f} speed-up" for f in others),
                     *(f"{f} vs fastest dense engine" for f in sparse), "fastest"], rows))


def _filter_table(results: dict, dataset: str) -> str:
    """Filter pruning per layer: accuracy one-shot and fine-tuned, and the latency of the networks
    with those channels deleted (``shrunk``; a one-shot and a fine-tuned network of the same
    sparsity have the same shapes, so the one-shot cases time both) against dense at sparsity 0."""
    acc = {(record_stage(r), r["sparsity"]): r["accuracy"] for r in results.get("accuracy", ())
           if r["dataset"] == dataset and r["method"] == "unit" and r["scope"] == "layer"}
    tuned = sorted(s for stage, s in acc if stage == "finetuned")
    if not tuned:
        return ""
    lat = {(r["format"], r["method"], r["sparsity"], r["batch"]): r["median_s"] for r in results.get("latency", ())
           if r["dataset"] == dataset and record_stage(r) == "oneshot"}
    batches = sorted({b for (_, m, _, b) in lat if m == "unit"})
    dense_acc = (results.get("conv") or {}).get(dataset, {}).get("dense_accuracy")
    rows = []
    for s in tuned:
        cells = [f"{s:.2f}", *(f"{acc[st, s]:.2%}" if (st, s) in acc else "-" for st in ("oneshot", "finetuned")),
                 "-" if dense_acc is None else f"{100 * (acc['finetuned', s] - dense_acc):+.1f}"]
        for b in batches:
            dense, shrunk = lat.get(("dense", "weight", 0.0, b)), lat.get(("shrunk", "unit", s, b))
            cells += [_ms(shrunk), f"{dense / shrunk:.2f}x" if dense and shrunk else "-"]
        rows.append(cells)
    head = ["channels pruned", "one-shot", "fine-tuned", "fine-tuned - dense (points)"]
    for b in batches:
        head += [f"`shrunk` batch {b} (ms)", f"speed-up b{b}"]
    return (f"Filter pruning ({dataset}, per layer: the output channels with the smallest L2 norm, deleted through "
            "the depthwise and pointwise layers that follow): accuracy, and `shrunk`'s time against the dense "
            "network in `dense`, same run:\n\n" + table(head, rows))


def _layer_table(results: dict, dataset: str) -> str:
    """Per-layer times by role (bench.report.layers): which layers dominate at each sparsity."""
    recs = [r for r in results.get("layers", ()) if r["dataset"] == dataset]
    if not recs:
        return ""
    formats = list(dict.fromkeys(r["format"] for r in recs))
    sparsities = sorted({r["sparsity"] for r in recs})
    whole = {(r["format"], r["sparsity"], r["batch"]): r["median_s"] for r in results.get("latency", ())
             if r["dataset"] == dataset and record_stage(r) == "oneshot" and r["method"] == "weight"}
    parts = [f"Time per layer ({dataset}, weight pruning per layer, one-shot), ms per call, "
             f"{' / '.join(f'`{f}`' for f in formats)}, summed by role: a layer's time is the network cut after it "
             "minus the network cut before it, each run whole in that format, the median of that difference "
             "over rounds that time the two one after the other (bench/report/layers.py), so the call's fixed "
             "cost falls to the stem and the layers add up to about the network; a role can come out negative "
             "where the machine's noise exceeds its time. The share is the role's part of the whole. The last "
             "row is the whole network from the benchmark suite, a cross-check."]
    for batch in sorted({r["batch"] for r in recs}):
        by = {}
        for r in (r for r in recs if r["batch"] == batch):
            key = (r["role"], r["format"], r["sparsity"])
            by[key] = by.get(key, 0.0) + r["median_s"]
        totals = {(f, s): sum(t for (_, f2, s2), t in by.items() if (f2, s2) == (f, s)) for f in formats
                  for s in sparsities}
        rows = []
        for role in (role for role in ROLES if any(k[0] == role for k in by)):
            rows.append([role, *(" / ".join(f"{by.get((role, f, s), 0) * 1e3:.3g} "
                                            f"({by.get((role, f, s), 0) / totals[f, s]:.0%})" for f in formats)
                                 for s in sparsities)])
        rows.append(["whole network (sum)", *(" / ".join(f"{totals[f, s] * 1e3:.3g}" for f in formats)
                                              for s in sparsities)])
        rows.append(["whole network (suite)", *(" / ".join(_ms(whole.get((f, s, batch))) for f in formats)
                                        for s in sparsities)])
        parts.append(f"Batch {batch}:\n\n" + table(["role", *(f"{s:.2f}" for s in sparsities)], rows))
    return "\n\n".join(parts)


def _size_table(results: dict, dataset: str) -> str:
    recs = [r for r in results.get("size", ()) if r["dataset"] == dataset and r["method"] == "weight"]
    if not recs:
        return ""
    rows = [[r["format"], f"{r['sparsity']:.2f}", f"{r['in_memory_bytes'] / 1e6:.2f}",
             f"{r['on_disk_bytes'] / 1e6:.2f}", f"{r['zipped_bytes'] / 1e6:.2f}"]
            for r in sorted(recs, key=lambda r: (r["format"], r["sparsity"]))]
    return (f"Sizes ({dataset}, weight pruning), MB: in memory (every array the format keeps), on disk and "
            "zipped (dense: float32 arrays with zeros; sparse: CSR per output channel, bench/conv_sizes.py):\n\n"
            + table(["format", "sparsity", "in memory", "on disk", "zipped"], rows))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"
