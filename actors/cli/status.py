"""``troupe status``, ``troupe ls`` and ``troupe watch``: where a workflow is, and following it.

:func:`follow` is the reusable part: ``troupe submit --wait`` and ``troupe demo``
call it too. It draws a live ``rich`` display on a terminal and prints plain
line-by-line updates otherwise, and returns the final view;
:func:`exit_code` turns that view into the command's exit status.

Exit codes: 0 succeeded, 1 failed, 2 not found or unreachable, 3 cancelled,
4 timed out, 5 rejected, 124 the watch itself timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import sys
from typing import Any, ClassVar, TextIO

import msgspec
from nats.aio.msg import Msg

from actors.cli.options import add_connection_options, connection_config
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest, NotFound, TroupeError, Unavailable
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    TERMINAL_STATES,
    WORKFLOW_STATES,
    GetWorkflow,
    ListWorkflows,
    StepView,
    WorkflowList,
    WorkflowView,
    update_subject,
)

__all__ = ["EXIT_CODES", "exit_code", "follow", "format_view", "register"]

EXIT_CODES: dict[str, int] = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 3,
    "timed_out": 4,
    "rejected": 5,
}
"""Exit status of ``watch`` / ``submit --wait`` by final state."""

EXIT_NOT_FOUND = 2
EXIT_WATCH_TIMEOUT = 124

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
    if view.reason:
        parts.append(f"({view.reason})")
    return " ".join(parts)


def _step_line(view: WorkflowView, step: StepView) -> str:
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
            line = _step_line(view, step)
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
    bus: Bus, workflow_id: str, *, out: TextIO | None = None, timeout: float | None = None
) -> WorkflowView:
    """Follow a workflow until it is terminal, displaying each change; return the final view.

    Views pushed on ``troupe.status.updates.<id>`` drive the display; a query
    every second covers updates missed while the tracker restarted. A
    workflow not known yet is waited for (it may still be in the task queue).

    Args:
        bus: a connected bus.
        workflow_id: the workflow to follow.
        out: where to draw (default ``sys.stdout``); a live display when it is a
            terminal, plain lines otherwise.
        timeout: give up after this many seconds (default: wait for ever).

    Returns:
        The workflow's terminal view.

    Raises:
        TimeoutError: not terminal within ``timeout`` seconds.
        BadRequest: the id cannot name a workflow.
    """
    out = out if out is not None else sys.stdout
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    updates: asyncio.Queue[WorkflowView] = asyncio.Queue()
    codec: Codec[WorkflowView] = Codec.of(WorkflowView)

    async def on_update(msg: Msg) -> None:
        with contextlib.suppress(BadRequest):
            updates.put_nowait(codec.decode(msg.data, encoding_of(msg.headers)))

    interactive = out.isatty()
    display: _LiveDisplay | _PlainDisplay = _LiveDisplay(out) if interactive else _PlainDisplay(out)
    sub = await bus.nc.subscribe(update_subject(workflow_id), cb=on_update)
    latest: WorkflowView | None = None
    try:
        with display:
            next_poll = loop.time()
            while latest is None or latest.state not in TERMINAL_STATES:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"{workflow_id} not finished within {timeout}s")
                if now >= next_poll:
                    next_poll = now + _POLL_S
                    try:
                        view = await bus.request(
                            GET_SUBJECT, GetWorkflow(workflow_id=workflow_id), WorkflowView
                        )
                    except (NotFound, Unavailable):
                        pass
                    else:
                        updates.put_nowait(view)
                wait = next_poll - loop.time()
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                try:
                    view = await asyncio.wait_for(updates.get(), max(0.0, wait))
                except TimeoutError:
                    continue
                if _newer(view, latest):
                    latest = view
                    display.show(view)
    finally:
        await sub.unsubscribe()
    assert latest is not None
    return latest


# -- commands --------------------------------------------------------------------------


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_view(view: WorkflowView, out: TextIO) -> None:
    print(format_view(view), file=out)
    print(f"  template  {view.template or '-'}", file=out)
    print(f"  created   {_ago(view.created_at)}", file=out)
    print(f"  updated   {_ago(view.updated_at)}", file=out)
    if view.finished_at is not None:
        print(f"  finished  {_ago(view.finished_at)}", file=out)
    if view.deadline is not None:
        print(f"  deadline  {_ago(view.deadline)}", file=out)
    if view.trace_id:
        print(f"  trace     {view.trace_id}", file=out)
    for step in view.steps:
        print("  " + _step_line(view, step).removeprefix(view.workflow_id + " "), file=out)
    for item in view.messages[-5:]:
        print(f"  message   {item.get('step')}: {json.dumps(item.get('message'))}", file=out)


async def _status(args: argparse.Namespace) -> int:
    async with await Bus.connect(connection_config(args)) as bus:
        try:
            view = await bus.request(GET_SUBJECT, GetWorkflow(workflow_id=args.id), WorkflowView)
        except (NotFound, BadRequest) as exc:
            print(f"troupe status: {exc.message}", file=sys.stderr)
            return EXIT_NOT_FOUND
    if args.json:
        print(msgspec.json.encode(view).decode())
    else:
        _print_view(view, sys.stdout)
    return 0


async def _ls(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        print("troupe ls: --limit must be between 1 and 1000", file=sys.stderr)
        return EXIT_NOT_FOUND
    request = ListWorkflows(
        states=args.state or [], template=args.template, limit=args.limit, cursor=args.cursor
    )
    async with await Bus.connect(connection_config(args)) as bus:
        page = await bus.request(LIST_SUBJECT, request, WorkflowList)
    if args.json:
        print(msgspec.json.encode(page).decode())
        return 0
    for view in page.items:
        print(
            f"{view.workflow_id:<36} {view.state:<10} {view.template or '-':<20} "
            f"{view.progress * 100:>4.0f}%  {_ago(view.created_at)}"
        )
    if not page.items:
        print("no workflows", file=sys.stderr)
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    return 0


async def _watch(args: argparse.Namespace) -> int:
    async with await Bus.connect(connection_config(args)) as bus:
        try:
            view = await follow(bus, args.id, timeout=args.timeout)
        except TimeoutError as exc:
            print(f"troupe watch: {exc}", file=sys.stderr)
            return EXIT_WATCH_TIMEOUT
        except BadRequest as exc:
            print(f"troupe watch: {exc.message}", file=sys.stderr)
            return EXIT_NOT_FOUND
    return exit_code(view)


def _runner(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = asyncio.run(command(args))
        except TroupeError as exc:
            print(f"troupe {args.command}: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        return code

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status``, ``ls`` and ``watch``."""
    p = sub.add_parser(
        "status",
        help="show where a workflow is: state, steps, progress, ETA",
        description="Show one workflow's state, steps, progress and ETA (exit 2 if unknown).",
    )
    p.add_argument("id", help="workflow id")
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_runner(_status))

    p = sub.add_parser(
        "ls",
        help="list workflows, newest first",
        description="List workflows newest first, filtered by state and template.",
    )
    p.add_argument(
        "--state",
        action="append",
        choices=WORKFLOW_STATES,
        help="only this state (repeatable)",
    )
    p.add_argument("--template", help="only this template")
    p.add_argument("--limit", type=int, default=20, help="at most N workflows (default 20)")
    p.add_argument("--cursor", help="continue a previous listing")
    p.add_argument("--json", action="store_true", help="print the page as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_runner(_ls))

    p = sub.add_parser(
        "watch",
        help="follow a workflow live until it finishes (exit 0 only on success)",
        description=(
            "Follow a workflow until it finishes: a live display on a terminal, plain "
            "lines otherwise. Exit codes: 0 succeeded, 1 failed, 2 not found, "
            "3 cancelled, 4 timed out, 5 rejected, 124 --timeout reached."
        ),
    )
    p.add_argument("id", help="workflow id")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up after SECONDS (exit 124)",
    )
    add_connection_options(p)
    p.set_defaults(handler=_runner(_watch))
