"""``troupe token create|list|revoke|rotate``: API tokens for the HTTP API, MCP and the dashboard.

The gateway issues tokens and keeps only their hashes; these commands ask it
over NATS as the ``operator`` user (the state directory's login). A new token
is printed once. ``troupe up`` saves a fresh operator token in the state
directory (:data:`TOKEN_FILE`, mode 0600) and prints the gateway's URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import msgspec

from actors.cli import creds
from actors.cli.options import CLIENT_EXIT_CODES, add_connection_options, run_client
from actors.gateway.client import (
    create_token,
    gateway_info,
    list_tokens,
    revoke_token,
    rotate_token,
    token_id_of,
)
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.gateway import BUILTIN_ROLES, SCOPES, CreateToken, TokenInfo, TokenIssued

__all__ = ["TOKEN_FILE", "URL_FILE", "issue_login_token", "parse_duration", "register"]

TOKEN_FILE = "gateway-token"  # noqa: S105 - a file name
"""The operator token ``troupe up`` issues, in the state directory (0600)."""

URL_FILE = "gateway-url"
"""Where the running troupe's gateway serves, in the state directory."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> float:
    """Turn ``90``, ``30m``, ``12h``, ``7d``, ``1w`` or ``1y`` into seconds.

    Raises:
        ValueError: not a positive duration.
    """
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 3600, 30m, 12h, 7d)") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (0600) at once: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


async def issue_login_token(bus: Bus, state_dir: Path) -> tuple[str, str]:
    """Issue a fresh operator token for this machine's user, replacing the saved one.

    Saves it in ``state_dir/gateway-token`` (0600) and the gateway's URL in
    ``state_dir/gateway-url``; the previous saved token is revoked.

    Returns:
        ``(url, token)``.
    """
    path = state_dir / TOKEN_FILE
    if path.exists():
        old = token_id_of(path.read_text().strip())
        if old:
            with contextlib.suppress(TroupeError):  # already gone
                await revoke_token(bus, old)
    issued = await create_token(
        bus, CreateToken(name="troupe-up", role="operator", created_by="troupe up")
    )
    info = await gateway_info(bus)
    _write_private(path, issued.token + "\n")
    _write_private(state_dir / URL_FILE, info.url + "\n")
    return info.url, issued.token


def _show(info: TokenInfo) -> str:
    def when(ts: float | None) -> str:
        return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))

    state = (
        "revoked"
        if info.revoked_at
        else ("expired" if info.expires_at and info.expires_at <= time.time() else "active")
    )
    return (
        f"{info.token_id}  {info.name:<16} {info.role:<8} {state:<7} "
        f"expires {when(info.expires_at)}  scopes {','.join(info.scopes)}"
    )


def _print_issued(issued: TokenIssued, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(issued).decode())
        return
    print(issued.token)
    print(f"(shown once) {_show(issued.info)}", file=sys.stderr)


def _run(args: argparse.Namespace, command: str) -> int:
    async def work(bus: Bus) -> int:
        if command == "create":
            ttl = parse_duration(args.expires) if args.expires else None
            issued = await create_token(
                bus,
                CreateToken(
                    name=args.name,
                    role=args.role,
                    scopes=list(args.scope or ()),
                    ttl_s=ttl,
                    created_by=f"troupe token ({os.environ.get('USER', 'cli')})",
                ),
            )
            _print_issued(issued, args.json)
        elif command == "list":
            found = await list_tokens(bus, include_revoked=args.all)
            if args.json:
                print(json.dumps(msgspec.to_builtins(found.items), indent=2))
            for info in [] if args.json else found.items:
                print(_show(info))
            if not found.items and not args.json:
                print("no tokens")
        elif command == "revoke":
            info = await revoke_token(bus, args.id)
            print(f"revoked {info.token_id} ({info.name})")
        else:
            ttl = parse_duration(args.expires) if args.expires else None
            _print_issued(await rotate_token(bus, args.id, ttl_s=ttl), args.json)
        return 0

    try:
        return run_client(args, work, role="operator")
    except ValueError as exc:
        print(f"troupe token {command}: {exc}", file=sys.stderr)
        return 2
    except TroupeError as exc:
        print(f"troupe token {command}: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``token``."""
    p = sub.add_parser(
        "token",
        help="issue, list, revoke and rotate API tokens (HTTP API, MCP, dashboard)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Exit codes: 0 done; 1 refused; 2 bad arguments; {CLIENT_EXIT_CODES}.",
    )
    actions = p.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    roles = [*BUILTIN_ROLES, "custom"]

    c = actions.add_parser("create", help="issue a token (printed once)")
    c.add_argument("name", help="who or what it is for")
    c.add_argument("--role", choices=roles, default="viewer", help="default viewer")
    c.add_argument(
        "--scope", action="append", choices=SCOPES, help="with --role custom (repeatable)"
    )
    c.add_argument("--expires", metavar="DURATION", help="e.g. 12h, 30d (default: never)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(handler=lambda a: _run(a, "create"))

    c = actions.add_parser("list", help="list tokens (never their secrets)")
    c.add_argument("--all", action="store_true", help="include revoked and expired ones")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(handler=lambda a: _run(a, "list"))

    c = actions.add_parser("revoke", help="revoke a token at once")
    c.add_argument("id", help="token id (the 16 hex digits after trp_)")
    c.set_defaults(handler=lambda a: _run(a, "revoke"))

    c = actions.add_parser("rotate", help="replace a token and revoke the old one")
    c.add_argument("id", help="token id")
    c.add_argument("--expires", metavar="DURATION", help="lifetime of the new token")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(handler=lambda a: _run(a, "rotate"))

    for parser in actions.choices.values():
        creds.add_state_dir_option(parser, help_text="state directory of the troupe")
        add_connection_options(parser)
