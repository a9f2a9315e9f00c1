"""``troupe agents``, ``troupe agents find CAPABILITY`` and ``troupe agents add NAME``.

``agents`` and ``agents find`` ask the agent registry (``troupe.agents.list`` /
``troupe.agents.find``) and print a table: id, capabilities, load, age of the
last heartbeat, state. ``--json`` prints the registry's answer as JSON instead.

``agents add NAME`` issues an agent its own identity on a local troupe: the
user ``agent-NAME``, which may heartbeat under the key ``NAME`` only and fetch
from its own inbox only. The running server reloads its configuration and the
inbox consumer is created at once (or at the next ``troupe up``).

Exit codes: 0 answered (even with no agent), 1 nothing matched ``find``,
2 the query or the name is invalid, 69 NATS or the agent registry did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

import msgspec
import nats.js.errors

from actors.agent_registry.client import find_agents, list_agents, parse_requirement
from actors.cli import creds
from actors.cli.columns import columns
from actors.cli.init import admin_config, apply_to
from actors.cli.options import CLIENT_EXIT_CODES, EXIT_USAGE, add_connection_options, run_client
from actors.runtime.access import AGENT_NAME_PATTERN, agent_role, agent_user
from actors.runtime.agent_logins import issue_agent, issuing, reload_server, server_running
from actors.runtime.bootstrap import Topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import password_path
from actors.runtime.errors import ConnectError, TroupeError
from actors.runtime.server import write_server_config
from actors.topology import agent_inbox_consumer
from protocols.agents import (
    AgentList,
    AgentView,
    FindAgents,
    ListAgents,
)

__all__ = ["format_table", "register"]

EXIT_NO_MATCH = 1

_SHARED = frozenset({"json", "timeout", "nats_url", "user", "password", "token", "creds"})
_COLUMNS = ("ID", "CAPABILITIES", "LOAD", "LAST HEARTBEAT", "STATE")


def _row(view: AgentView) -> tuple[str, ...]:
    info = view.info
    caps = ",".join(f"{c.name}@{c.version}" for c in info.capabilities) or "-"
    return (
        info.agent_id,
        caps,
        f"{info.load}/{info.capacity}",
        f"{view.last_seen_s:.1f}s ago",
        view.presence,
    )


def format_table(views: list[AgentView]) -> str:
    """Return ``views`` as an aligned text table (header included)."""
    rows = [_COLUMNS, *(_row(v) for v in views)]
    return columns(rows)


def _labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"label {item!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def _query(args: argparse.Namespace) -> AgentList:
    request: FindAgents | ListAgents
    if args.agents_command == "find":
        # The same syntax as `submit --requires`: NAME, NAME>=VERSION or NAME@VERSION.
        try:
            capability, minimum = parse_requirement(args.capability)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if args.min_version != "0":
            minimum = args.min_version
        request = FindAgents(
            capability=capability,
            min_version=minimum,
            labels=_labels(args.label),
            limit=args.limit,
            include_suspect=args.include_suspect,
        )
    else:
        request = ListAgents()

    async def work(bus: Bus) -> AgentList:
        if isinstance(request, FindAgents):
            return await find_agents(bus, request, timeout=args.timeout)
        return await list_agents(bus, timeout=args.timeout)

    return run_client(args, work)


def _run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        found = _query(args)
    except (TroupeError, msgspec.ValidationError, argparse.ArgumentTypeError) as exc:
        print(f"troupe agents: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(msgspec.to_builtins(found), indent=2), file=out)
    elif found.agents:
        print(format_table(found.agents), file=out)
    else:
        print(
            "no agents"
            if args.agents_command != "find"
            else f"no live agent offers {args.capability}",
            file=out,
        )
    if args.agents_command == "find" and not found.agents:
        return EXIT_NO_MATCH
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def _await_login(config: ConnectionConfig, timeout: float = 10.0) -> None:
    """Wait until the reloaded server accepts the new agent's login."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            bus = await Bus.connect(config)
        except ConnectError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            await bus.close()
            return


async def _apply_when_ready(
    config: ConnectionConfig, topology: Topology, timeout: float = 10.0
) -> None:
    """Apply ``topology``, retrying while JetStream settles after the reload."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await apply_to(config, topology)
        except nats.js.errors.ServiceUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return


def _add(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    try:
        agent_role(args.name)
    except ValueError as exc:
        print(f"troupe agents add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with issuing(state_dir):
        issue_agent(state_dir, args.name)
        before = _read(state_dir / "nats.conf")
        path = write_server_config(state_dir)
        # An unchanged configuration (the agent was issued before) needs no reload.
        changed = path.read_text() != before
        running = reload_server(state_dir) if changed else server_running(state_dir)
    user = agent_user(args.name)
    if running:
        url = creds.troupe_url(state_dir)
        topology = Topology(consumers=(agent_inbox_consumer(args.name),))
        login = ConnectionConfig(
            url=url, user=user, password_file=str(password_path(state_dir, user))
        ).for_client()
        try:
            asyncio.run(_await_login(login))
            asyncio.run(_apply_when_ready(admin_config(url, state_dir), topology))
        except (TroupeError, nats.js.errors.APIError) as exc:
            print(f"troupe agents add: {exc}", file=sys.stderr)
            return 1
        where = "issued on the running troupe"
    else:
        where = "issued; the next 'troupe up' creates its inbox"
    flag = "" if args.state_dir == creds.DEFAULT_STATE_DIR else f" --state-dir {state_dir}"
    print(f"agent {args.name} {where} (NATS user {user})")
    print(f'log it in with: eval "$(troupe creds agent {args.name}{flag})"')
    return 0


def _add_shared_options(p: argparse.ArgumentParser) -> None:
    """Add the options ``agents`` and ``agents find`` both take (:data:`_SHARED`)."""
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the registry (default 5)",
    )
    add_connection_options(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agents``, ``agents find`` and ``agents add``."""
    p = sub.add_parser(
        "agents",
        help="list the agents in the troupe, or find those offering a capability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_shared_options(p)
    p.set_defaults(handler=_run, agents_command="list")
    commands = p.add_subparsers(dest="agents_command", metavar="COMMAND")
    find = commands.add_parser(
        "find",
        help="live agents offering CAPABILITY, least-loaded first",
        description="Live agents offering CAPABILITY at MIN_VERSION or above, least-loaded first.",
        epilog=f"Exit codes: 0 found; {EXIT_NO_MATCH} no live agent matched; {CLIENT_EXIT_CODES}.",
    )
    find.add_argument(
        "capability",
        metavar="CAPABILITY",
        help="capability, as in submit --requires: text.stats, text.stats>=1.2 or text.stats@1.2",
    )
    find.add_argument("--min-version", default="0", help="lowest capability version, e.g. 1.2")
    find.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="required label (repeatable)",
    )
    find.add_argument("--limit", type=int, default=100, help="most agents shown (default 100)")
    find.add_argument(
        "--include-suspect", action="store_true", help="also agents that missed a heartbeat"
    )
    _add_shared_options(find)
    # Options shared with ``agents`` may come before or after ``find``; absent after it,
    # they must not override what was given before.
    for action in find._actions:
        if action.dest in _SHARED:
            action.default = argparse.SUPPRESS
    find.set_defaults(handler=_run)
    add = commands.add_parser(
        "add",
        help="issue an agent its own login on the local troupe (no restart needed)",
        description=(
            "Issue agent NAME its own NATS user agent-NAME: it may write only its own "
            "heartbeat key and read only its own inbox. A running troupe reloads its "
            "server configuration; 'troupe creds agent NAME' prints the login."
        ),
    )
    add.add_argument("name", metavar="NAME", help=f"agent name and id ({AGENT_NAME_PATTERN})")
    creds.add_state_dir_option(add, help_text="state directory of the troupe")
    add.set_defaults(handler=_add)
