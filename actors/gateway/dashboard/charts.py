"""Performance figures computed from the workflow views troupe keeps, and their SVG charts.

Every figure is derived from the status tracker's workflow views of a time
range (creation, finish, state, and each step's start, duration and cache
hit); the current queue depths come from JetStream stream info. Nothing is
sampled on a timer or estimated: an empty range draws an empty chart.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Protocol

from protocols.status import TERMINAL_STATES

__all__ = [
    "Metrics",
    "StepLike",
    "ViewLike",
    "bars",
    "compute",
    "hbars",
    "line",
    "percentile",
]

W, H, L, B, T, R = 560, 200, 44, 34, 12, 10


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (nearest rank) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Metrics:
    """What the performance page draws.

    Attributes:
        edges: bucket boundaries (Unix times), one more than each series.
        finished: workflows reaching a terminal state in each bucket.
        success: percent of those that succeeded (``None``: none finished).
        waiting: workflows waiting for their first step at each bucket's end.
        cache: percent of steps finished in each bucket that were cache hits.
        templates: ``(template, p50, p95, count)`` of workflow durations.
        steps: ``(template/step, p50, p95, count)`` of step durations.
        total: workflows read.
    """

    edges: list[float]
    finished: list[float]
    success: list[float | None]
    waiting: list[float]
    cache: list[float | None]
    templates: list[tuple[str, float, float, int]]
    steps: list[tuple[str, float, float, int]]
    total: int


class StepLike(Protocol):
    """What the charts read of a step (a :class:`~protocols.status.StepView` or lighter)."""

    @property
    def name(self) -> str: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def cache_hit(self) -> bool: ...


class ViewLike(Protocol):
    """What the charts read of a workflow (a :class:`~protocols.status.WorkflowView` or lighter)."""

    @property
    def state(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def template(self) -> str | None: ...
    @property
    def steps(self) -> Sequence[StepLike]: ...


def compute(views: Sequence[ViewLike], since: float, until: float, buckets: int) -> Metrics:
    """Fold ``views`` into the page's series over ``[since, until)`` in ``buckets`` buckets.

    One pass over the views and their steps; the queue depth at each bucket's
    end is counted with two sorted lists (created, first step started) and
    bisection, not one pass per bucket.
    """
    width = (until - since) / buckets
    edges = [since + i * width for i in range(buckets + 1)]
    last = buckets - 1

    finished = [0.0] * buckets
    succeeded = [0.0] * buckets
    step_done = [0.0] * buckets
    step_hit = [0.0] * buckets
    durations: dict[str, list[float]] = defaultdict(list)
    step_durations: dict[str, list[float]] = defaultdict(list)
    created: list[float] = []
    started: list[float] = []  # when each stopped waiting: max(created, first start)
    terminal = TERMINAL_STATES
    for view in views:
        template = view.template or "inline"
        first = math.inf
        for step in view.steps:
            if step.started_at is not None and step.started_at < first:
                first = step.started_at
            if step.duration_s is None:
                continue
            step_durations[f"{template}/{step.name}"].append(step.duration_s)
            done = step.finished_at
            if done is not None and since <= done < until:
                b = min(last, int((done - since) // width))
                step_done[b] += 1
                step_hit[b] += step.cache_hit
        end = view.finished_at
        if first == math.inf and end is not None:
            first = end
        created.append(view.created_at)
        started.append(max(view.created_at, first))
        if view.state in terminal and end is not None:
            if since <= end < until:
                b = min(last, int((end - since) // width))
                finished[b] += 1
                succeeded[b] += view.state == "succeeded"
            if view.state == "succeeded":
                durations[template].append(end - view.created_at)
    created.sort()
    started.sort()
    waiting = [
        float(bisect.bisect_right(created, t) - bisect.bisect_right(started, t)) for t in edges[1:]
    ]

    def summary(found: dict[str, list[float]]) -> list[tuple[str, float, float, int]]:
        return [
            (name, percentile(v, 50), percentile(v, 95), len(v))
            for name, v in sorted(found.items())
        ]

    return Metrics(
        edges=edges,
        finished=finished,
        success=[100 * s / f if f else None for s, f in zip(succeeded, finished, strict=True)],
        waiting=waiting,
        cache=[100 * h / d if d else None for h, d in zip(step_hit, step_done, strict=True)],
        templates=summary(durations),
        steps=summary(step_durations)[:20],
        total=len(views),
    )


def _utc(ts: float, seconds: bool) -> str:
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.gmtime(ts))


def _frame(title: str, ymax: float, unit: str, edges: Sequence[float]) -> list[str]:
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {W} {H}" '
        f'preserveAspectRatio="xMinYMin meet">',
        f'<line class="axis" x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}"/>',
        f'<line class="axis" x1="{L}" y1="{T}" x2="{L}" y2="{H - B}"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = H - B - frac * (H - B - T)
        value = ymax * frac
        label = f"{value:.0f}{unit}" if value >= 10 or value == 0 else f"{value:.1f}{unit}"
        out.append(
            f'<text class="tick" x="{L - 4}" y="{y + 4:.0f}" text-anchor="end">{label}</text>'
        )
        if frac:
            out.append(f'<line class="grid" x1="{L}" y1="{y:.0f}" x2="{W - R}" y2="{y:.0f}"/>')
    if edges:
        fine = edges[-1] - edges[0] < 3600  # a short range shows seconds
        for index, anchor in ((0, "start"), (len(edges) // 2, "middle"), (len(edges) - 1, "end")):
            x = L + (W - L - R) * index / max(1, len(edges) - 1)
            out.append(
                f'<text class="tick" x="{x:.0f}" y="{H - B + 16}" text-anchor="{anchor}">'
                f'<tspan data-ts="{edges[index]:.0f}" data-short="{"s" if fine else "m"}">'
                f"{_utc(edges[index], fine)}</tspan></text>"
            )
    return out


def bars(title: str, values: Sequence[float], edges: Sequence[float], unit: str = "") -> str:
    """Return a column chart of one value per bucket."""
    ymax = max([*values, 1.0])
    out = _frame(title, ymax, unit, edges)
    step = (W - L - R) / max(1, len(values))
    for i, value in enumerate(values):
        h = (H - B - T) * value / ymax
        out.append(
            f'<rect class="bar" x="{L + i * step + 1:.1f}" y="{H - B - h:.1f}" '
            f'width="{max(1.0, step - 2):.1f}" height="{h:.1f}">'
            f"<title>{value:g}{unit}</title></rect>"
        )
    return "".join([*out, "</svg>"])


def line(
    title: str,
    values: Sequence[float | None],
    edges: Sequence[float],
    unit: str = "",
    top: float = 0,
) -> str:
    """Return a line chart of one value per bucket (gaps where a value is ``None``)."""
    ymax = top or max([*(v for v in values if v is not None), 1.0])
    out = _frame(title, ymax, unit, edges)
    step = (W - L - R) / max(1, len(values))
    path: list[str] = []
    joined = False  # a bucket without a value breaks the line
    for i, value in enumerate(values):
        if value is None:
            joined = False
            continue
        x = L + (i + 0.5) * step
        y = H - B - (H - B - T) * value / ymax
        path.append(f"{'L' if joined else 'M'}{x:.1f},{y:.1f}")
        joined = True
        out.append(
            f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
            f"<title>{value:.1f}{unit}</title></circle>"
        )
    if path:
        out.insert(3, f'<path class="line" d="{" ".join(path)}"/>')
    return "".join([*out, "</svg>"])


def hbars(title: str, rows: Sequence[tuple[str, float, float, int]], unit: str = "s") -> str:
    """Return horizontal p50/p95 bars, one pair per row."""
    if not rows:
        return ""
    row_h = 26
    height = T + len(rows) * row_h + 8
    left = 170
    vmax = max([r[2] for r in rows] + [0.001])
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {W} {height}" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, (name, p50, p95, count) in enumerate(rows):
        y = T + i * row_h
        label = escape(name if len(name) <= 24 else "…" + name[-23:])
        w95 = (W - left - 150) * p95 / vmax
        w50 = (W - left - 150) * p50 / vmax
        out.append(
            f'<text class="tick" x="{left - 6}" y="{y + 15}" text-anchor="end">{label}</text>'
            f'<rect class="bar p95" x="{left}" y="{y + 3}" width="{w95:.1f}" height="16">'
            f"<title>p95 {p95:.2f}{unit}</title></rect>"
            f'<rect class="bar" x="{left}" y="{y + 7}" width="{w50:.1f}" height="8">'
            f"<title>p50 {p50:.2f}{unit}</title></rect>"
            f'<text class="tick" x="{left + w95 + 6:.1f}" y="{y + 15}">'
            f"{p50:.2f} / {p95:.2f}{unit} (n={count})</text>"
        )
    return "".join([*out, "</svg>"])
