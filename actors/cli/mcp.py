"""``troupe mcp``: serve troupe's MCP server over stdio, for AI clients that launch a command.

Configure an MCP client to run ``troupe mcp`` (in the directory of your
``troupe up``, or with ``--state-dir``). The server logs in to NATS with the
state directory's credentials (the gateway's, else the operator's) and runs
every request as the local user with a built-in role (``--role``, default
``operator``: read, submit, cancel; ``admin`` may also control breakers).
Standard output carries MCP messages only; logs go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from actors.cli.creds import add_state_dir_option
from actors.cli.options import (
    EXIT_UNAVAILABLE,
    add_connection_options,
    connection_config,
)
from actors.gateway.client import serve_mcp_stdio
from actors.runtime.credentials import password_path
from actors.runtime.errors import ConfigError, ConnectError

__all__ = ["register"]

_ROLES = ("viewer", "operator", "admin")


def _run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    # The gateway's NATS user may read what MCP serves (histories, running steps, re-run
    # inputs); the operator's is the fallback.
    login = "gateway" if password_path(state_dir, "gateway").is_file() else "operator"
    try:
        config = connection_config(args, name="troupe-mcp", role=login)
    except ConfigError as exc:
        print(f"troupe mcp: {exc}", file=sys.stderr)
        return 2
    # Fail fast on the first connection like every client, then reconnect for as
    # long as the MCP client keeps the server.
    config = dataclasses.replace(config, reconnect=True)
    try:
        asyncio.run(
            serve_mcp_stdio(
                config,
                role=args.role,
                gateway_url=args.gateway_url,
            )
        )
    except ConnectError as exc:
        print(f"troupe mcp: {exc}; start a troupe with 'troupe up'", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mcp``."""
    p = sub.add_parser(
        "mcp",
        help="serve the MCP server over stdio (for AI clients that launch a command)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--role",
        choices=_ROLES,
        default="operator",
        help="what MCP requests may do (default: operator)",
    )
    p.add_argument(
        "--gateway-url",
        metavar="URL",
        help="the gateway's HTTP URL for links to large artifacts (default: ask the gateway)",
    )
    add_state_dir_option(p, help_text="state directory of the troupe to serve")
    add_connection_options(p)
    p.set_defaults(handler=_run)
