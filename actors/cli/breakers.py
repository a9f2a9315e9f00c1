"""``troupe breakers``: list circuit breakers and control them by hand.

* ``troupe breakers`` (or ``troupe breakers list [PREFIX]``) - every breaker's state;
* ``troupe breakers open KEY`` - force it open until reset;
* ``troupe breakers reset KEY`` - back to closed, window cleared;
* ``troupe breakers disable KEY`` - let everything through, record nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import msgspec

from actors.cli.options import add_connection_options, connection_config
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.breakers import (
    CONTROL_SUBJECT,
    LIST_SUBJECT,
    BreakerControl,
    BreakerList,
    BreakerStatus,
    ControlAction,
    ListBreakers,
)

__all__ = ["format_table", "register"]

_ACTIONS: dict[str, ControlAction] = {"open": "force_open", "reset": "reset", "disable": "disable"}


def format_table(items: list[BreakerStatus], now: float) -> str:
    """Render breakers as a plain-text table."""
    if not items:
        return "no breakers yet"
    rows = [("KEY", "STATE", "CALLS", "FAILURES", "SLOW", "OPENED", "HALF-OPENS IN")]
    for s in items:
        wait = (
            f"{max(0.0, s.open_until - now):.1f}s"
            if s.state == "open" and s.open_until is not None
            else ""
        )
        rows.append(
            (
                s.key,
                s.state,
                str(s.calls),
                f"{s.failure_rate:.0%}",
                f"{s.slow_rate:.0%}",
                str(s.opened_count),
                wait,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def _call(args: argparse.Namespace) -> BreakerList:
    bus = await Bus.connect(connection_config(args, name="troupe-cli-breakers"))
    try:
        if args.action in (None, "list"):
            return await bus.request(LIST_SUBJECT, ListBreakers(prefix=args.key or ""), BreakerList)
        return await bus.request(
            CONTROL_SUBJECT, BreakerControl(key=args.key, action=_ACTIONS[args.action]), BreakerList
        )
    finally:
        await bus.close()


def _run(args: argparse.Namespace) -> int:
    if args.action in _ACTIONS and not args.key:
        print(f"troupe breakers {args.action}: a KEY is required")
        return 2
    try:
        answer = asyncio.run(_call(args))
    except TroupeError as exc:
        print(f"troupe breakers: {exc}")
        return 1
    if args.json:
        print(json.dumps(msgspec.to_builtins(answer.items), indent=2))
    else:
        print(format_table(answer.items, time.time()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``breakers``."""
    p = sub.add_parser(
        "breakers",
        help="list circuit breakers; open, reset or disable one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action", nargs="?", choices=["list", *_ACTIONS], help="what to do (default: list)"
    )
    p.add_argument("key", nargs="?", help="breaker key (a key prefix for 'list')")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(handler=_run)
