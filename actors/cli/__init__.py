"""The ``troupe`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
a command's handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "actors.cli.lifecycle",
    "actors.cli.schema",
    "actors.cli.tasks",
    "actors.cli.status",
    "actors.cli.breakers",
    "actors.cli.agents",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``troupe`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="troupe",
        description=(
            "troupe: an event-driven actor framework on NATS JetStream. "
            "Start a local troupe with 'troupe up', submit work with 'troupe submit', "
            "follow it with 'troupe watch'."
        ),
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``troupe`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=int(os.environ.get("TROUPE_LOG_LEVEL", level))
        if os.environ.get("TROUPE_LOG_LEVEL", "").isdigit()
        else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code
