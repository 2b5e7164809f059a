"""What the report knows about each format and pruning method: their self-descriptions.

A run stores every registered format's and method's description in ``results["formats"]`` and
``results["methods"]``, so a report renders from its own file. Records from files written before
that (or names the registry no longer has) fall back to today's registries, and a name known to
neither gets kind ``None``: it is shown in tables and plots, but joins no break-even or
roofline comparison.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparsenet import FORMATS, PRUNERS
from sparsenet.formats import baseline, describe

__all__ = ["baseline_format", "describe_methods", "describe_registry", "format_info", "format_order",
           "formats_of_kind", "method_info", "method_order", "structured_methods"]

_RECORD_TABLES = ("latency", "size", "roofline")
FILE_KINDS = {  # a format's saved_as (sparsenet.sizes.SAVED_AS) -> the file, as tables and legends name it
    "dense": "dense file",
    "shrunk": "shrunk file",
    "compact": "compact .spz",
    "compact_int8": "int8 .spz",
    "tflite_int8": "TFLite int8",
}
_UNKNOWN = {"kind": None, "layer_kinds": [], "pruning": "any", "summary": "", "style": None, "operating_points": False}


def describe_registry() -> dict[str, dict]:
    """``{name: description}`` of every registered format, in registry order (stored by the run)."""
    return {name: describe(cls) for name, cls in FORMATS.items()}


def describe_methods() -> dict[str, dict]:
    return {name: {"structured": p.structured, "counts": p.counts, "summary": p.summary, "style": list(p.style)}
            for name, p in PRUNERS.items()}


def format_info(results: Mapping) -> dict[str, dict]:
    """``{format: description}`` for every format the results name or store, stored ones first."""
    stored = dict(results.get("formats") or {})
    registry = describe_registry()
    named = {r.get("format") for t in _RECORD_TABLES for r in results.get(t) or () if isinstance(r, Mapping)}
    named.discard(None)
    info = dict(stored)
    for name in [n for n in registry if n in named] + sorted(named - set(registry)):
        info.setdefault(name, registry.get(name, _UNKNOWN))
    return info


def baseline_format(results: Mapping) -> str:
    """The format speed-ups are measured against (the one of kind "baseline")."""
    names = [name for name, d in format_info(results).items() if d.get("kind") == "baseline"]
    if not names:  # the records hold no baseline measurement: the registry still names one
        return baseline()
    if len(names) > 1:
        raise ValueError(f"results describe several baseline formats {names}; expected one")
    return names[0]


def formats_of_kind(results: Mapping, *kinds: str) -> list[str]:
    return [name for name, d in format_info(results).items() if d.get("kind") in kinds]


def format_order(formats, results: Mapping | None = None) -> list[str]:
    """``formats`` in registry (or stored) order, unknown names after them, sorted."""
    known = list(format_info(results) if results is not None else FORMATS)
    return sorted(formats, key=lambda f: (known.index(f), "") if f in known else (len(known), f))


def method_info(results: Mapping | None = None) -> dict[str, dict]:
    """``{method: description}``: the registry's, overridden by what the results stored."""
    stored = dict((results or {}).get("methods") or {})
    return {**describe_methods(), **stored}


def structured_methods(results: Mapping | None = None) -> set[str]:
    return {name for name, d in method_info(results).items() if d.get("structured")}


def method_order(methods, results: Mapping | None = None) -> list[str]:
    """Unstructured methods first, then structured, each in registry order; unknown names last."""
    info = method_info(results)
    known = sorted(info, key=lambda m: bool(info[m].get("structured")))
    return sorted(methods, key=lambda m: (known.index(m), "") if m in known else (len(known), m))
