"""The workflow list: filters, cursor paging over the status tracker, and its HTML.

State, template, time range and a ``key=value`` label are filtered by the status
tracker itself (each view carries its task's labels). A label named without a
value, or a text filter, is applied here to the tracker's pages: up to
:data:`SCAN_PAGES` pages per request; the page then says how far it looked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from actors.gateway.dashboard.views import badge, duration, empty, timestamp
from actors.gateway.services import Services
from protocols.status import WORKFLOW_STATES, ListWorkflows, WorkflowView

__all__ = ["RANGES", "SCAN_PAGES", "Filters", "Row", "list_page", "load_rows", "rows_html"]

PAGE_SIZE = 50
"""Workflows per page."""

SCAN_PAGES = 20
"""Most tracker pages one label or text filter reads."""

RANGES: dict[str, float | None] = {
    "": None,
    "15m": 900.0,
    "1h": 3600.0,
    "24h": 86400.0,
    "7d": 7 * 86400.0,
}
"""Time ranges offered by the filter (seconds back from now)."""

_RANGE_LABELS = {"": "any time", "15m": "last 15 min", "1h": "last hour", "24h": "last 24 h"}


@dataclass(frozen=True, slots=True)
class Filters:
    """What the list shows.

    Attributes:
        state: one workflow state, or empty.
        template: a template name, or empty.
        label: ``key=value`` (or ``key``), or empty.
        range: a key of :data:`RANGES`.
        text: words to find in the id, template, reason or labels.
        cursor: the tracker's cursor of this page (empty: the newest).
    """

    state: str = ""
    template: str = ""
    label: str = ""
    range: str = ""
    text: str = ""
    cursor: str = ""

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        """Read the filters from a query string (unknown values are dropped)."""
        state = query.get("state", "")
        span = query.get("range", "")
        return cls(
            state=state if state in WORKFLOW_STATES else "",
            template=query.get("template", "").strip()[:128],
            label=query.get("label", "").strip()[:200],
            range=span if span in RANGES else "",
            text=query.get("q", "").strip()[:200],
            cursor=query.get("cursor", "")[:500],
        )

    def query(self, **changes: str) -> str:
        """Return the query string of these filters with ``changes``."""
        values = {
            "state": self.state,
            "template": self.template,
            "label": self.label,
            "range": self.range,
            "q": self.text,
            "cursor": self.cursor,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class Row:
    """One workflow of the list, with the labels of its submission."""

    view: WorkflowView
    labels: dict[str, str] = field(default_factory=dict)


def _label(filters: Filters) -> tuple[str, str | None]:
    """Return the label filter's key and value (``None``: any value)."""
    key, sep, value = filters.label.partition("=")
    return key, value if sep else None


def _matches(row: Row, filters: Filters) -> bool:
    if filters.label:
        key, value = _label(filters)
        if key not in row.labels or (value is not None and row.labels[key] != value):
            return False
    if filters.text:
        haystack = " ".join(
            [row.view.workflow_id, row.view.template or "", row.view.reason]
            + [f"{k}={v}" for k, v in row.labels.items()]
        ).lower()
        if not all(word in haystack for word in filters.text.lower().split()):
            return False
    return True


async def load_rows(
    services: Services, filters: Filters, *, now: float | None = None
) -> tuple[list[Row], str | None, int]:
    """Return one page of rows, the cursor of the next page, and how many workflows were read."""
    span = RANGES[filters.range]
    since = None if span is None else (now or time.time()) - span
    cursor: str | None = filters.cursor or None
    key, value = _label(filters) if filters.label else ("", None)
    exact = {key: value} if value is not None else {}
    post = bool(filters.text or (filters.label and value is None))
    rows: list[Row] = []
    scanned = 0
    for _ in range(SCAN_PAGES if post else 1):
        found = await services.list(
            ListWorkflows(
                states=[filters.state] if filters.state else [],  # type: ignore[list-item]
                template=filters.template or None,
                labels=exact,
                since=since,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
        )
        scanned += len(found.items)
        page = [Row(v, dict(v.labels)) for v in found.items]
        rows += [r for r in page if _matches(r, filters)]
        cursor = found.next_cursor
        if cursor is None or len(rows) >= PAGE_SIZE:
            break
    return rows, cursor, scanned


def _row(row: Row, now: float) -> str:
    view = row.view
    wid = escape(view.workflow_id)
    end = view.finished_at if view.finished_at is not None else now
    labels = " ".join(
        f'<span class="label">{escape(k)}={escape(v)}</span>' for k, v in sorted(row.labels.items())
    )
    progress = max(0.0, min(100.0, view.progress * 100))
    return (
        f'<tr data-id="{wid}" data-state="{escape(view.state)}">'
        f'<td><a href="/workflows/{wid}">{wid}</a></td>'
        f'<td class="state">{badge(view.state)}</td>'
        f"<td>{escape(view.template or '&ndash;')}</td>"
        f"<td>{labels or '<span class=muted>&ndash;</span>'}</td>"
        f'<td><progress max="100" value="{progress:.0f}" aria-label="progress of {wid}">'
        f"</progress> {progress:.0f}%</td>"
        f"<td>{timestamp(view.created_at)}</td>"
        f"<td>{duration(max(0.0, end - view.created_at))}</td></tr>"
    )


def rows_html(rows: list[Row], *, now: float | None = None) -> str:
    """Return the ``<tr>`` of each row (an empty-state row when there is none)."""
    if not rows:
        return (
            '<tr class="none"><td colspan="7">'
            + empty(
                "No workflows to show.",
                "Submit one with <code>troupe submit hello</code> or "
                "<code>POST /api/v1/workflows</code>; it appears here at once.",
            )
            + "</td></tr>"
        )
    moment = now or time.time()
    return "".join(_row(r, moment) for r in rows)


def _form(filters: Filters, templates: list[str]) -> str:
    def options(values: list[str], chosen: str, blank: str) -> str:
        out = [f'<option value="">{blank}</option>']
        for v in values:
            sel = " selected" if v == chosen else ""
            out.append(f'<option value="{escape(v)}"{sel}>{escape(v.replace("_", " "))}</option>')
        return "".join(out)

    ranges = "".join(
        f'<option value="{k}"{" selected" if k == filters.range else ""}>'
        f"{_RANGE_LABELS.get(k, 'last ' + k)}</option>"
        for k in RANGES
    )
    return (
        '<form class="filters" method="get" action="/" role="search">'
        f'<label>State <select name="state">'
        f"{options(list(WORKFLOW_STATES), filters.state, 'any')}</select></label>"
        f'<label>Template <select name="template">'
        f"{options(templates, filters.template, 'any')}</select></label>"
        f'<label>Label <input name="label" value="{escape(filters.label)}" '
        'placeholder="key=value" size="12"></label>'
        f'<label>Started <select name="range">{ranges}</select></label>'
        f'<label>Text <input type="search" name="q" value="{escape(filters.text)}" '
        'placeholder="id, reason…" size="14"></label>'
        '<button type="submit">Filter</button> <a href="/">Clear</a></form>'
    )


def list_page(
    filters: Filters, rows: list[Row], next_cursor: str | None, scanned: int, templates: list[str]
) -> str:
    """Return the body of the workflows page."""
    headers = ("Workflow", "State", "Template", "Labels", "Progress", "Started", "Duration")
    head = "".join(f'<th scope="col">{h}</th>' for h in headers)
    paging = []
    if filters.cursor:
        paging.append(f'<a href="/?{filters.query(cursor="")}">← Newest</a>')
    if next_cursor:
        paging.append(f'<a href="/?{filters.query(cursor=next_cursor)}" rel="next">Older →</a>')
    note = ""
    if filters.label or filters.text:
        note = (
            f'<p class="muted">Label and text filters looked at {scanned} workflows '
            "(labels are known for workflows submitted through the gateway).</p>"
        )
    live = (
        '<p class="live" aria-live="polite"><span class="dot"></span> '
        '<span id="live-status">connecting to live updates…</span></p>'
    )
    return (
        _form(filters, templates)
        + live
        + note
        + '<div class="scroll"><table class="workflows"><caption class="sr">Workflows, newest first'
        f"</caption><thead><tr>{head}</tr></thead>"
        f'<tbody id="rows">{rows_html(rows)}</tbody></table></div>'
        + f'<nav class="paging" aria-label="pages">{" ".join(paging)}</nav>'
    )
