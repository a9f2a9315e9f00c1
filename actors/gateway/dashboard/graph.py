"""A workflow's step graph as inline SVG: a small layered layout of the plan's DAG.

Each step sits in the column of its longest path from a root (so every edge
points right); within a column, steps are ordered by the mean row of what they
need (one barycentre pass), which keeps fan-outs and fan-ins uncrossed in the
common shapes. Nodes carry the state as a CSS class (``st-<state>``), with the
duration, attempt and cache hit written in the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from protocols.status import StepView

__all__ = ["Layout", "layout", "render_graph"]

NODE_W = 170
NODE_H = 58
GAP_X = 56
GAP_Y = 18
PAD = 8


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each step goes.

    Attributes:
        columns: the steps of each column, top to bottom.
        edges: ``(need, step)`` pairs between known steps.
    """

    columns: list[list[str]]
    edges: list[tuple[str, str]]

    def position(self, step: str) -> tuple[int, int]:
        """Return the ``(column, row)`` of ``step``."""
        for x, column in enumerate(self.columns):
            if step in column:
                return x, column.index(step)
        raise KeyError(step)


def layout(steps: Sequence[str], needs: Mapping[str, Sequence[str]]) -> Layout:
    """Lay out ``steps`` in columns so that every ``needs`` edge points right.

    Args:
        steps: step names in plan order.
        needs: for each step, the steps it waits for (unknown names and cycles
            are ignored: a cycle never reaches a runner).
    """
    known = set(steps)
    depth: dict[str, int] = {}

    def depth_of(step: str, trail: frozenset[str]) -> int:
        if step in depth:
            return depth[step]
        parents = [p for p in needs.get(step, ()) if p in known and p not in trail]
        found = 1 + max((depth_of(p, trail | {step}) for p in parents), default=-1)
        depth[step] = found
        return found

    for step in steps:
        depth_of(step, frozenset())
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in steps:
        columns[depth[step]].append(step)
    rows: dict[str, float] = {}
    for column in columns:
        for row, step in enumerate(column):
            rows[step] = row
    for column in columns[1:]:
        column.sort(
            key=lambda s: (
                sum(rows[p] for p in needs.get(s, ()) if p in rows)
                / max(1, sum(1 for p in needs.get(s, ()) if p in rows))
            )
        )
        for row, step in enumerate(column):
            rows[step] = row
    edges = [(p, s) for s in steps for p in needs.get(s, ()) if p in known and p != s]
    return Layout(columns=columns, edges=edges)


def _duration(view: StepView | None) -> str:
    if view is None or view.duration_s is None:
        return ""
    seconds = view.duration_s
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def render_graph(
    steps: Sequence[str],
    needs: Mapping[str, Sequence[str]],
    views: Mapping[str, StepView],
    *,
    workflow_id: str = "",
) -> str:
    """Return the ``<svg>`` of the step graph.

    Args:
        steps: step names in plan order.
        needs: dependencies of each step.
        views: the status tracker's view of each step (missing: pending).
        workflow_id: used to link each node to its row in the steps table.
    """
    if not steps:
        return '<p class="empty">No plan yet: the task manager has not planned this workflow.</p>'
    found = layout(steps, needs)
    height_rows = max(len(c) for c in found.columns)
    width = PAD * 2 + len(found.columns) * NODE_W + (len(found.columns) - 1) * GAP_X
    height = PAD * 2 + height_rows * NODE_H + (height_rows - 1) * GAP_Y

    def box(step: str) -> tuple[int, int]:
        x, y = found.position(step)
        column = found.columns[x]
        offset = (height_rows - len(column)) * (NODE_H + GAP_Y) // 2
        return PAD + x * (NODE_W + GAP_X), PAD + offset + y * (NODE_H + GAP_Y)

    parts = [
        f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-label="step graph of {len(steps)} steps">',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/>'
        "</marker></defs>",
    ]
    for need, step in found.edges:
        x1, y1 = box(need)
        x2, y2 = box(step)
        sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        mid = (sx + ex) // 2
        parts.append(
            f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" '
            'marker-end="url(#arrow)"/>'
        )
    for step in steps:
        x, y = box(step)
        view = views.get(step)
        state = view.state if view else "pending"
        detail = " · ".join(
            part
            for part in (
                state,
                _duration(view),
                f"attempt {view.step_attempt}" if view and view.step_attempt > 1 else "",
                "cached" if view and view.cache_hit else "",
            )
            if part
        )
        label = escape(step if len(step) <= 20 else step[:19] + "…")
        parts.append(
            f'<a href="#step-{escape(step)}" class="node st-{state}" '
            f'data-step="{escape(step)}" data-state="{state}">'
            f"<title>{escape(step)}: {escape(detail)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text x="{x + 10}" y="{y + 22}" class="name">{label}</text>'
            f'<text x="{x + 10}" y="{y + 42}" class="meta">{escape(detail)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
