"""``troupe run``: one actor in this process, as a deployment runs each actor."""

from __future__ import annotations

import argparse
import os
import sys

from actors.cli.gateway_http import add_http_options, http_env
from actors.cli.options import add_connection_options, connection_config
from actors.roster import ACTORS, ActorSpecError, resolve_actor
from actors.runtime import loops
from actors.runtime.errors import ConfigError, TroupeError
from actors.runtime.launcher import USER_ACTOR_ROLE
from actors.runtime.supervisor import EXIT_CONFIG

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    try:
        cls = resolve_actor(args.actor)
    except ActorSpecError as exc:
        print(f"troupe run: {exc}", file=sys.stderr)
        return 2
    # Beside a local troupe up, an actor logs in as its role (a user actor as
    # ``actor``) unless credentials are given.
    role = args.actor if args.actor in ACTORS else USER_ACTOR_ROLE
    config = connection_config(args, name=f"troupe-{cls.name}", client=False, role=role)
    os.environ.update(http_env(args))
    actor = cls()
    if args.grace is not None:
        actor.grace = args.grace
    try:
        loops.run(actor.serve(config), loop=cls.event_loop)
    except ConfigError as exc:
        # Exit 78: a supervisor does not restart an actor whose configuration cannot work.
        print(f"troupe run {args.actor}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TroupeError as exc:
        print(f"troupe run {args.actor}: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``."""
    p = sub.add_parser(
        "run",
        help="run one actor in this process (how a deployment runs each actor)",
        description="Run one actor until SIGTERM/SIGINT, then drain and stop gracefully.",
    )
    p.add_argument(
        "actor",
        metavar="ACTOR",
        help=f"a built-in actor ({', '.join(sorted(ACTORS))}) or a user actor as "
        "package.module:Class or path/to/file.py:Class",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time in-flight work gets to finish on shutdown (default 10)",
    )
    add_http_options(p)
    add_connection_options(p)
    p.set_defaults(handler=_run)
