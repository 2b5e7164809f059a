"""Point labels that do not collide: each takes the first free spot of a few around its point.

A small greedy repel, enough for the dozen or two labels of a report figure (no new
dependency; adjustText would also move points' labels along lines, which these figures do not
need). Positions are measured in display space after the figure's layout has run, so the
figure's axis limits must be final before :func:`place_labels` is called; labels are kept out of
the layout, so placing them does not move the axes they were placed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

__all__ = ["PointLabel", "boxes_overlap", "layout_renderer", "place_labels"]

GAP_PT = 1.5  # points between a marker's edge and its label
RINGS = (1.0, 1.8, 2.8)  # distances tried, in gaps from the centre; beyond the first a thin leader joins them
# (dx, dy, ha, va): right-above first (reading order), then the other corners and sides
DIRECTIONS = ((1, 0.6, "left", "bottom"), (1, -0.6, "left", "top"), (-1, 0.6, "right", "bottom"),
              (-1, -0.6, "right", "top"), (0, 1.2, "center", "bottom"), (0, -1.2, "center", "top"),
              (1.3, 0, "left", "center"), (-1.3, 0, "right", "center"))


@dataclass(frozen=True)
class PointLabel:
    """``text`` for the point (x, y) in data coordinates of the axes it is placed in.

    ``optional`` labels are left out where every spot collides; the others take the spot that
    overlaps least.
    """

    x: float
    y: float
    text: str
    style: dict = field(default_factory=dict)
    optional: bool = False


def boxes_overlap(a: Bbox, b: Bbox) -> float:
    """Area two boxes share (0 if they only touch)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(ax, labels: Sequence[PointLabel], *, avoid: Sequence[tuple[float, float]] = (),
                 marker_pt: float = 8.0, obstacles: Sequence[Bbox] = (), renderer=None) -> list:
    """Annotate ``labels`` in order, each at the first spot free of earlier labels and markers.

    ``avoid`` are further points (data coordinates) whose markers, ``marker_pt`` wide, labels
    keep clear of (every label's own point is one); ``obstacles`` are display boxes to keep
    clear of (e.g. a text box already drawn). Spots must lie inside the axes. ``renderer``: one
    from :func:`layout_renderer` since the last layout change (a layout runs when omitted). Returns
    the annotations made (optional labels without a free spot are not made).
    """
    fig = ax.figure
    renderer = renderer or layout_renderer(fig)
    px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    half = marker_pt * px / 2
    points = [ax.transData.transform((lab.x, lab.y)) for lab in labels]
    points += [ax.transData.transform(p) for p in avoid]
    taken = [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in points] + list(obstacles)
    made = []
    for lab, (x, y) in zip(labels, points):
        probe = ax.annotate(lab.text, (lab.x, lab.y), **lab.style)
        size = probe.get_window_extent(renderer)
        probe.remove()
        gap = marker_pt / 2 + GAP_PT
        cost, ox, oy, ha, va, ring, box = _best_spot(x, y, size.width, size.height, gap, px, frame, taken)
        if cost > 0 and lab.optional:
            continue
        leader = {} if ring == RINGS[0] else {"arrowprops": {
            "arrowstyle": "-", "linewidth": 0.5, "color": lab.style.get("color", "0.3"), "shrinkA": 0,
            "shrinkB": marker_pt / 2}}
        ann = ax.annotate(lab.text, (lab.x, lab.y), textcoords="offset points", xytext=(ox, oy), ha=ha, va=va,
                          annotation_clip=False, **leader, **lab.style)
        ann.set_in_layout(False)
        taken.append(box)
        made.append(ann)
    return made


def layout_renderer(fig):
    """The figure's renderer after its layout has run (display coordinates are then final)."""
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)  # attaches to this figure only; no pyplot, no global backend
    fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def _best_spot(x, y, w, h, gap, px, frame, taken) -> tuple:
    """(overlap, dx, dy, ha, va, ring, box) of the first free spot, or of the least crowded one."""
    best = None
    for ring in RINGS:
        for dx, dy, ha, va in DIRECTIONS:
            ox, oy = dx * ring * gap, dy * ring * gap
            box = _box(x + ox * px, y + oy * px, w, h, ha, va)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            cost = sum(boxes_overlap(box, t) for t in taken) + (0.0 if inside else w * h)
            if cost == 0:
                return cost, ox, oy, ha, va, ring, box
            if best is None or cost < best[0]:
                best = (cost, ox, oy, ha, va, ring, box)
    return best


def _box(x: float, y: float, w: float, h: float, ha: str, va: str) -> Bbox:
    x0 = {"left": x, "right": x - w, "center": x - w / 2}[ha]
    y0 = {"bottom": y, "top": y - h, "center": y - h / 2}[va]
    return Bbox(np.array([[x0, y0], [x0 + w, y0 + h]]))
