"""``troupe breakers``: list circuit breakers and control them by hand.

* ``troupe breakers`` (or ``troupe breakers list [PREFIX]``) - every breaker's state;
* ``troupe breakers open KEY`` - force it open until reset;
* ``troupe breakers reset KEY`` - back to closed, window cleared;
* ``troupe breakers disable KEY`` - let everything through, record nothing.

Exit codes: 0 done, 1 refused, 2 bad arguments, 69 NATS or the breaker
supervisor did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import msgspec

from actors.breaker_supervisor.client import control_breaker, list_breakers
from actors.cli.columns import columns
from actors.cli.options import EXIT_USAGE, add_connection_options, run_client
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.breakers import BreakerList, BreakerStatus, ControlAction

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
    return columns(rows)


async def _call(args: argparse.Namespace, bus: Bus) -> BreakerList:
    if args.action in (None, "list"):
        return await list_breakers(bus, args.key or "")
    return await control_breaker(bus, args.key, _ACTIONS[args.action])


def _run(args: argparse.Namespace) -> int:
    if args.action in _ACTIONS and not args.key:
        print(f"troupe breakers {args.action}: a KEY is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Forcing, resetting or disabling a breaker is an operator action.
        role = "operator" if args.action in _ACTIONS else "client"
        answer = run_client(
            args, lambda bus: _call(args, bus), name="troupe-cli-breakers", role=role
        )
    except TroupeError as exc:
        print(f"troupe breakers: {exc}", file=sys.stderr)
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
