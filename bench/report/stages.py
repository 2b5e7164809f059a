"""How the evaluated network was obtained, as the report reads it from the records.

A stage is one of ``sparsenet.recover.STAGES``: "oneshot", "finetuned" or "gradual". Records
written before recovery existed carry no "stage": they are "oneshot". The report's
sections and figures all read stages through this module.
"""

from __future__ import annotations

import statistics

from sparsenet.recover import STAGES

__all__ = ["STAGES", "STAGE_COLORS", "STAGE_LABELS", "dense_latency", "oneshot_view", "record_stage", "stage_budgets"]

STAGE_LABELS = {"oneshot": "one-shot", "finetuned": "one-shot + fine-tune", "gradual": "gradual"}
STAGE_COLORS = {"oneshot": "tab:gray", "finetuned": "tab:blue", "gradual": "tab:green"}
_STAGED = ("accuracy", "latency", "size", "roofline")  # record lists that may carry a stage


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


def dense_latency(latency: list[dict], dataset: str, batch: int, baseline: str) -> float | None:
    """The dense network's median in the ``baseline`` format at ``batch``: one-shot records at
    sparsity 0 (median over methods), else the median of that format across the recovered records."""
    rows = [r for r in latency if r["dataset"] == dataset and r["batch"] == batch and r["format"] == baseline]
    at_zero = [r["median_s"] for r in rows if record_stage(r) == "oneshot" and r["sparsity"] == 0.0]
    recovered = [r["median_s"] for r in rows if record_stage(r) != "oneshot"]
    return statistics.median(at_zero or recovered) if at_zero or recovered else None


def _describe(record: dict) -> str:
    return "/".join(str(record[k]) for k in ("dataset", "method", "sparsity") if k in record)
