"""``troupe schedule``: recurring and one-shot workflows, fired by NATS itself.

* ``troupe schedule add NAME (--cron EXPR | --every INTERVAL | --at TIME) TEMPLATE
  [--param NAME=VALUE ...] [--time-zone ZONE]`` - create or replace a schedule;
* ``troupe schedule ls`` - every schedule;
* ``troupe schedule pause NAME`` / ``resume NAME`` - stop and restart firing;
* ``troupe schedule rm NAME`` - remove it;
* ``troupe schedule run-now NAME`` - submit one workflow of it at once.

Cron expressions have six fields, seconds first (``0 */5 * * * *``: every five
minutes). Each firing submits a workflow whose id is derived from the schedule
and the firing time (``sched-NAME-20260102T030405Z``), so a firing never runs
twice. Firings missed while the troupe's actors are down coalesce: at most one
per schedule waits and runs when they are back.

Exit codes: 0 done, 1 no such schedule or refused, 2 bad arguments, 69 NATS did not answer.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import msgspec

from actors.cli.columns import columns
from actors.cli.options import EXIT_USAGE, add_connection_options, run_client
from actors.cli.tasks import parse_params
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from actors.schedules.client import ScheduleError, ScheduleStore, schedule_expression
from protocols.schedules import Schedule

__all__ = ["format_table", "register"]

_ACTIONS = ("add", "ls", "pause", "resume", "rm", "run-now")


def format_table(schedules: list[Schedule]) -> str:
    """Render schedules as a plain-text table."""
    if not schedules:
        return "no schedules"
    rows = [("NAME", "WHEN", "TEMPLATE", "STATE", "PARAMS")]
    for s in schedules:
        params = ",".join(f"{k}={v}" for k, v in sorted(s.params.items()))
        when = f"{s.expression} ({s.time_zone})" if s.time_zone else s.expression
        rows.append((s.name, when, s.template, "paused" if s.paused else "active", params))
    return columns(rows)


def _schedule(args: argparse.Namespace) -> Schedule:
    if not args.name or not args.template:
        raise ScheduleError("add needs NAME and TEMPLATE")
    expression = schedule_expression(cron=args.cron, every=args.every, at=args.at)
    try:
        return msgspec.convert(
            {
                "name": args.name,
                "expression": expression,
                "template": args.template,
                "params": parse_params(args.p),
                "time_zone": args.time_zone or "",
            },
            Schedule,
        )
    except msgspec.ValidationError as exc:
        raise ScheduleError(str(exc)) from None


async def _call(args: argparse.Namespace, bus: Bus, schedule: Schedule | None) -> Any:
    store = await ScheduleStore.bind(bus)
    who = getpass.getuser()
    if schedule is not None:
        return await store.add(schedule, by=who)
    if args.action in (None, "ls"):
        return await store.list()
    if args.action == "pause":
        return await store.pause(args.name, by=who)
    if args.action == "resume":
        return await store.resume(args.name, by=who)
    if args.action == "rm":
        await store.remove(args.name)
        return f"removed {args.name}"
    return f"submitted {await store.run_now(args.name)}"


def _run(args: argparse.Namespace) -> int:
    schedule: Schedule | None = None
    try:
        if args.action == "add":
            schedule = _schedule(args)
        elif args.action not in (None, "ls") and not args.name:
            raise ScheduleError(f"{args.action} needs a NAME")
    except (ScheduleError, ValueError) as exc:
        print(f"troupe schedule: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Changing schedules is an operator action; listing and run-now are a client's.
    role = "client" if args.action in (None, "ls", "run-now") else "operator"
    try:
        answer = run_client(
            args, lambda bus: _call(args, bus, schedule), name="troupe-cli-schedule", role=role
        )
    except TroupeError as exc:
        print(f"troupe schedule: {exc}", file=sys.stderr)
        return 1
    if isinstance(answer, str):
        print(answer)
    elif args.json:
        print(json.dumps(msgspec.to_builtins(answer), indent=2))
    else:
        print(format_table(answer if isinstance(answer, list) else [answer]))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schedule``."""
    p = sub.add_parser(
        "schedule",
        help="recurring and one-shot workflows: add, ls, pause, resume, rm, run-now",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", nargs="?", choices=_ACTIONS, help="default: ls")
    p.add_argument("name", nargs="?", help="schedule name")
    p.add_argument("template", nargs="?", help="template each firing submits (add)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="six-field cron expression, seconds first")
    when.add_argument("--every", metavar="INTERVAL", help="interval such as 10m, 2s or 1h30m")
    when.add_argument("--at", metavar="TIME", help="one firing at this ISO 8601 time (UTC)")
    p.add_argument(
        "--param",
        "-p",
        dest="p",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="template parameter (repeatable)",
    )
    p.add_argument("--time-zone", metavar="ZONE", help="IANA time zone of --cron (default UTC)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(handler=_run)
