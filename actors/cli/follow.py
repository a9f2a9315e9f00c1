"""Following a workflow until it ends, and the one-line summaries of its views.

:func:`follow` is what ``troupe watch``, ``troupe submit --wait`` and
``troupe demo`` share. It draws a live ``rich`` display on a terminal and
prints plain line-by-line updates otherwise, and returns the final view;
:func:`exit_code` turns that view into the command's exit status.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar, TextIO

from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, Unavailable
from actors.status_tracker.client import get_workflow, watch_workflow
from protocols.status import TERMINAL_STATES, StepView, WorkflowView

__all__ = ["EXIT_CODES", "exit_code", "follow", "format_view", "honest_progress", "step_line"]

EXIT_CODES: dict[str, int] = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 3,
    "timed_out": 4,
    "rejected": 5,
}
"""Exit status of ``watch`` / ``submit --wait`` by final state."""

_POLL_S = 1.0
"""Seconds between fallback queries while following (updates are fire-and-forget)."""


def exit_code(view: WorkflowView) -> int:
    """Return the exit status for a followed workflow: 0 only when it succeeded."""
    return EXIT_CODES.get(view.state, 1)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _done(view: WorkflowView) -> int:
    return sum(1 for s in view.steps if s.state in ("succeeded", "skipped"))


def format_view(view: WorkflowView) -> str:
    """Return a one-line summary: id, state, steps done, current step, ETA."""
    parts = [view.workflow_id, view.state]
    if view.attempt > 1:
        parts.append(f"attempt {view.attempt}")
    if view.steps:
        parts.append(f"{_done(view)}/{len(view.steps)} steps")
    parts.append(f"{view.progress * 100:.0f}%")
    if view.current_step:
        parts.append(f"step {view.current_step}")
    if view.state not in TERMINAL_STATES and view.eta_s is not None:
        parts.append(f"eta {_duration(view.eta_s)}")
    if view.state == "retrying" and view.next_attempt_at is not None:
        # The delivery number tells one retry from the next, so watch prints each.
        delay = max(0.0, view.next_attempt_at - view.updated_at)
        parts.append(f"retry after delivery {view.round}, next attempt in {delay:.1f}s")
    if view.reason:
        parts.append(f"({view.reason})")
    return " ".join(parts)


def honest_progress(view: WorkflowView) -> str:
    """Return progress for a listing: a percentage while running, succeeded steps once ended."""
    if view.state == "succeeded" or view.state not in TERMINAL_STATES:
        return f"{view.progress * 100:.0f}%"
    ok = sum(1 for s in view.steps if s.state == "succeeded")
    return f"{ok}/{len(view.steps)} ok"


def step_line(view: WorkflowView, step: StepView) -> str:
    """Return one line for a step: its state, progress, cache use, exit code, time, reason."""
    extra = []
    if step.state in ("running", "retrying") and step.percent is not None:
        extra.append(f"{step.percent:.0f}%")
    if step.cache_hit:
        extra.append("cached")
    if step.exit_code is not None:
        extra.append(f"exit {step.exit_code}")
    if step.duration_s is not None:
        extra.append(_duration(step.duration_s))
    if step.reason:
        extra.append(f"({step.reason})")
    tail = (" " + " ".join(extra)) if extra else ""
    return f"{view.workflow_id} step {step.name} {step.state}{tail}"


class _PlainDisplay:
    """Line-by-line updates for pipes and files: a line per change, no control codes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._summary = ""
        self._steps: dict[str, str] = {}

    def __enter__(self) -> _PlainDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.out.flush()

    def show(self, view: WorkflowView) -> None:
        for step in view.steps:
            line = step_line(view, step)
            if step.state != "pending" and self._steps.get(step.name) != line:
                self._steps[step.name] = line
                print(line, file=self.out)
        summary = format_view(view)
        if summary != self._summary:
            self._summary = summary
            print(summary, file=self.out)
        self.out.flush()


class _LiveDisplay:
    """A live ``rich`` panel: workflow state, progress bar and a table of steps."""

    _STYLE: ClassVar[dict[str, str]] = {
        "succeeded": "green",
        "skipped": "dim",
        "failed": "red",
        "timed_out": "red",
        "cancelled": "yellow",
        "rejected": "red",
        "running": "cyan",
        "retrying": "magenta",
    }

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=out)
        self._live = Live(console=self._console, refresh_per_second=8, transient=False)

    def __enter__(self) -> _LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.__exit__(None, None, None)

    def show(self, view: WorkflowView) -> None:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        header = Text.assemble(
            (view.workflow_id, "bold"),
            "  ",
            (view.state, self._STYLE.get(view.state, "")),
            f"  {view.template or ''}",
            f"  eta {_duration(view.eta_s)}"
            if view.eta_s is not None and view.state not in TERMINAL_STATES
            else "",
        )
        table = Table(box=None, pad_edge=False)
        for column in ("step", "state", "progress", "detail"):
            table.add_column(column)
        for step in view.steps:
            percent = f"{step.percent:.0f}%" if step.percent is not None else ""
            detail = " ".join(
                x
                for x in (
                    "cached" if step.cache_hit else "",
                    f"exit {step.exit_code}" if step.exit_code is not None else "",
                    step.reason,
                )
                if x
            )
            table.add_row(
                step.name, Text(step.state, self._STYLE.get(step.state, "")), percent, detail
            )
        bar = ProgressBar(total=100, completed=view.progress * 100, width=40)
        parts: list[Any] = [header, bar, table]
        if view.reason:
            parts.append(Text(view.reason, "italic"))
        self._live.update(Group(*parts), refresh=True)


def _newer(candidate: WorkflowView, latest: WorkflowView | None) -> bool:
    # Every committed write bumps ``events``: the higher count is the later view.
    return (
        latest is None
        or candidate.events > latest.events
        or (candidate.events == latest.events and candidate.eta_s != latest.eta_s)
    )


async def follow(
    bus: Bus,
    workflow_id: str,
    *,
    out: TextIO | None = None,
    timeout: float | None = None,
    must_exist: bool = False,
) -> WorkflowView:
    """Follow a workflow until it is terminal, displaying each change; return the final view.

    Views pushed on ``troupe.status.updates.<id>`` drive the display; a query
    every second covers updates missed while the tracker restarted. A
    workflow not known yet is waited for (it may still be in the task queue)
    unless ``must_exist`` is set. The status tracker must answer the first
    query; later it may be away for a while (a restart).

    Args:
        bus: a connected bus.
        workflow_id: the workflow to follow.
        out: where to draw (default ``sys.stdout``); a live display when it is a
            terminal, plain lines otherwise.
        timeout: give up after this many seconds (default: wait for ever).
        must_exist: raise :class:`NotFound` at once when the tracker does not
            know the workflow (``troupe watch``), rather than wait for it
            (``troupe submit --wait``, which has just sent it).

    Returns:
        The workflow's terminal view.

    Raises:
        TimeoutError: not terminal within ``timeout`` seconds.
        BadRequest: the id cannot name a workflow.
        NotFound: ``must_exist`` is set and the tracker does not know the workflow.
        Unavailable: the status tracker did not answer the first query.
    """
    out = out if out is not None else sys.stdout
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    interactive = out.isatty()
    display: _LiveDisplay | _PlainDisplay = _LiveDisplay(out) if interactive else _PlainDisplay(out)
    latest: WorkflowView | None = None
    answered = False

    def show(view: WorkflowView) -> None:
        nonlocal latest
        if _newer(view, latest):
            latest = view
            display.show(view)

    async with watch_workflow(bus, workflow_id) as updates:
        with display:
            next_poll = loop.time()
            while latest is None or latest.state not in TERMINAL_STATES:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"{workflow_id} not finished within {timeout}s")
                if now >= next_poll:
                    next_poll = now + _POLL_S
                    try:
                        polled = await get_workflow(bus, workflow_id)
                    except NotFound:
                        if must_exist and latest is None:
                            raise
                        answered = True
                    except Unavailable:
                        if not answered:
                            raise
                    else:
                        answered = True
                        show(polled)
                        continue
                wait = next_poll - loop.time()
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                try:
                    view = await asyncio.wait_for(updates.get(), max(0.0, wait))
                except TimeoutError:
                    continue
                show(view)
    assert latest is not None
    return latest
