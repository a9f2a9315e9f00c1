"""The ``troupe`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
a command's handler takes the parsed arguments and returns an exit code.

:func:`main` owns what every command shares: a client command that finds
nobody answering (:class:`~actors.cli.options.Unreachable`) prints one line
and exits 69; output cut short by a closed pipe (``troupe ls | head -1``)
ends quietly with 141, as a shell reports a process stopped by ``SIGPIPE``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from actors.cli.options import CLIENT_EXIT_CODES, EXIT_UNAVAILABLE, Unreachable

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "main"]

EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of our output went away (128 + SIGPIPE)."""

_COMMAND_MODULES = (
    "actors.cli.run",
    "actors.cli.up",
    "actors.cli.down",
    "actors.cli.demo",
    "actors.cli.creds",
    "actors.cli.init",
    "actors.cli.schema",
    "actors.cli.tasks",
    "actors.cli.results",
    "actors.cli.validate",
    "actors.cli.status",
    "actors.cli.breakers",
    "actors.cli.executions",
    "actors.cli.logs",
    "actors.cli.flags",
    "actors.cli.schedule",
    "actors.cli.cluster",
    "actors.cli.agents",
    "actors.cli.tokens",
    "actors.cli.mcp",
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
        epilog=(
            "Client commands fail within seconds instead of waiting. Exit codes: 0 done; "
            f"1 the command failed; {CLIENT_EXIT_CODES}; 141 the output pipe was closed. "
            "'troupe watch' and 'troupe submit --wait' add codes for a workflow's final "
            "state (see their --help)."
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
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except Unreachable as exc:
        print(f"troupe {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a file (tests capture it): nothing will flush to a pipe
    finally:
        os.close(devnull)
