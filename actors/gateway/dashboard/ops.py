"""The operations pages: performance, agents, breakers and running steps.

Each asks the actors at request time through the gateway's services facade;
when an actor does not answer, the section says "not available" with the
reason instead of showing anything made up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from actors.gateway.auth import Principal
from actors.gateway.dashboard import charts
from actors.gateway.dashboard.perfdata import MAX_VIEWS, PerfView, read_views
from actors.gateway.dashboard.views import badge, duration, empty, table, timestamp
from actors.gateway.services import Services
from actors.runtime.errors import TroupeError
from protocols.pipelines import PIPELINES_STREAM
from protocols.tasks import TASKS_STREAM

__all__ = [
    "PERF_RANGES",
    "PerfCache",
    "agents_page",
    "breakers_page",
    "executions_page",
    "performance_page",
]

PERF_RANGES: dict[str, float] = {
    "15m": 900.0,
    "1h": 3600.0,
    "6h": 6 * 3600.0,
    "24h": 86400.0,
    "7d": 7 * 86400.0,
}
"""Time ranges of the performance page."""

VIEWS_TTL_S = 5.0
"""Seconds the views read for a range serve further loads of that range."""


DEPTH_TIMEOUT_S = 0.25
"""How long the page waits for a stream's info."""

DEPTH_RETRY_S = 60.0
"""How long a stream whose info did not come is shown as not available before asking again."""


@dataclass
class PerfCache:
    """What one dashboard remembers between loads of its performance page.

    Attributes:
        views: per range (seconds): when read (monotonic), the read time, the views,
            whether they were cut at :data:`MAX_VIEWS`.
        metrics: per range: the read time of the views they were computed from, the
            axis start and the figures (computed once per read, not per load).
        unavailable: per stream: until when its info is not asked again.
    """

    views: dict[float, tuple[float, float, list[PerfView], bool]] = field(default_factory=dict)
    metrics: dict[float, tuple[float, float, charts.Metrics]] = field(default_factory=dict)
    unavailable: dict[str, float] = field(default_factory=dict)


def unavailable(what: str, exc: BaseException) -> str:
    """Return the "not available" state of a section whose actor did not answer."""
    reason = str(exc) if isinstance(exc, TroupeError) else type(exc).__name__
    return (
        '<div class="empty unavailable" role="status"><p><strong>'
        f"{escape(what)} not available</strong></p><p>{escape(str(reason))}</p></div>"
    )


async def _views(
    services: Services, cache: PerfCache, seconds: float, until: float
) -> tuple[list[PerfView], bool, float]:
    """Return the views of the last ``seconds`` (maybe read up to 5 s ago), and when read.

    From the gateway's live copy of the newest views once its watch has caught
    up (no round trip), else from the status tracker; a read starts the watch
    if it does not run.
    """
    cached = cache.views.get(seconds)
    if cached is not None and time.monotonic() - cached[0] < VIEWS_TTL_S:
        return cached[2], cached[3], cached[1]
    live = await services.recent.live() if services.recent is not None else None
    if live is not None:
        views, truncated = live.read(until - seconds, MAX_VIEWS)
    else:
        views, truncated = await read_views(services, until - seconds, until, MAX_VIEWS)
    cache.views[seconds] = (time.monotonic(), until, views, truncated)
    return views, truncated, until


async def _depth(services: Services, cache: PerfCache, stream: str) -> str:
    """Return the messages a stream holds now, or why that is not available."""
    now = time.monotonic()
    if cache.unavailable.get(stream, 0.0) > now:
        return "not available (no answer to stream info)"
    try:
        info = await asyncio.wait_for(services.bus.js.stream_info(stream), DEPTH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - shown as not available
        # Not asked again for a while: a role without the permission only ever times out.
        cache.unavailable[stream] = now + DEPTH_RETRY_S
        return f"not available ({type(exc).__name__})"
    return f"{info.state.messages:,}"


async def _depths(services: Services, cache: PerfCache) -> str:
    streams = (
        (TASKS_STREAM, "tasks waiting for the task manager"),
        (PIPELINES_STREAM, "pipeline runs waiting for a runner"),
    )
    found = await asyncio.gather(*(_depth(services, cache, stream) for stream, _ in streams))
    rows = [
        (escape(what), escape(depth), f"<code>{stream}</code>")
        for (stream, what), depth in zip(streams, found, strict=True)
    ]
    return table(("Queue", "Messages now", "Stream"), rows)


def _metrics(
    cache: PerfCache, seconds: float, views: list[PerfView], until: float
) -> tuple[float, charts.Metrics]:
    """Return the axis start and the figures of the views read at ``until`` (computed once)."""
    found = cache.metrics.get(seconds)
    if found is not None and found[0] == until:
        return found[1], found[2]
    # The axis starts at the range's first workflow, so a young troupe's few
    # minutes of history are not squeezed into one bucket at the right edge.
    since = until - seconds
    first = min((v.created_at for v in views), default=since)
    start = min(max(since, first - (until - first) / 24), until - 60.0)
    m = charts.compute(views, start, until, 24)
    cache.metrics[seconds] = (until, start, m)
    return start, m


async def performance_page(services: Services, span: str, cache: PerfCache) -> str:
    """Return the body of the performance page for the range ``span``."""
    seconds = PERF_RANGES.get(span, 3600.0)
    picker = "".join(
        f'<a href="/performance?range={k}"{" aria-current=true" if k == span else ""}>{k}</a> '
        for k in PERF_RANGES
    )
    head = f'<nav class="ranges" aria-label="time range">Range: {picker}</nav>'
    # The queue depths are asked for while the views are read, not after.
    depths = asyncio.ensure_future(_depths(services, cache))
    try:
        views, truncated, until = await _views(services, cache, seconds, time.time())
    except Exception as exc:  # noqa: BLE001 - shown as not available
        return head + unavailable("Workflow views", exc) + f"<h2>Queue depth now</h2>{await depths}"
    start, m = _metrics(cache, seconds, views, until)
    source = (
        f'<p class="muted">Computed from the {m.total:,} workflow views the status tracker '
        f"holds for workflows created in the last {escape(span)}"
        + (f" (the newest {MAX_VIEWS:,} only)" if truncated else "")
        + f"; the axis starts at the first of them, {duration(until - start)} in 24 buckets; "
        f"read at {timestamp(until)}, times in your time zone.</p>"
    )
    if not views:
        return (
            head
            + source
            + empty("No workflows in this range.", "Charts fill in as workflows run.")
            + f"<h2>Queue depth now</h2>{await depths}"
        )

    def card(title: str, svg: str, how: str) -> str:
        return (
            f'<figure class="card"><figcaption><strong>{escape(title)}</strong>'
            f"<br><small>{how}</small></figcaption>{svg or empty('No data.')}</figure>"
        )

    return (
        head
        + source
        + '<div class="grid">'
        + card(
            "Throughput",
            charts.bars("workflows finished per bucket", m.finished, m.edges),
            "Workflows reaching a final state per bucket (<code>finished_at</code>).",
        )
        + card(
            "Success rate",
            charts.line("success rate", m.success, m.edges, "%", top=100),
            "Succeeded ÷ finished per bucket.",
        )
        + card(
            "Queue depth",
            charts.line("workflows waiting", m.waiting, m.edges),
            "Workflows created but with no step started yet, at each bucket's end "
            "(<code>created_at</code> and the first step's <code>started_at</code>).",
        )
        + card(
            "Cache hit rate",
            charts.line("step cache hit rate", m.cache, m.edges, "%", top=100),
            "Steps finished per bucket that came from the step cache.",
        )
        + card(
            "Duration per template (p50 / p95)",
            charts.hbars("workflow duration per template", m.templates),
            "Succeeded workflows: <code>finished_at &minus; created_at</code>.",
        )
        + card(
            "Step durations (p50 / p95)",
            charts.hbars("step durations", m.steps),
            "Each step's <code>duration_s</code>, per template and step (20 shown).",
        )
        + "</div>"
        + f"<h2>Queue depth now</h2><p class='muted'>From JetStream stream info.</p>"
        f"{await depths}"
    )


async def agents_page(services: Services) -> str:
    """Return the body of the agents page."""
    try:
        found = await services.agents()
    except Exception as exc:  # noqa: BLE001 - shown as not available
        return unavailable("Agent registry", exc)
    if not found.agents:
        return empty("No live agents.", "Agents appear here while their heartbeats arrive.")
    rows = [
        (
            escape(a.info.name) + f"<br><small><code>{escape(a.info.agent_id)}</code></small>",
            " ".join(
                f'<span class="label">{escape(c.name)} {escape(c.version)}</span>'
                for c in a.info.capabilities
            ),
            f"{a.info.load} / {a.info.capacity}",
            timestamp(a.info.heartbeat_at),
            timestamp(a.info.started_at),
            escape(a.presence),
        )
        for a in found.agents
    ]
    return table(("Agent", "Capabilities", "Load", "Last heartbeat", "Started", "Presence"), rows)


async def breakers_page(services: Services, principal: Principal) -> str:
    """Return the body of the breakers page (controls for operators)."""
    try:
        found = await services.breakers()
    except Exception as exc:  # noqa: BLE001 - shown as not available
        return unavailable("Breaker supervisor", exc)
    if not found.items:
        return empty("No breakers yet.", "A breaker appears once its key reports an outcome.")
    control = principal.allows("breakers:control")
    rows = []
    for b in found.items:
        cells = [
            f"<code>{escape(b.key)}</code>",
            badge(b.state, "/docs/architecture#breaker-supervisor"),
            f"{b.failure_rate * 100:.0f}%",
            f"{b.slow_rate * 100:.0f}%",
            str(b.calls),
            timestamp(b.open_until) if b.open_until else "&ndash;",
            timestamp(b.since),
        ]
        if control:
            cells.append(
                "".join(
                    f'<form method="post" class="inline" '
                    f'action="/breakers/{quote(b.key, safe="")}">'
                    f'<input type="hidden" name="action" value="{a}">'
                    f'<button type="submit">{label}</button></form>'
                    for a, label in (("force_open", "Force open"), ("reset", "Reset"))
                )
            )
        rows.append(cells)
    headers = ["Key", "State", "Failures", "Slow", "Calls", "Next half-open", "Since"]
    return table([*headers, "Control"] if control else headers, rows)


async def executions_page(services: Services, principal: Principal) -> str:
    """Return the body of the executions page (stop for operators)."""
    if services.leases is None:
        return unavailable("Running steps", RuntimeError("no runner lease bucket"))
    try:
        found = await services.executions()
    except Exception as exc:  # noqa: BLE001 - shown as not available
        return unavailable("Running steps", exc)
    if not found.items:
        return empty("No steps running now.")
    stop = principal.allows("workflows:cancel")
    now = time.time()
    rows = []
    for e in found.items:
        wid = quote(e.workflow_id)
        cells = [
            f'<a href="/workflows/{wid}">{escape(e.workflow_id)}</a>',
            escape(e.step),
            f"<code>{escape(e.runner)}</code>",
            str(e.attempt),
            timestamp(e.started_at),
            duration(max(0.0, now - e.started_at)),
        ]
        if stop:
            cells.append(
                f'<form method="post" action="/workflows/{wid}/cancel" class="inline">'
                '<button type="submit" class="danger">Stop</button></form>'
            )
        rows.append(cells)
    headers = ["Workflow", "Step", "Runner", "Attempt", "Started", "Running for"]
    note = (
        '<p class="muted">Stop cancels the step\'s workflow: its runner stops the step.</p>'
        if stop
        else ""
    )
    return note + table([*headers, "Stop"] if stop else headers, rows)
