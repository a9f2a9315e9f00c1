"""``troupe templates [NAME]``: the pipeline templates a task may name, with their parameters.

The list comes from the task manager (``troupe.tasks.templates.list``, one
template by ``troupe.tasks.templates.get``), so it is what a submission will
find: its bundled templates and its ``TROUPE_TEMPLATES``. With nothing
answering the command fails fast like every client command (exit 69).

``--templates DIR`` works offline instead: it reads the template files here
(the bundled ones, ``TROUPE_TEMPLATES`` and each ``DIR``), which is what
``troupe submit --templates DIR`` and ``troupe validate`` use, and needs no
troupe running.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from actors.cli.options import (
    CLIENT_EXIT_CODES,
    EXIT_USAGE,
    add_connection_options,
    run_client,
)
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, RequestError, TroupeError
from actors.task_manager.client import (
    TaskRejected,
    TemplateRegistry,
    get_template,
    list_templates,
    template_info,
)
from protocols.tasks import TemplateInfo

__all__ = ["add_templates_command", "print_templates"]

Listed = list[tuple[TemplateInfo, Path | None]]
"""Templates with the file each came from (``None``: the task manager's, not read here)."""


def print_templates(found: Listed, *, as_json: bool) -> None:
    """Print templates as a table with one line per parameter, or as JSON.

    Args:
        found: the templates, each with its file when read locally.
        as_json: print a JSON list of ``name``, ``description``, ``path``
            (``null`` for the task manager's), ``params`` and ``steps``.
    """
    if as_json:
        rows = [
            {
                "name": t.name,
                "description": t.description,
                "path": None if path is None else str(path),
                "params": [msgspec.to_builtins(p) for p in t.params],
                "steps": list(t.steps),
            }
            for t, path in found
        ]
        print(json.dumps(rows, indent=2))
        return
    width = max((len(t.name) for t, _ in found), default=4)
    for t, _ in found:
        print(f"{t.name:<{width}}  {t.description}")
        for p in t.params:
            default = "required" if p.default is None else f"default {p.default!r}"
            about = f"  {p.description}" if p.description else ""
            print(f"{'':<{width}}    --param {p.name}=<{p.type}>  ({default}){about}")
    if not found:
        print("no templates found")


def _fail(message: str, code: int) -> int:
    print(f"troupe templates: {message}", file=sys.stderr)
    return code


def _offline(args: argparse.Namespace) -> int:
    registry = TemplateRegistry.default([Path(d) for d in args.templates])
    try:
        chosen = [registry.get(args.name)] if args.name else registry.templates()
    except TaskRejected as exc:
        return _fail(exc.detail, EXIT_USAGE)
    print_templates([(template_info(t), t.path) for t in chosen], as_json=args.json)
    for path, problem in registry.errors.items():
        print(f"skipped {path}: {problem}", file=sys.stderr)
    return 0


def _templates(args: argparse.Namespace) -> int:
    if args.templates:
        return _offline(args)

    async def work(bus: Bus) -> Listed:
        if args.name:
            return [(await get_template(bus, args.name), None)]
        return [(t, None) for t in (await list_templates(bus)).items]

    try:
        found = run_client(args, work)
    except NotFound as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (RequestError, TroupeError) as exc:
        return _fail(str(exc), 1)
    print_templates(found, as_json=args.json)
    return 0


def add_templates_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``troupe templates [NAME] [--json] [--templates DIR]``."""
    p = sub.add_parser(
        "templates",
        help="list the pipeline templates the task manager knows",
        description="List the pipeline templates the task manager knows (its bundled "
        "templates and TROUPE_TEMPLATES), with their parameters: what 'troupe submit "
        "NAME' will find. With --templates DIR, read the template files here instead "
        "(offline: no troupe needed).",
        epilog=f"Exit codes: 0 listed; {CLIENT_EXIT_CODES}.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="only this template")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--templates",
        metavar="DIR",
        action="append",
        default=[],
        help="offline: read the bundled templates, TROUPE_TEMPLATES and this "
        "directory (repeatable) here instead of asking the task manager",
    )
    add_connection_options(p)
    p.set_defaults(handler=_templates)
