"""``troupe status``, ``troupe ls`` and ``troupe watch``: where a workflow is, and following it.

Following is :func:`actors.cli.follow.follow`, which ``troupe submit --wait``
and ``troupe demo`` use too.

Exit codes: 0 succeeded, 1 failed, 2 not found, 3 cancelled, 4 timed out,
5 rejected, 69 NATS or the status tracker did not answer, 124 the watch itself
timed out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import msgspec

from actors.cli.follow import exit_code, follow, format_view, honest_progress, step_line
from actors.cli.options import (
    CLIENT_EXIT_CODES,
    EXIT_USAGE,
    add_connection_options,
    run_client,
)
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound, TroupeError
from actors.status_tracker.client import get_workflow, list_workflows
from protocols.status import WORKFLOW_STATES, ListWorkflows, WorkflowView

__all__ = ["EXIT_WATCH_TIMEOUT", "register"]

EXIT_NOT_FOUND = EXIT_USAGE
EXIT_WATCH_TIMEOUT = 124

Handler = Callable[[argparse.Namespace], int]


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_view(view: WorkflowView, out: TextIO) -> None:
    print(format_view(view), file=out)
    print(f"  template  {view.template or '-'}", file=out)
    if view.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items()))
        print(f"  labels    {labels}", file=out)
    print(f"  created   {_ago(view.created_at)}", file=out)
    print(f"  updated   {_ago(view.updated_at)}", file=out)
    if view.finished_at is not None:
        print(f"  finished  {_ago(view.finished_at)}", file=out)
    if view.deadline is not None:
        print(f"  deadline  {_ago(view.deadline)}", file=out)
    if view.trace_id:
        print(f"  trace     {view.trace_id}", file=out)
    for step in view.steps:
        print("  " + step_line(view, step).removeprefix(view.workflow_id + " "), file=out)
    for item in view.messages[-5:]:
        print(f"  message   {item.get('step')}: {json.dumps(item.get('message'))}", file=out)


async def _status(args: argparse.Namespace, bus: Bus) -> int:
    try:
        view = await get_workflow(bus, args.id)
    except (NotFound, BadRequest) as exc:
        print(f"troupe status: {exc.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(msgspec.json.encode(view).decode())
    else:
        _print_view(view, sys.stdout)
    return 0


async def _ls(args: argparse.Namespace, bus: Bus) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    request = ListWorkflows(
        states=args.state or [],
        template=args.template,
        labels=labels,
        limit=args.limit,
        cursor=args.cursor,
    )
    page = await list_workflows(bus, request)
    if args.json:
        print(msgspec.json.encode(page).decode())
        return 0
    if page.items:
        print(f"{'ID':<36} {'STATE':<10} {'TEMPLATE':<20} {'PROGRESS':>8}  CREATED")
    for view in page.items:
        print(
            f"{view.workflow_id:<36} {view.state:<10} {view.template or '-':<20} "
            f"{honest_progress(view):>8}  {_ago(view.created_at)}"
        )
    if not page.items:
        print("no workflows", file=sys.stderr)
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    return 0


async def _watch(args: argparse.Namespace, bus: Bus) -> int:
    try:
        view = await follow(bus, args.id, timeout=args.timeout, must_exist=True)
    except TimeoutError as exc:
        print(f"troupe watch: {exc}", file=sys.stderr)
        return EXIT_WATCH_TIMEOUT
    except (NotFound, BadRequest) as exc:
        print(f"troupe watch: {exc.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return exit_code(view)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return value


def _runner(command: Callable[[argparse.Namespace, Bus], Awaitable[int]]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return run_client(args, lambda bus: command(args, bus))
        except TroupeError as exc:
            print(f"troupe {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status``, ``ls`` and ``watch``."""
    p = sub.add_parser(
        "status",
        help="show where a workflow is: state, steps, progress, ETA",
        description="Show one workflow's state, steps, progress, ETA and trace id.",
        epilog=f"Exit codes: 0 shown; 1 other error; {CLIENT_EXIT_CODES}.",
    )
    p.add_argument("id", help="workflow id (printed by 'troupe submit', listed by 'troupe ls')")
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_runner(_status))

    p = sub.add_parser(
        "ls",
        help="list workflows, newest first",
        description="List workflows newest first, filtered by state and template: "
        "id, state, template, progress and creation time, one a line.",
        epilog=f"Exit codes: 0 listed (even none); 1 other error; {CLIENT_EXIT_CODES}.",
    )
    p.add_argument(
        "--state",
        action="append",
        choices=WORKFLOW_STATES,
        help="only this state (repeatable)",
    )
    p.add_argument("--template", help="only this template")
    p.add_argument(
        "--label",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="only workflows with this label (repeatable: all must match)",
    )
    p.add_argument(
        "--limit",
        type=_limit,
        default=20,
        metavar="N",
        help="at most N workflows, 1-1000 (default 20)",
    )
    p.add_argument("--cursor", help="continue a previous listing (printed when there are more)")
    p.add_argument("--json", action="store_true", help="print the page as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_runner(_ls))

    p = sub.add_parser(
        "watch",
        help="follow a workflow live until it finishes (exit 0 only on success)",
        description=(
            "Follow a workflow until it finishes: a live display on a terminal, plain "
            "lines otherwise. A workflow the status tracker does not know exits 2 at once."
        ),
        epilog=(
            "Exit codes: 0 succeeded, 1 failed, 3 cancelled, 4 timed out, 5 rejected, "
            f"124 --timeout reached; {CLIENT_EXIT_CODES}."
        ),
    )
    p.add_argument("id", help="workflow id")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up after SECONDS (exit 124; default: wait until it finishes)",
    )
    add_connection_options(p)
    p.set_defaults(handler=_runner(_watch))
