"""One workflow in full: step graph, steps, timeline, output, result, artifacts and actions.

Everything comes from the actors: the view from the status tracker, the
timeline from the status stream (every transition, retry and step attempt),
the result and artifacts from the pipeline runners. The graph's edges come
from the plan: the inline pipeline of the submission, or the plan the task
manager renders for the submitted template and parameters (it alone knows
every template it renders; the gateway reads no template files). When the plan
is unknown (no submission and no template, a template the task manager
rejects, or no answer within :data:`PLAN_TIMEOUT`) the steps are drawn
unconnected, and the page says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from actors.gateway.auth import Principal
from actors.gateway.dashboard.graph import render_graph
from actors.gateway.dashboard.output import lines_so_far, live_output
from actors.gateway.dashboard.views import badge, duration, empty, table, timestamp
from actors.gateway.schemas import HistoryEntry
from actors.gateway.services import Services
from actors.runtime.errors import NotFound, RequestError
from actors.task_manager.client import validate_task
from protocols.pipelines import PipelineResult, PipelineSpec
from protocols.status import TERMINAL_STATES, WorkflowView
from protocols.tasks import TaskSubmitted

__all__ = ["PLAN_TIMEOUT", "Detail", "DocLinks", "Needs", "load_detail", "render_detail"]

_EXIT = re.compile(r"exit code (\d+)")

HISTORY_SHOWN = 400
"""Most timeline entries shown (the newest)."""

DocLinks = Callable[..., str]
"""Maps error codes, reasons, classes or states (most specific first) to a docs URL."""

Needs = dict[str, list[str]] | None
"""Each step's dependencies, or ``None`` when the plan is unknown."""

PLAN_TIMEOUT = 1.0
"""Seconds the page waits for the task manager (the submission and the plan, together)."""


@dataclass(slots=True)
class Detail:
    """What the detail page shows.

    Attributes:
        view: the status tracker's view.
        history: status events, oldest first (may be empty).
        result: the stored result, once there is one.
        needs: each step's dependencies, or ``None`` when the plan is unknown.
        labels: labels of the submission.
        rerunnable: whether the workflow finished and the task manager has its
            submission (a re-run is possible, whichever way it was submitted).
        so_far: ``(step, stream, line)`` the unfinished steps printed before the page
            was rendered, as far as the gateway saw them.
    """

    view: WorkflowView
    history: list[HistoryEntry] = field(default_factory=list)
    result: PipelineResult | None = None
    needs: Needs = None
    labels: dict[str, str] = field(default_factory=dict)
    rerunnable: bool = False
    so_far: list[tuple[str, str, str]] = field(default_factory=list)


def _edges(pipeline: PipelineSpec) -> dict[str, list[str]]:
    return {s.name: list(s.needs) for s in pipeline.steps}


async def _plan(services: Services, view: WorkflowView, found: list[TaskSubmitted]) -> Needs:
    """Return the needs of the workflow's plan as the task manager renders it.

    The submission, once known, is appended to ``found`` so that it outlives a
    timeout while the plan is asked for.
    """
    entry = await services.submissions.get_or_none(view.workflow_id)
    task = entry.value if entry is not None else None
    if task is not None:
        found.append(task)
        if task.pipeline is not None:
            return _edges(task.pipeline)
    elif view.template:
        # No submission kept: the template with its defaults is the best guess.
        task = TaskSubmitted(task_id=view.workflow_id, template=view.template)
    else:
        return None
    plan = await validate_task(services.bus, task, timeout=PLAN_TIMEOUT)
    return _edges(plan.pipeline) if plan.valid and plan.pipeline is not None else None


async def _needs(services: Services, view: WorkflowView) -> tuple[Needs, TaskSubmitted | None]:
    """Return the plan's needs (``None``: unknown) and the submission, if known.

    Both come from the task manager, which alone knows every template it
    renders; one that does not answer in :data:`PLAN_TIMEOUT` leaves the graph
    unconnected rather than holding the page.
    """
    found: list[TaskSubmitted] = []
    needs: Needs = None
    with contextlib.suppress(TimeoutError, RequestError):
        async with asyncio.timeout(PLAN_TIMEOUT):
            needs = await _plan(services, view, found)
    return needs, found[0] if found else None


async def load_detail(services: Services, workflow_id: str) -> Detail:
    """Gather the detail of a workflow.

    Raises:
        NotFound: no such workflow.
    """
    view = await services.get(workflow_id)

    async def history() -> list[HistoryEntry]:
        with contextlib.suppress(NotFound):
            return (await services.history(workflow_id)).items
        return []

    async def result() -> PipelineResult | None:
        with contextlib.suppress(RequestError):
            return await services.result(workflow_id)
        return None

    items, found, (needs, submitted) = await asyncio.gather(
        history(), result(), _needs(services, view)
    )
    return Detail(
        view=view,
        history=items,
        result=found,
        needs=needs,
        labels=dict(view.labels) or (dict(submitted.labels) if submitted else {}),
        rerunnable=submitted is not None and view.state in TERMINAL_STATES,
        so_far=lines_so_far(services, view),
    )


def _summary(d: Detail, docs: DocLinks, now: float) -> str:
    v = d.view
    end = v.finished_at if v.finished_at is not None else now
    eta = (
        f"<dt>ETA</dt><dd>{duration(v.eta_s)}</dd>"
        if v.eta_s is not None and v.state not in TERMINAL_STATES
        else ""
    )
    labels = " ".join(
        f'<span class="label">{escape(k)}={escape(val)}</span>'
        for k, val in sorted(d.labels.items())
    )
    progress = max(0.0, min(100.0, v.progress * 100))
    return (
        '<dl class="summary">'
        f'<dt>State</dt><dd id="state" data-state="{escape(v.state)}">'
        f"{badge(v.state, docs(v.state))}</dd>"
        f"<dt>Template</dt><dd>{escape(v.template or 'inline pipeline')}</dd>"
        f'<dt>Progress</dt><dd><progress max="100" value="{progress:.0f}"></progress> '
        f"{progress:.0f}%{' · ' + escape(v.current_step) if v.current_step else ''}</dd>{eta}"
        f"<dt>Started</dt><dd>{timestamp(v.created_at)}</dd>"
        f"<dt>Duration</dt><dd>{duration(max(0.0, end - v.created_at))}</dd>"
        f"<dt>Attempt</dt><dd>{v.attempt}</dd>"
        + (f"<dt>Labels</dt><dd>{labels}</dd>" if labels else "")
        + (f"<dt>Trace</dt><dd><code>{escape(v.trace_id)}</code></dd>" if v.trace_id else "")
        + "</dl>"
    )


def error_codes(reason: str, error_class: str | None, state: str) -> list[str]:
    """Return the troubleshooting codes of a failure, most specific first.

    A rejection's reason starts with its code (``unknown_template: ...``), a step
    reason may name one (``circuit_open``), a failed command its exit code.
    """
    codes: list[str] = []
    head = reason.split(":", 1)[0].strip()
    if head and head.replace("_", "").isalpha() and head.islower():
        codes.append(head)
    codes += [w for w in ("circuit_open", "dependency_failed", "runner_lost") if w in reason]
    found = _EXIT.search(reason)
    if found:
        codes.append(f"exit-{found.group(1)}")
    if error_class:
        codes.append(error_class)
    codes.append(state)
    return codes


def _error(d: Detail, docs: DocLinks) -> str:
    v = d.view
    if v.state not in ("failed", "timed_out", "rejected", "cancelled") and not v.reason:
        return ""
    kind = v.error_class or (d.result.error_class if d.result else None) or v.state
    codes = error_codes(v.reason, kind, v.state)
    tails = {s.name: s.stderr_tail for s in d.result.steps} if d.result else {}
    failed = "".join(
        f"<li>step <strong>{escape(s.name)}</strong>: {escape(s.reason or s.state)}"
        + (f"<pre>{escape(tails[s.name][-600:])}</pre>" if tails.get(s.name) else "")
        + "</li>"
        for s in v.steps
        if s.state in ("failed", "timed_out")
    )
    return (
        '<section class="error" aria-labelledby="error-h"><h2 id="error-h">Error</h2>'
        f'<p><span class="badge st-failed">{escape(kind)}</span> {escape(v.reason or "")}</p>'
        + (f'<ul class="failed">{failed}</ul>' if failed else "")
        + f'<p><a href="{escape(docs(*codes))}">What this means and what to do</a></p>'
        "</section>"
    )


def _steps(d: Detail, docs: DocLinks) -> str:
    if not d.view.steps:
        return empty("No steps reported yet.")
    rows = []
    for s in d.view.steps:
        rows.append(
            [
                f'<span id="step-{escape(s.name)}">{escape(s.name)}</span>',
                badge(s.state, docs(*error_codes(s.reason, s.error_class, s.state))),
                duration(s.duration_s),
                str(s.step_attempt)
                + (f" ({escape(s.attempt_reason)})" if s.attempt_reason != "first" else ""),
                "yes" if s.cache_hit else "no",
                "&ndash;" if s.percent is None else f"{s.percent:.0f}%",
                escape(s.reason) or "&ndash;",
            ]
        )
    return table(("Step", "State", "Duration", "Attempt", "Cache hit", "Progress", "Reason"), rows)


def _step_parts(e: dict[str, Any]) -> list[str]:
    parts = [f"step <strong>{escape(str(e.get('step', '')))}</strong>"]
    parts.append(badge(str(e.get("state", ""))))
    if int(e.get("step_attempt", 1)) > 1:
        parts.append(f"attempt {int(e['step_attempt'])} ({escape(str(e.get('attempt_reason')))})")
    if e.get("duration_s") is not None:
        parts.append(duration(float(e["duration_s"])))
    if e.get("cache_hit"):
        parts.append("cache hit")
    if e.get("exit_code") is not None:
        parts.append(f"exit {int(e['exit_code'])}")
    return parts


def _event_row(entry: HistoryEntry, docs: DocLinks) -> str:
    e = entry.event
    kind = str(e.get("type", "")).rsplit(".", 1)[-1]
    at = timestamp(float(e.get("at", 0.0)))
    reason = str(e.get("reason") or "")
    css = "breaker" if "breaker" in reason.lower() or "circuit_open" in reason else kind
    parts: list[str] = []
    if kind == "transition":
        state = str(e.get("state", ""))
        parts.append(f"workflow {badge(state, docs(state))}")
        if int(e.get("attempt", 1)) > 1:
            parts.append(f"attempt {int(e['attempt'])}")
        if e.get("next_attempt_at"):
            delay = float(e["next_attempt_at"]) - float(e.get("at", 0.0))
            parts.append(f"retry in {duration(max(0.0, delay))}")
    elif kind == "step":
        parts += _step_parts(e)
    else:
        parts.append(f"step <strong>{escape(str(e.get('step', '')))}</strong> progress")
        if e.get("percent") is not None:
            parts.append(f"{float(e['percent']):.0f}%")
        if e.get("message"):
            parts.append(f"<code>{escape(json.dumps(e['message'])[:200])}</code>")
    if e.get("error_class"):
        cls = str(e["error_class"])
        parts.append(f'<a href="{escape(docs(cls))}">{escape(cls)}</a>')
    if reason:
        parts.append(f'<span class="reason">{escape(reason)}</span>')
    return f'<li class="ev-{escape(css)}">{at} {" · ".join(parts)}</li>'


def _timeline(d: Detail, docs: DocLinks) -> str:
    if not d.history:
        return empty("No history in the status stream.")
    shown = d.history[-HISTORY_SHOWN:]
    more = len(d.history) - len(shown)
    note = f'<p class="muted">{more} older events not shown.</p>' if more else ""
    items = "".join(_event_row(e, docs) for e in shown)
    return f'{note}<ol class="timeline" id="timeline">{items}</ol>'


def _output(d: Detail) -> str:
    parts: list[str] = [] if d.view.state in TERMINAL_STATES else [live_output(d.so_far)]
    if d.view.messages:
        lines = "".join(
            f"<li>{timestamp(float(m.get('at', 0.0)))} <strong>{escape(str(m.get('step', '')))}"
            f"</strong> <code>{escape(json.dumps(m.get('message', {}))[:300])}</code></li>"
            for m in d.view.messages
        )
        parts.append(f'<h3>Messages from steps</h3><ul class="messages">{lines}</ul>')
    if d.result is not None:
        for s in d.result.steps:
            text = (s.stdout_tail + ("\n" + s.stderr_tail if s.stderr_tail else "")).strip()
            if text:
                parts.append(
                    f"<details><summary>{escape(s.name)} output (last lines)</summary>"
                    f"<pre>{escape(text)}</pre></details>"
                )
    if not parts:
        return empty(
            "No output yet.",
            "Steps report <code>::progress</code> and <code>::message</code> lines live; "
            "their output tails are kept with the result.",
        )
    return "".join(parts)


def _result(d: Detail) -> str:
    r = d.result
    if r is None:
        return empty("No result yet.", "The result is stored when the pipeline run ends.")
    wid = quote(d.view.workflow_id)
    artifacts = [
        (
            f'<a href="/workflows/{wid}/artifacts/{quote(a.name)}?step={quote(s.name)}" '
            f"download>{escape(a.name)}</a>",
            escape(s.name),
            f"{a.size:,} bytes",
        )
        for s in r.steps
        for a in s.artifacts
    ]
    files = table(("Artifact", "Step", "Size"), artifacts) if artifacts else "<p>No artifacts.</p>"
    return (
        f"<p>{badge(r.state)} on <code>{escape(r.backend)}</code>"
        f" in {duration(r.finished_at - r.started_at)}, run attempt {r.attempt}."
        f" {escape(r.backend_note)}</p>{files}"
    )


def _section(key: str, title: str, body: str) -> str:
    return f'<section aria-labelledby="{key}-h"><h2 id="{key}-h">{title}</h2>{body}</section>'


def render_live(d: Detail, principal: Principal, docs: DocLinks) -> str:
    """Return the part of the detail page that live updates replace."""
    now = time.time()
    v = d.view
    note = (
        ""
        if d.needs is not None
        else '<p class="muted">Dependencies unknown (the task manager gave no plan for '
        "this workflow): steps drawn unconnected.</p>"
    )
    steps = v.plan or [s.name for s in v.steps]
    graph = render_graph(
        steps, d.needs or {}, {s.name: s for s in v.steps}, workflow_id=v.workflow_id
    )
    return (
        _actions(d, principal)
        + _summary(d, docs, now)
        + _error(d, docs)
        + f'<section aria-labelledby="graph-h"><h2 id="graph-h">Step graph</h2>{note}'
        f'<div class="scroll" id="graph">{graph}</div></section>'
        + _section("steps", "Steps", _steps(d, docs))
        + f'<section aria-labelledby="out-h"><h2 id="out-h">Output</h2>{_output(d)}</section>'
        + f'<section aria-labelledby="res-h"><h2 id="res-h">Result</h2>{_result(d)}</section>'
        + _section("tl", "Timeline", _timeline(d, docs))
    )


def render_detail(d: Detail, principal: Principal, docs: DocLinks) -> str:
    """Return the body of the detail page: the live part under its live-updates line."""
    return (
        '<p class="live" aria-live="polite"><span class="dot"></span> '
        '<span id="live-status">connecting to live updates…</span></p>'
        f'<div id="live">{render_live(d, principal, docs)}</div>'
    )


def _actions(d: Detail, principal: Principal) -> str:
    wid = quote(d.view.workflow_id)
    actions: list[str] = []
    if principal.allows("workflows:cancel") and d.view.state not in TERMINAL_STATES:
        actions.append(
            f'<form method="post" action="/workflows/{wid}/cancel">'
            '<button type="submit" class="danger" id="cancel">Cancel workflow</button></form>'
        )
    if principal.allows("workflows:submit") and d.rerunnable:
        actions.append(
            f'<form method="post" action="/workflows/{wid}/rerun">'
            '<button type="submit" id="rerun">Re-submit</button></form>'
        )
    return f'<div class="actions">{"".join(actions)}</div>' if actions else ""
