"""``troupe cache ls|stats|clear``: what the shared step cache holds, and removing it.

``ls`` and ``stats`` read the shared tier (the step-cache KV bucket) as
``operator``; each runner's in-process tier is a copy of part of it. ``clear``
asks a pipeline runner (only runners may delete from the bucket) to remove
everything, one entry (``KEY``: its key or an unambiguous prefix, as ``ls``
shows it) or the entries stored by one template's workflows (``--template``);
every runner drops the same entries from its own tier. An unknown or ambiguous
key removes nothing and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from actors.cli.columns import columns
from actors.cli.options import (
    CLIENT_EXIT_CODES,
    EXIT_USAGE,
    add_connection_options,
    run_client,
)
from actors.pipeline_runner.client import CacheEntry, clear_cache, list_cache
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound, TroupeError
from protocols.pipelines import CacheCleared

__all__ = ["add_cache_commands", "format_cleared", "format_stats", "format_table"]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def format_table(entries: list[CacheEntry], now: float) -> str:
    """Render cache entries (oldest first) as a plain-text table."""
    if not entries:
        return "the step cache is empty"
    rows = [("KEY", "STEP", "TEMPLATE", "SIZE", "ARTIFACTS", "AGE")]
    for e in entries:
        age = _age(max(0.0, now - e.stored_at))
        rows.append((e.key[:16], e.step, e.template or "-", str(e.size), str(e.artifacts), age))
    return columns(rows)


def format_stats(entries: list[CacheEntry], now: float) -> str:
    """Render the number of entries, their bytes, steps and ages."""
    lines = [
        f"entries: {len(entries)}",
        f"bytes: {sum(e.size for e in entries)}",
        f"steps: {len({e.step for e in entries})}",
        f"templates: {len({e.template for e in entries if e.template})}",
        f"artifacts: {sum(e.artifacts for e in entries)}",
    ]
    if entries:
        ages = [max(0.0, now - e.stored_at) for e in entries]
        lines += [f"oldest: {_age(max(ages))}", f"newest: {_age(min(ages))}"]
    return "\n".join(lines)


def format_cleared(cleared: CacheCleared, *, key: str | None, template: str | None) -> str:
    """Render what ``troupe cache clear`` removed."""
    if key is not None:
        return f"removed step cache entry {key}"
    if template is not None:
        noun = "entry" if cleared.removed == 1 else "entries"
        return f"removed {cleared.removed} step cache {noun} of template {template}"
    return f"step cache cleared ({cleared.removed} entries removed)"


def _clear(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> CacheCleared:
        return await clear_cache(bus, key=args.key, template=args.template)

    try:
        cleared = run_client(args, work, name="troupe-cli-cache", role="operator")
    except (NotFound, BadRequest) as exc:
        print(f"troupe cache clear: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TroupeError as exc:
        print(f"troupe cache clear: {exc}", file=sys.stderr)
        return 1
    print(format_cleared(cleared, key=args.key, template=args.template))
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        entries = run_client(args, list_cache, name="troupe-cli-cache", role="operator")
    except TroupeError as exc:
        print(f"troupe cache {args.cache_command}: {exc}", file=sys.stderr)
        return 1
    if args.step:
        entries = [e for e in entries if e.step == args.step]
    if args.template:
        entries = [e for e in entries if e.template == args.template]
    now = time.time()
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=2))
    elif args.cache_command == "stats":
        print(format_stats(entries, now))
    else:
        print(format_table(entries, now))
    return 0


def add_cache_commands(cache_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ls``, ``stats`` and ``clear`` to the ``troupe cache`` group."""
    for name, summary in (
        ("ls", "list the shared step cache's entries, oldest first"),
        ("stats", "count the shared step cache's entries, bytes and ages"),
    ):
        c = cache_sub.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]} (as operator).",
            epilog=f"Exit codes: 0 done; 1 failed; {CLIENT_EXIT_CODES}.",
        )
        c.add_argument("--step", help="only entries stored by this step")
        c.add_argument("--template", help="only entries stored by workflows of this template")
        c.add_argument("--json", action="store_true", help="print JSON")
        add_connection_options(c)
        c.set_defaults(handler=_run)
    c = cache_sub.add_parser(
        "clear",
        help="remove step cache entries: all, one KEY, or a template's",
        description="Remove step cache entries from the shared object store and every "
        "running pipeline runner's own tier: all of them, the entry KEY (its key or an "
        "unambiguous prefix, as 'troupe cache ls' shows), or every entry stored by the "
        "workflows of --template T. A pipeline runner removes them, so one must be up "
        "(exit 69 when none answers).",
        epilog=f"Exit codes: 0 cleared; 1 failed; {CLIENT_EXIT_CODES} (an unknown or "
        "ambiguous KEY removes nothing).",
    )
    which = c.add_mutually_exclusive_group()
    which.add_argument("key", metavar="KEY", nargs="?", help="only this entry")
    which.add_argument("--template", metavar="T", help="only the entries of template T")
    add_connection_options(c)
    c.set_defaults(handler=_clear)
