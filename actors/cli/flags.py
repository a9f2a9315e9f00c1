"""``troupe flags``: list, show, set and remove feature flags (live: actors watch them).

* ``troupe flags`` (or ``troupe flags ls``) - every flag;
* ``troupe flags get NAME`` - one flag;
* ``troupe flags set NAME [--rollout P] [--on V] [--off V] [--enable|--disable]
  [--template T ...] [--label K=V ...] [--description TEXT]`` - create or change a
  flag; options not given keep their current value;
* ``troupe flags rm NAME`` - remove it.

The Dagger rollout: ``troupe flags set runner.backend --on dagger --off local
--rollout 10`` sends 10 % of pipelines that name no backend to Dagger;
``--rollout 0`` is the rollback. Every change is stored with who made it and
published as an audit event.

Exit codes: 0 done, 1 no such flag or refused, 2 bad arguments, 69 NATS did not answer.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

import msgspec

from actors.cli.columns import columns
from actors.cli.options import EXIT_USAGE, add_connection_options, run_client
from actors.feature_flags.client import FlagStore
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.flags import Flag

__all__ = ["apply_changes", "format_table", "register"]

_WRITES = ("set", "rm")


def format_table(flags: list[Flag]) -> str:
    """Render flags as a plain-text table."""
    if not flags:
        return "no flags"
    rows = [("NAME", "ENABLED", "ROLLOUT", "ON", "OFF", "TARGETS", "UPDATED BY")]
    for f in flags:
        targets = [*(f"template={t}" for t in f.templates)]
        targets += [f"{k}={v}" for k, v in sorted(f.labels.items())]
        rows.append(
            (
                f.name,
                "yes" if f.enabled else "no",
                f"{f.rollout:g}%",
                f.on,
                f.off,
                ",".join(targets) or "all",
                f.updated_by,
            )
        )
    return columns(rows)


def apply_changes(current: Flag | None, name: str, changes: dict[str, Any]) -> Flag:
    """Return ``current`` (or a new flag named ``name``) with ``changes`` applied and checked.

    Raises:
        msgspec.ValidationError: a value is out of range (rollout, name).
    """
    base: dict[str, Any] = msgspec.to_builtins(current or Flag(name=name))
    base.update({k: v for k, v in changes.items() if v is not None})
    return msgspec.convert(base, Flag)


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    labels: dict[str, str] | None = None
    if args.label:
        labels = {}
        for pair in args.label:
            key, sep, val = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"--label {pair!r} is not KEY=VALUE")
            labels[key] = val
    return {
        "rollout": args.rollout,
        "on": args.on,
        "off": args.off,
        "enabled": args.enabled,
        "templates": args.template,
        "labels": labels,
        "description": args.description,
    }


async def _call(args: argparse.Namespace, bus: Bus) -> tuple[int, Any]:
    store = await FlagStore.bind(bus)
    who = getpass.getuser()
    if args.action in (None, "ls"):
        return 0, await store.list()
    found = await store.get(args.name)
    if args.action == "get":
        return (0, found) if found is not None else (1, f"no flag {args.name}")
    if args.action == "rm":
        removed = await store.remove(args.name, by=who, at=time.time())
        return (0, f"removed {args.name}") if removed else (1, f"no flag {args.name}")
    flag = apply_changes(found, args.name, _changes(args))
    return 0, await store.set(flag, by=who, at=time.time())


def _run(args: argparse.Namespace) -> int:
    if args.action in ("get", "set", "rm") and not args.name:
        print(f"troupe flags {args.action}: a NAME is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "set":
            apply_changes(None, args.name, _changes(args))
    except (ValueError, msgspec.ValidationError) as exc:
        print(f"troupe flags set: {exc}", file=sys.stderr)
        return EXIT_USAGE
    role = "operator" if args.action in _WRITES else "client"
    try:
        code, answer = run_client(
            args, lambda bus: _call(args, bus), name="troupe-cli-flags", role=role
        )
    except TroupeError as exc:
        print(f"troupe flags: {exc}", file=sys.stderr)
        return 1
    if isinstance(answer, str):
        print(answer, file=sys.stderr if code else sys.stdout)
    elif args.json:
        print(json.dumps(msgspec.to_builtins(answer), indent=2))
    elif isinstance(answer, list):
        print(format_table(answer))
    else:
        print(format_table([answer]))
    return code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``flags``."""
    p = sub.add_parser(
        "flags",
        help="feature flags: ls, get, set, rm (actors pick changes up at once)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", nargs="?", choices=["ls", "get", "set", "rm"], help="default: ls")
    p.add_argument("name", nargs="?", help="flag name, e.g. runner.backend")
    p.add_argument("--rollout", type=float, metavar="PERCENT", help="share of workflows, 0-100")
    p.add_argument("--on", metavar="VALUE", help="value where the flag applies (e.g. dagger)")
    p.add_argument("--off", metavar="VALUE", help="value elsewhere (e.g. local)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument(
        "--template", action="append", metavar="NAME", help="only this template (repeatable)"
    )
    p.add_argument(
        "--label", action="append", metavar="KEY=VALUE", help="only with this label (repeatable)"
    )
    p.add_argument("--description", metavar="TEXT", help="what the flag is for")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(handler=_run, enabled=None)
