"""``troupe cluster status``: the NATS nodes holding troupe's data, leaders and replica health.

For every stream, KV bucket and object store of the troupe it shows the
configured replicas, the leader, and each follower as ``current`` or
``lagging``/``offline``; then every node: whether its client URL answers
(each URL of the server list is asked for its greeting, so a node that is
down shows as ``down``) and how many streams it leads and follows.
``--json`` prints the same as data.

Without ``--nats-url`` or ``TROUPE_NATS_URL`` it asks the troupe running from
the state directory (every node ``troupe up --cluster`` started).

Exit codes: 0 every replica current and every node up, 1 some replica offline
or lagging, a node down (or the request refused), 69 NATS did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from actors.cli import creds
from actors.cli.columns import columns
from actors.cli.options import add_connection_options, run_client
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import TroupeError

__all__ = [
    "NodeView",
    "Probe",
    "StreamHealth",
    "format_status",
    "nodes_of",
    "probe_nodes",
    "register",
]

_OURS = ("TROUPE_", "KV_troupe", "OBJ_troupe")

STANDALONE = "standalone"
"""Leader shown for a stream of a server outside any cluster, until a probe names it."""


@dataclass
class StreamHealth:
    """Replica health of one stream."""

    stream: str
    replicas: int
    leader: str
    current: list[str] = field(default_factory=list)
    behind: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Whether the leader and every configured follower are there and current."""
        return bool(self.leader) and len(self.current) + 1 >= self.replicas and not self.behind


@dataclass
class NodeView:
    """What one node holds."""

    name: str
    leads: int = 0
    follows: int = 0
    url: str = ""
    """Client URL the node answered on; empty if only seen in stream info."""
    up: bool = True
    """Whether the node answered or leads or follows currently (see :func:`nodes_of`)."""


async def cluster_status(bus: Bus) -> list[StreamHealth]:
    """Return the replica health of every troupe stream, bucket and object store."""
    found = []
    for info in await bus.js.streams_info():
        name = info.config.name or ""
        if not name.startswith(_OURS):
            continue
        cluster = info.cluster
        leader = (cluster.leader or "") if cluster else ""
        if not leader and not (cluster and cluster.name):
            # A server outside any cluster names no leader: the one that answered holds it.
            leader = STANDALONE
        health = StreamHealth(
            stream=name,
            replicas=info.config.num_replicas or 1,
            leader=leader,
        )
        for peer in (cluster.replicas or []) if cluster else []:
            ok = bool(peer.current) and not peer.offline
            (health.current if ok else health.behind).append(peer.name or "?")
        found.append(health)
    return sorted(found, key=lambda h: h.stream)


async def _greeting(url: str, timeout: float) -> dict[str, object]:
    """The ``INFO`` a NATS server sends first (no login needed)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222), timeout
    )
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line.startswith(b"INFO "):
        raise ConnectionError(f"{url} is not a NATS server")
    info: dict[str, object] = json.loads(line[5:])
    return info


@dataclass
class Probe:
    """What one URL of the server list answered."""

    url: str
    name: str = ""
    """The node's server name; empty when the URL did not answer."""

    @property
    def up(self) -> bool:
        """Whether the URL answered."""
        return bool(self.name)


async def probe_nodes(servers: Sequence[str], timeout: float = 2.0) -> list[Probe]:
    """Ask every server URL for its greeting (no login): its server name, or nothing."""

    async def probe(url: str) -> Probe:
        try:
            info = await _greeting(url, timeout)
        except (OSError, TimeoutError, ValueError):
            return Probe(url)
        return Probe(url, str(info.get("server_name") or url))

    return list(await asyncio.gather(*(probe(url) for url in servers)))


def nodes_of(streams: list[StreamHealth], probes: Sequence[Probe] = ()) -> list[NodeView]:
    """Return every node that answered or appears in stream info, with what it leads and follows.

    A node is up when it answered on its client URL or is leader or a current
    follower of some stream; a node seen only as an offline or lagging
    follower is down.
    """
    nodes: dict[str, NodeView] = {}
    live: set[str] = set()
    for p in probes:
        if p.up:
            nodes[p.name] = NodeView(p.name, url=p.url)
            live.add(p.name)
    for s in streams:
        if s.leader:
            nodes.setdefault(s.leader, NodeView(s.leader)).leads += 1
            live.add(s.leader)
        for name in (*s.current, *s.behind):
            nodes.setdefault(name, NodeView(name)).follows += 1
        live.update(s.current)
    for node in nodes.values():
        node.up = node.name in live
    return sorted(nodes.values(), key=lambda n: n.name)


def format_status(streams: list[StreamHealth], probes: Sequence[Probe] = ()) -> str:
    """Render the streams and nodes as plain-text tables (and the URLs that did not answer)."""
    rows = [("STREAM", "REPLICAS", "LEADER", "CURRENT", "BEHIND", "HEALTH")]
    for s in streams:
        rows.append(
            (
                s.stream,
                str(s.replicas),
                s.leader or "-",
                ",".join(s.current) or "-",
                ",".join(s.behind) or "-",
                "ok" if s.healthy else "DEGRADED",
            )
        )
    rows.append(("", "", "", "", "", ""))
    rows.append(("NODE", "LEADS", "FOLLOWS", "STATE", "URL", ""))
    rows += [
        (n.name, str(n.leads), str(n.follows), "up" if n.up else "DOWN", n.url or "-", "")
        for n in nodes_of(streams, probes)
    ]
    rows += [("-", "", "", "DOWN", p.url, "") for p in probes if not p.up]
    return columns(rows)


def _default_url(args: argparse.Namespace) -> None:
    """Without ``--nats-url`` or ``TROUPE_NATS_URL``: every node of the local troupe."""
    if not args.nats_url and not os.environ.get("TROUPE_NATS_URL"):
        args.nats_url = creds.troupe_url(Path(args.state_dir))


def _status(args: argparse.Namespace) -> int:
    _default_url(args)
    try:
        streams = run_client(args, cluster_status, name="troupe-cli-cluster", role="operator")
    except TroupeError as exc:
        print(f"troupe cluster status: {exc}", file=sys.stderr)
        return 1
    servers = ConnectionConfig(url=args.nats_url or os.environ["TROUPE_NATS_URL"]).servers
    probes = asyncio.run(probe_nodes(servers))
    named = [p.name for p in probes if p.up and p.name]
    if len(named) == 1:  # a single server: it is the one holding every stream
        for s in streams:
            s.leader = named[0] if s.leader == STANDALONE else s.leader
    nodes = nodes_of(streams, probes)
    if args.json:
        data = {
            "streams": [{**asdict(s), "healthy": s.healthy} for s in streams],
            "nodes": [asdict(n) for n in nodes],
            "unreachable": [p.url for p in probes if not p.up],
        }
        print(json.dumps(data, indent=2))
    else:
        print(format_status(streams, probes))
    healthy = all(s.healthy for s in streams) and all(n.up for n in nodes)
    return 0 if healthy and all(p.up for p in probes) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cluster status``."""
    p = sub.add_parser(
        "cluster",
        help="the NATS cluster: nodes, leaders and replica health of troupe's data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="cluster_action", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="nodes, leaders and replica health")
    s.add_argument("--json", action="store_true", help="print JSON")
    creds.add_state_dir_option(s, help_text="state directory of the local troupe")
    add_connection_options(s)
    s.set_defaults(handler=_status)
