"""The records of ``results.json`` built from pytest-benchmark's JSON and the run's settings."""

from __future__ import annotations

import dataclasses

from bench.grid import RECOVERY_SCOPE, Grid

__all__ = ["SIZE_FIELDS", "compact_raw", "latency_and_size", "recovery_summary"]


SIZE_FIELDS = ("in_memory_bytes", "on_disk_bytes", "zipped_bytes", "saved_as")  # sparsenet.sizes


def latency_and_size(raw: dict) -> tuple[list[dict], list[dict]]:
    """Latency records of every benchmark, and size records (:mod:`sparsenet.sizes`) of the one-shot
    networks at the grid's smallest batch (an adaptive format counts the candidate it chose there)."""
    latency, size = [], []
    smallest = min((b["extra_info"]["batch"] for b in raw["benchmarks"]), default=None)
    for bench in raw["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        key = {k: info[k] for k in ("dataset", "method", "sparsity", "format")}
        stage = info.get("stage", "oneshot")
        latency.append({**key, "batch": info["batch"], "threads": info["threads"], "median_s": stats["median"],
                        "iqr_s": stats["iqr"], "rounds": stats["rounds"], "min_s": stats["min"],
                        "achieved_sparsity": info["achieved_sparsity"], "stage": stage}
                       | ({"auto_choice": info["choice"]} if "choice" in info else {})
                       | {k: info[k] for k in ("others_load", "waited_s") if info.get(k) is not None})
        if stage == "oneshot" and info["batch"] == smallest and "in_memory_bytes" in info:
            size.append({**key, "scope": info.get("scope", "layer"), "nnz": info["nnz"],
                         **{k: info[k] for k in SIZE_FIELDS}})
    return latency, size


def compact_raw(raw: dict) -> dict:
    """pytest-benchmark's JSON without the per-round samples (``stats.data``): every statistic
    stays, and a full-grid run shrinks from ~80 MB to under 1 MB."""
    for bench in raw["benchmarks"]:
        bench["stats"].pop("data", None)
    return raw


def recovery_summary(grid: Grid, config, models: dict) -> dict:
    """What results.json says about the recovery budgets, next to the records that used them."""
    schedule = config.schedule(max(grid.recovery_sparsities))
    return {
        "stages": list(grid.stages), "sparsities": list(grid.recovery_sparsities),
        "scopes": [RECOVERY_SCOPE], "config": dataclasses.asdict(config),
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
