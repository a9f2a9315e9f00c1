"""The gateway's HTTP options of ``troupe run`` and ``troupe up``, and announcing its address.

:func:`add_http_options` adds ``--http-host``/``--http-port``; :func:`http_env`
turns them into the gateway's ``TROUPE_GATEWAY_*`` variables; once a troupe is
up, :func:`announce_gateway` prints the gateway's URL and a fresh operator token.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actors.cli import tokens
from actors.cli.options import connection_config
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError

__all__ = ["add_http_options", "announce_gateway", "http_env"]


def http_env(args: argparse.Namespace) -> dict[str, str]:
    """``--http-host``/``--http-port`` as the gateway's ``TROUPE_GATEWAY_*`` variables."""
    env: dict[str, str] = {}
    if getattr(args, "http_host", None):
        env["TROUPE_GATEWAY_HOST"] = args.http_host
    if getattr(args, "http_port", None) is not None:
        env["TROUPE_GATEWAY_PORT"] = str(args.http_port)
    return env


def add_http_options(p: argparse.ArgumentParser) -> None:
    """Add ``--http-host`` and ``--http-port``: where the gateway serves its HTTP API."""
    p.add_argument(
        "--http-host",
        metavar="HOST",
        help="interface the gateway's HTTP API serves on "
        "(env TROUPE_GATEWAY_HOST, default 127.0.0.1)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="the gateway's HTTP port, 0 for any free one (env TROUPE_GATEWAY_PORT, default 8765)",
    )


async def announce_gateway(url: str, state_dir: Path, who: str = "troupe up") -> None:
    """Print the gateway's URL and a fresh operator token (saved 0600 in the state dir)."""
    config = connection_config(
        argparse.Namespace(nats_url=url, state_dir=state_dir, ca=None), role="operator"
    )
    try:
        async with await Bus.connect(config, name="troupe-up") as bus:
            http_url, token = await tokens.issue_login_token(bus, state_dir)
    except TroupeError as exc:
        print(f"{who}: no gateway token ({exc})", file=sys.stderr, flush=True)
        return
    print(
        f"{who}: HTTP API on {http_url}/api/v1 (MCP at {http_url}/mcp); operator token "
        f"(saved in {state_dir / tokens.TOKEN_FILE}): {token}",
        flush=True,
    )
    print(f"{who}: dashboard at {http_url}/ (sign in with that token)", flush=True)
