"""``troupe init``: create or migrate a troupe's topology as ``admin``, idempotently.

The topology is every stream, KV bucket and object store of
:data:`actors.topology.TROUPE`, plus what each actor of the roster declares
(:meth:`~actors.runtime.actor.Actor.topology`: its durable consumers with
their per-instance options) and the inbox consumer of each agent issued with
``troupe agents add``. ``troupe up`` runs the same bootstrap before starting
any actor; actors only bind to what it created.

With a troupe running from the state directory, ``troupe init`` applies the
topology to it; otherwise it starts the embedded server on a free port for the
time it takes. Running it again changes nothing; after an upgrade it updates
streams and consumers in place to their declared configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import nats.js.errors

from actors.cli import creds
from actors.roster import ActorSpecError, build_roster, resolve_actor, user_actor_specs
from actors.runtime.access import ADMIN
from actors.runtime.agent_logins import issued_agents
from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import password_path
from actors.runtime.errors import TroupeError
from actors.runtime.launcher import Member
from actors.runtime.server import NatsServer, free_port
from actors.runtime.tls import find_ca
from actors.topology import TROUPE, agent_inbox_consumer

__all__ = ["admin_config", "apply_to", "current_replicas", "register", "troupe_topology"]


def troupe_topology(members: Sequence[Member], state_dir: Path) -> Topology:
    """Return the topology of a troupe of ``members`` with the agents issued in ``state_dir``.

    Raises:
        ActorSpecError: a member's spec names no actor.
    """
    parts = [TROUPE]
    for member in members:
        parts.append(resolve_actor(member.spec)().topology())
    agents = tuple(agent_inbox_consumer(name) for name in issued_agents(state_dir))
    parts.append(Topology(consumers=agents))
    return Topology.merge(parts)


def admin_config(url: str, state_dir: Path) -> ConnectionConfig:
    """Return how ``admin`` logs in to the troupe of ``state_dir`` at ``url``."""
    ca = find_ca(state_dir)
    return ConnectionConfig(
        url=url,
        user=ADMIN,
        password_file=str(password_path(state_dir, ADMIN)),
        ca=str(ca) if ca else None,
        name="troupe-init",
    ).for_client()


async def current_replicas(bus: Bus, topology: Topology) -> int | None:
    """Return the replica count of the first file stream of ``topology`` that exists."""
    streams = [*topology.streams, *(c.stream for c in topology.consumers)]
    for spec in streams:
        if spec.storage != "file":
            continue
        try:
            info = await bus.js.stream_info(spec.name)
        except nats.js.errors.NotFoundError:
            continue
        return int(info.config.num_replicas or 1)
    return None


async def apply_to(
    config: ConnectionConfig, topology: Topology, *, replicas: int | None = None
) -> None:
    """Connect with ``config`` and apply ``topology``.

    With ``replicas`` None, the streams keep the replica count the server
    already has (a troupe on a cluster stays replicated), or get one copy.

    Raises:
        ConnectError: the server is unreachable or refused the credentials.
        nats.js.errors.APIError: the server refused a change.
    """
    bus = await Bus.connect(config, name="troupe-init")
    try:
        if replicas is None:
            replicas = await current_replicas(bus, topology) or 1
        await apply_topology(bus.js, topology.with_replicas(replicas))
    finally:
        await bus.close()


def _init(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    try:
        members = build_roster([*user_actor_specs(), *(args.actor or ())])
        topology = troupe_topology(members, state_dir)
        env = os.environ.get("TROUPE_REPLICAS")
        replicas: int | None = args.replicas or (int(env) if env else None)
        if replicas is not None:
            topology.with_replicas(replicas)  # refuses a count out of range before connecting
    except (ActorSpecError, ValueError) as exc:
        print(f"troupe init: {exc}", file=sys.stderr)
        return 2
    running = (state_dir / creds.PID_FILE).exists()
    try:
        if args.nats_url or running:
            url = args.nats_url or creds.troupe_url(state_dir)
            asyncio.run(apply_to(admin_config(url, state_dir), topology, replicas=replicas))
        else:
            with NatsServer(state_dir, port=free_port()) as server:
                config = admin_config(server.url, state_dir)
                asyncio.run(apply_to(config, topology, replicas=replicas))
    except (TroupeError, OSError) as exc:
        print(f"troupe init: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a refused change is reported, not a traceback
        print(f"troupe init: the server refused a change: {exc}", file=sys.stderr)
        return 1
    print(f"troupe init: topology ready ({topology.describe()})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``init``."""
    p = sub.add_parser(
        "init",
        help="create or migrate the streams, buckets and consumers (as admin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    creds.add_state_dir_option(p, help_text="state directory of the troupe")
    p.add_argument(
        "--nats-url",
        metavar="URL",
        help="server to initialise (default: the running troupe's, or the embedded one)",
    )
    p.add_argument(
        "--actor",
        action="append",
        metavar="SPEC",
        help="also create what this user actor declares (repeatable; env TROUPE_ACTORS)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="copies of workflow data on a cluster, 1-5 (env TROUPE_REPLICAS; "
        "default: keep the server's count, 1 for a new troupe)",
    )
    p.set_defaults(handler=_init)
