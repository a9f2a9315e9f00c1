"""``troupe agents`` and ``troupe agents find CAPABILITY``: who is in the troupe.

Both ask the agent registry (``troupe.agents.list`` / ``troupe.agents.find``)
and print a table: id, capabilities, load, age of the last heartbeat, state.
``--json`` prints the registry's answer as JSON instead.

Exit codes: 0 answered (even with no agent), 1 nothing matched ``find``,
2 the registry is unreachable or the query is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TextIO

import msgspec

from actors.cli.options import add_connection_options, connection_config
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.agents import (
    FIND_SUBJECT,
    LIST_SUBJECT,
    AgentList,
    AgentView,
    FindAgents,
    ListAgents,
)

__all__ = ["format_table", "register"]

EXIT_NO_MATCH = 1
EXIT_UNREACHABLE = 2

_SHARED = frozenset({"json", "timeout", "nats_url", "user", "password", "token", "creds"})
_COLUMNS = ("ID", "CAPABILITIES", "LOAD", "LAST HEARTBEAT", "STATE")


def _row(view: AgentView) -> tuple[str, ...]:
    info = view.info
    caps = ",".join(f"{c.name}@{c.version}" for c in info.capabilities) or "-"
    return (
        info.agent_id,
        caps,
        f"{info.load}/{info.capacity}",
        f"{view.last_seen_s:.1f}s ago",
        view.presence,
    )


def format_table(views: list[AgentView]) -> str:
    """Return ``views`` as an aligned text table (header included)."""
    rows = [_COLUMNS, *(_row(v) for v in views)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def _labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"label {item!r} is not KEY=VALUE")
        labels[key] = value
    return labels


async def _query(args: argparse.Namespace) -> AgentList:
    request: FindAgents | ListAgents
    if args.agents_command == "find":
        request = FindAgents(
            capability=args.capability,
            min_version=args.min_version,
            labels=_labels(args.label),
            limit=args.limit,
            include_suspect=args.include_suspect,
        )
        subject = FIND_SUBJECT
    else:
        request = ListAgents()
        subject = LIST_SUBJECT
    bus = await Bus.connect(connection_config(args))
    async with bus:
        return await bus.request(subject, request, AgentList, timeout=args.timeout)


def _run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        found = asyncio.run(_query(args))
    except (TroupeError, msgspec.ValidationError, argparse.ArgumentTypeError) as exc:
        print(f"troupe agents: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(msgspec.to_builtins(found), indent=2), file=out)
    elif found.agents:
        print(format_table(found.agents), file=out)
    else:
        print(
            "no agents"
            if args.agents_command != "find"
            else f"no live agent offers {args.capability}",
            file=out,
        )
    if args.agents_command == "find" and not found.agents:
        return EXIT_NO_MATCH
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agents`` and ``agents find``."""
    p = sub.add_parser(
        "agents",
        help="list the agents in the troupe, or find those offering a capability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the registry (default 5)",
    )
    add_connection_options(p)
    p.set_defaults(handler=_run, agents_command="list")
    commands = p.add_subparsers(dest="agents_command", metavar="COMMAND")
    find = commands.add_parser(
        "find",
        help="live agents offering CAPABILITY, least-loaded first",
        description="Live agents offering CAPABILITY at MIN_VERSION or above, least-loaded first.",
    )
    find.add_argument("capability", metavar="CAPABILITY")
    find.add_argument("--min-version", default="0", help="lowest capability version, e.g. 1.2")
    find.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="required label (repeatable)",
    )
    find.add_argument("--limit", type=int, default=100, help="most agents shown (default 100)")
    find.add_argument(
        "--include-suspect", action="store_true", help="also agents that missed a heartbeat"
    )
    find.add_argument("--json", action="store_true", help="print JSON instead of a table")
    find.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the registry (default 5)",
    )
    add_connection_options(find)
    # Options shared with ``agents`` may come before or after ``find``; absent after it,
    # they must not override what was given before.
    for action in find._actions:
        if action.dest in _SHARED:
            action.default = argparse.SUPPRESS
    find.set_defaults(handler=_run)
