"""``troupe creds``: how a client, an agent or a user actor logs in to a local troupe.

``troupe up`` generates one password per role of the role table
(:mod:`actors.runtime.access`) into ``<state-dir>/secrets/``, and ``troupe
agents add NAME`` one per agent; this command prints, for one role (or
``agent NAME``), the shell lines that export ``TROUPE_NATS_URL``/``USER``/
``PASSWORD`` (which the CLI, the SDK and every example read) or a ready
``nats://user:password@host:port`` URL.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from actors.runtime.access import ROLES as ROLE_TABLE
from actors.runtime.access import agent_user
from actors.runtime.config import DEFAULT_NATS_URL
from actors.runtime.credentials import SECRETS_DIR, read_passwords

__all__ = [
    "DEFAULT_STATE_DIR",
    "PID_FILE",
    "ROLE_SUMMARIES",
    "STATE_DIR_ENV",
    "add_state_dir_option",
    "how_to_connect",
    "register",
    "role_url",
    "troupe_url",
]

DEFAULT_STATE_DIR = ".troupe"
"""State directory of ``troupe up``, ``down`` and ``creds`` unless told otherwise."""

STATE_DIR_ENV = "TROUPE_STATE_DIR"
"""Environment variable overriding :data:`DEFAULT_STATE_DIR`."""

PID_FILE = "troupe.pid"
"""File in the state directory: pid of a running ``troupe up``, then its NATS URL."""

ROLES = (*(role.name for role in ROLE_TABLE), "agent")
"""What ``troupe creds`` accepts: every role of the table, and ``agent NAME``."""

ROLE_SUMMARIES: dict[str, str] = {
    **{role.name: role.summary for role in ROLE_TABLE},
    "agent": "agent NAME: an agent issued with 'troupe agents add NAME' (its own login)",
}
"""What each role may do, in one line."""


def add_state_dir_option(parser: argparse.ArgumentParser, *, help_text: str) -> None:
    """Add ``--state-dir`` (default ``$TROUPE_STATE_DIR`` or ``.troupe``)."""
    parser.add_argument(
        "--state-dir",
        default=os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"{help_text} (env {STATE_DIR_ENV}, default {DEFAULT_STATE_DIR}/)",
    )


def troupe_url(state_dir: Path) -> str:
    """Return the URL of the troupe running from ``state_dir`` (the default one if none)."""
    pid_file = state_dir / PID_FILE
    try:
        lines = pid_file.read_text().split()
    except FileNotFoundError:
        return os.environ.get("TROUPE_NATS_URL") or DEFAULT_NATS_URL
    return lines[1] if len(lines) > 1 else DEFAULT_NATS_URL


def role_url(url: str, user: str, password: str) -> str:
    """Return ``url`` with ``user:password@`` in each of its comma-separated servers."""
    servers = []
    for server in url.split(","):
        scheme, sep, rest = server.strip().partition("://")
        if not sep:
            scheme, rest = "nats", scheme
        host = rest.rpartition("@")[2]
        servers.append(f"{scheme}://{user}:{password}@{host}")
    return ",".join(servers)


def how_to_connect(state_dir: Path) -> str:
    """Return the line ``troupe up`` prints to say how an agent logs in."""
    flag = "" if state_dir == Path(DEFAULT_STATE_DIR) else f" --state-dir {state_dir}"
    return (
        f"troupe up: connect an agent with: troupe agents add NAME{flag}; "
        f"eval \"$(troupe creds agent NAME{flag})\"; 'troupe creds' lists the roles"
    )


def _list_roles() -> int:
    width = max(map(len, ROLE_SUMMARIES))
    for role, summary in ROLE_SUMMARIES.items():
        print(f"{role:<{width}}  {summary}")
    print("\n'troupe creds ROLE' prints the login of one role; see the README's 'Credentials'.")
    return 0


def _creds(args: argparse.Namespace) -> int:
    if args.role is None:
        return _list_roles()
    state_dir = Path(args.state_dir)
    if args.role == "agent":
        if not args.name:
            print("troupe creds agent: name the agent (troupe agents add NAME)", file=sys.stderr)
            return 2
        user = agent_user(args.name)
        hint = f"issue it with 'troupe agents add {args.name}'"
    else:
        user = args.role
        hint = "start the troupe with 'troupe up' first (or pass --state-dir)"
    password = read_passwords(state_dir, [user]).get(user)
    if not password:
        print(
            f"troupe creds: no password for {user!r} in {state_dir / SECRETS_DIR}; {hint}",
            file=sys.stderr,
        )
        return 1
    url = args.nats_url or troupe_url(state_dir)
    if args.url:
        print(role_url(url, user, password))
        return 0
    print("unset TROUPE_NATS_TOKEN TROUPE_NATS_CREDS TROUPE_NATS_PASSWORD_FILE")
    print(f"export TROUPE_NATS_URL={shlex.quote(url)}")
    print(f"export TROUPE_NATS_USER={shlex.quote(user)}")
    print(f"export TROUPE_NATS_PASSWORD={shlex.quote(password)}")
    if args.role == "agent":
        print(f"export TROUPE_AGENT_ID={shlex.quote(args.name)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``creds``."""
    p = sub.add_parser(
        "creds",
        help="print how to log in to a local troupe as a role (agent, actor, admin, ...)",
        description=(
            "Print the shell lines exporting TROUPE_NATS_URL, TROUPE_NATS_USER and "
            'TROUPE_NATS_PASSWORD for ROLE (use: eval "$(troupe creds operator)"), or '
            "for an agent issued with 'troupe agents add NAME' (troupe creds agent NAME, "
            "which also exports TROUPE_AGENT_ID), or with --url a "
            "nats://USER:PASSWORD@HOST:PORT URL. The passwords are generated by 'troupe up' "
            f"into <state-dir>/{SECRETS_DIR}/. Without ROLE, list the roles."
        ),
    )
    p.add_argument("role", nargs="?", choices=ROLES, metavar="ROLE", help=", ".join(ROLES))
    p.add_argument("name", nargs="?", metavar="NAME", help="the agent's name (with ROLE agent)")
    p.add_argument("--url", action="store_true", help="print one URL with the credentials in it")
    p.add_argument(
        "--nats-url",
        metavar="URL",
        help="server URL to use (default: the running troupe's, from the state directory)",
    )
    add_state_dir_option(p, help_text="state directory of the troupe")
    p.set_defaults(handler=_creds)
