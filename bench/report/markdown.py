"""Markdown building blocks shared by the report's sections (render, render_recovery)."""

from __future__ import annotations

__all__ = ["MISSING", "format_time", "image_links", "table"]

MISSING = "—"  # a cell with no measurement


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def image_links(figures: list[str], prefix: str) -> str:
    """A Markdown image per figure file name starting with ``prefix``, in the given order."""
    return "\n".join(f"![{name[:-4]}]({name})" for name in figures if name.startswith(prefix))
