"""A troupe on a loopback NATS cluster: ``troupe up --cluster N``.

:class:`ClusterTroupe` is a :class:`~actors.runtime.launcher.Troupe` whose
embedded server is ``N`` nats-server nodes on 127.0.0.1 instead of one. Each
node:

* runs troupe's one server configuration (roles and permissions rendered by
  :mod:`actors.runtime.access`, written by :func:`~actors.runtime.server.write_server_config`)
  included from its own ``<state-dir>/nodes/<name>/node.conf``, which adds its
  server name, its pid file and the cluster block;
* keeps its JetStream store and log under ``<state-dir>/nodes/<name>/``;
* accepts routes only from the ``route`` user, whose password is kept like the
  role passwords (``secrets/route.password``, 0600; the node configurations,
  also 0600, hold its bcrypt hash and the route URLs);
* is supervised on its own: SIGKILLed, it is restarted on the same ports and
  store; :meth:`ClusterTroupe.stop_node` takes it down until
  :meth:`ClusterTroupe.start_node`.

Actors connect with the full server list and fail over between the nodes.
Workflow data is replicated ``TROUPE_REPLICAS`` times (default: the number
of nodes, at most 3); see :meth:`actors.runtime.bootstrap.Topology.with_replicas`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from actors.runtime.access import ADMIN
from actors.runtime.agent_logins import PID_FILE
from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.bus import Bus
from actors.runtime.credentials import (
    ensure_passwords,
    secure_state_dir,
    stable_hashes,
)
from actors.runtime.errors import ServerError
from actors.runtime.launcher import SERVER_CHILD, Member, Troupe
from actors.runtime.server import (
    NatsServer,
    find_server_binary,
    free_port,
    load_secrets,
    server_env,
    write_server_config,
)
from actors.runtime.supervisor import ChildSpec, ChildState, Supervisor
from actors.runtime.tls import ensure_server_tls

__all__ = [
    "CLUSTER_NAME",
    "MAX_NODES",
    "NODES_DIR",
    "ROUTE_USER",
    "ClusterNode",
    "ClusterTroupe",
    "cluster_replicas",
    "describe_cluster",
    "plan_nodes",
    "write_node_configs",
]

CLUSTER_NAME = "troupe"
"""Name of the cluster every node joins."""

ROUTE_USER = "route"
"""The user nodes authenticate their routes with (password in ``secrets/route.password``)."""

NODES_DIR = "nodes"
"""Directory in the state directory with one sub-directory (store, log, config) per node."""

MAX_NODES = 7
"""Largest cluster ``troupe up --cluster`` runs on one machine."""

NODE_CONF = "node.conf"
"""A node's configuration file in its directory."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterNode:
    """One nats-server of a loopback cluster.

    Attributes:
        name: server name (``n1``, ``n2``, ...), shown as the peer in stream info.
        port: client port on 127.0.0.1.
        route_port: route port on 127.0.0.1.
        directory: its store, log, pid file and configuration.
    """

    name: str
    port: int
    route_port: int
    directory: Path

    @property
    def child(self) -> str:
        """Name of the node among the supervised children (``nats-server-n1``)."""
        return f"{SERVER_CHILD}-{self.name}"

    def url(self, *, tls: bool = False) -> str:
        """Client URL of the node."""
        return f"{'tls' if tls else 'nats'}://127.0.0.1:{self.port}"


def plan_nodes(state_dir: Path, size: int, port: int = 0) -> list[ClusterNode]:
    """Return ``size`` nodes: client ports from ``port`` upward, then their route ports.

    With ``port`` 0 every port is a free one.

    Raises:
        ValueError: ``size`` is not 3 to :data:`MAX_NODES`, or the ports run past 65535.
    """
    if not 3 <= size <= MAX_NODES:
        raise ValueError(f"--cluster takes 3 to {MAX_NODES} nodes, not {size}")
    if port and port + 2 * size - 1 > 65535:
        raise ValueError(f"--port {port} leaves no room for {size} client and route ports")
    client = [port + i if port else free_port() for i in range(size)]
    route = [port + size + i if port else free_port() for i in range(size)]
    return [
        ClusterNode(
            name=f"n{i + 1}",
            port=client[i],
            route_port=route[i],
            directory=Path(state_dir) / NODES_DIR / f"n{i + 1}",
        )
        for i in range(size)
    ]


def cluster_replicas(size: int, environ: Mapping[str, str] | None = None) -> int:
    """Return the copies of workflow data on a ``size``-node cluster.

    ``TROUPE_REPLICAS`` when set (the same variable as ``troupe init --replicas``),
    else the number of nodes, at most 3.

    Raises:
        ValueError: the variable is not a whole number from 1 to ``size``.
    """
    text = (os.environ if environ is None else environ).get("TROUPE_REPLICAS", "").strip()
    if not text:
        return min(size, 3)
    if not text.isdigit() or not 1 <= int(text) <= min(size, 5):
        raise ValueError(f"TROUPE_REPLICAS={text!r} is not 1 to {min(size, 5)}")
    return int(text)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def write_node_configs(
    state_dir: Path, nodes: Sequence[ClusterNode], config: Path | None = None
) -> dict[str, Path]:
    """Write the server configuration and one ``node.conf`` per node; return them by name.

    Each ``node.conf`` includes the configuration every node shares (roles,
    permissions, issued agents, JetStream settings) and adds the node's name,
    pid file and cluster block: its route listener, the route user's bcrypt
    hash, and routes to the other nodes carrying the route password.

    Args:
        state_dir: the state directory.
        nodes: every node of the cluster.
        config: base configuration (troupe's ``nats.conf`` by default).
    """
    secure_state_dir(state_dir)
    shared = write_server_config(state_dir, config)
    password = ensure_passwords(state_dir, [ROUTE_USER])[ROUTE_USER]
    digest = stable_hashes(state_dir, {ROUTE_USER: password})[ROUTE_USER]
    paths: dict[str, Path] = {}
    for node in nodes:
        node.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        node.directory.chmod(0o700)
        routes = "\n".join(
            f'    "nats-route://{ROUTE_USER}:{password}@127.0.0.1:{other.route_port}"'
            for other in nodes
            if other.name != node.name
        )
        text = (
            "# Generated by troupe up --cluster: one node of the loopback cluster. Do not edit.\n"
            f'include "{os.path.relpath(shared, node.directory)}"\n\n'
            f"server_name: {node.name}\n"
            f'pid_file: "{(node.directory / PID_FILE).resolve()}"\n\n'
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f'  listen: "127.0.0.1:{node.route_port}"\n'
            f'  authorization {{ user: {ROUTE_USER}, password: "{digest}" }}\n'
            f"  routes: [\n{routes}\n  ]\n"
            "}\n"
        )
        paths[node.name] = node.directory / NODE_CONF
        _write_private(paths[node.name], text)
    return paths


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class ClusterTroupe(Troupe):
    """A troupe whose embedded server is a loopback cluster of ``nodes`` nats-servers.

    Takes the arguments of :class:`~actors.runtime.launcher.Troupe` but
    ``nats_url`` (it runs its own nodes), plus ``nodes`` and ``bootstrap_timeout``.

    Args:
        actors: the actors to run: built-in names or :class:`Member` entries.
        state_dir: secrets, logs, and one directory per node.
        nodes: how many nodes, 3 to :data:`MAX_NODES`.
        port: the first client port (the others and the route ports follow);
            0 picks free ones.
        env: base environment of the actor processes.
        grace: seconds actors get to drain on stop.
        tls: the nodes require TLS from clients (the state directory's local CA).
        topology: what to create as ``admin`` once the cluster has its leaders.
        server_config: configuration every node includes (troupe's ``nats.conf``).
        bootstrap_timeout: seconds the new cluster gets to elect its leaders
            and take the topology.
    """

    def __init__(
        self,
        actors: Sequence[str | Member],
        *,
        state_dir: Path,
        nodes: int = 3,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        grace: float = 15.0,
        tls: bool = False,
        topology: Topology | None = None,
        server_config: Path | None = None,
        bootstrap_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            actors,
            state_dir=state_dir,
            port=port,
            env=env,
            grace=grace,
            tls=tls,
            topology=topology,
            server_config=server_config,
        )
        self.nodes = plan_nodes(self.state_dir, nodes, self.port)
        self.bootstrap_timeout = bootstrap_timeout
        self._node_supervisors: dict[str, Supervisor] = {}
        self._node_specs: dict[str, ChildSpec] = {}

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what actors and clients connect to)."""
        return ",".join(node.url(tls=self.tls) for node in self.nodes)

    def node(self, name: str) -> ClusterNode:
        """Return the node called ``name``.

        Raises:
            KeyError: no node has that name.
        """
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    async def _start_server(self, timeout: float = 15.0) -> None:
        """Write the node configurations and start every node; wait until all listen.

        Raises:
            ServerError: a node's port is taken or a node exited before listening.
        """
        configs = write_node_configs(self.state_dir, self.nodes, self.server_config)
        # Stands for the cluster where the launcher asks about "the server": its
        # passwords, CA and configuration. It runs no process of its own.
        self.server = NatsServer(
            self.state_dir, port=self.nodes[0].port, tls=self.tls, config=self.server_config
        )
        self.server.passwords = load_secrets(self.state_dir)
        argv_tls: list[str] = []
        if self.tls:
            files = ensure_server_tls(self.state_dir)
            self.server.ca = files.ca
            argv_tls = ["--tls", "--tlscert", str(files.cert), "--tlskey", str(files.key)]
        binary = find_server_binary()
        for node in self.nodes:
            if await _listening(node.port):
                raise ServerError(f"port {node.port} ({node.name}) is already in use")
            argv = [
                binary,
                "-c",
                str(configs[node.name]),
                *argv_tls,
                "-a",
                "127.0.0.1",
                "-p",
                str(node.port),
                "-sd",
                str(node.directory / "jetstream"),
                "-l",
                str(node.directory / "nats-server.log"),
            ]
            self._node_specs[node.name] = ChildSpec(
                name=node.child,
                argv=tuple(argv),
                env=server_env(),
                log_file=self.state_dir / "logs" / f"{node.child}.out",
                ready=self._ready_probe(node),
                umask=0o077,
            )
        for node in self.nodes:
            await self.start_node(node.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for node in self.nodes:
            while not await _listening(node.port):
                state = self._node_state(node.name)
                if state is not None and (state.restarts or state.last_exit):
                    log_file = node.directory / "nats-server.log"
                    tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                    raise ServerError(f"{node.name} exited ({state.last_exit}): {tail}")
                if loop.time() > deadline:
                    raise ServerError(
                        f"{node.name} did not listen on port {node.port} within {timeout:.0f}s"
                    )
                await asyncio.sleep(0.05)

    def _node_state(self, name: str) -> ChildState | None:
        supervisor = self._node_supervisors.get(name)
        return supervisor.children.get(self.node(name).child) if supervisor else None

    def _ready_probe(self, node: ClusterNode) -> Callable[[], Awaitable[bool]]:
        async def ready() -> bool:
            """Whether the (re)started node listens; a restarted one re-checks the topology."""
            if not await _listening(node.port):
                return False
            state = self._node_state(node.name)
            if state is not None and state.restarts:
                # Memory-storage streams on a node that died come back empty or not
                # at all when every node died: the topology is applied again.
                await self._apply_topology(timeout=5.0)
            return True

        return ready

    async def bootstrap(self) -> None:
        """Create or migrate the topology as ``admin`` once the cluster has its leaders.

        Raises:
            ServerError: the cluster did not take the topology within
                ``bootstrap_timeout`` seconds.
        """
        await self._apply_topology(timeout=self.bootstrap_timeout)

    async def _apply_topology(self, timeout: float) -> None:
        if self.topology is None or self.server is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = ""
        while True:
            try:
                bus = await Bus.connect(self.client_config(ADMIN).for_client(), name="troupe-init")
                try:
                    await apply_topology(bus.js, self.topology)
                finally:
                    await bus.close()
            except Exception as exc:  # noqa: BLE001 - no leader yet, or a node still joining
                last = f"{type(exc).__name__}: {exc}"
            else:
                return
            if loop.time() > deadline:
                raise ServerError(
                    f"the cluster did not take the topology in {timeout:.0f}s: {last}"
                )
            await asyncio.sleep(0.5)

    async def start_node(self, name: str) -> None:
        """Start node ``name`` (again) under its own supervisor; it is restarted if it dies.

        Raises:
            KeyError: no node has that name.
            ValueError: the node runs already.
        """
        if name in self._node_supervisors:
            raise ValueError(f"node {name} runs already")
        supervisor = Supervisor([], grace=self.grace)
        await supervisor.start()
        self._node_supervisors[name] = supervisor
        await supervisor.add(self._node_specs[name])

    async def stop_node(self, name: str) -> None:
        """Stop node ``name`` (SIGTERM) and keep it down until :meth:`start_node`."""
        supervisor = self._node_supervisors.pop(name, None)
        if supervisor is not None:
            await supervisor.stop()

    def node_ready(self, name: str) -> bool:
        """Whether node ``name`` runs and its current process answered the ready probe."""
        state = self._node_state(name)
        return (
            state is not None
            and state.ready
            and state.proc is not None
            and state.proc.returncode is None
        )

    def kill_node(self, name: str) -> bool:
        """SIGKILL node ``name``; its supervisor restarts it after a short backoff.

        Returns:
            Whether a running process was killed (``False``: the node was down
            already, waiting for its restart, or stopped).
        """
        state = self._node_state(name)
        if state is None or state.proc is None or state.proc.returncode is not None:
            return False
        try:
            state.proc.kill()
        except ProcessLookupError:
            return False
        return True

    def restarts(self) -> dict[str, ChildState]:
        """Every supervised child, the nodes as ``nats-server-<node>``, and its restarts."""
        found = super().restarts()
        for supervisor in self._node_supervisors.values():
            found.update(supervisor.children)
        return found

    async def stop(self) -> None:
        """Stop every actor (drain), then every node."""
        await super().stop()
        supervisors = list(self._node_supervisors.values())
        self._node_supervisors.clear()
        await asyncio.gather(*(s.stop() for s in supervisors))
        for node in self.nodes:
            # A stale pid could be another process's by the next reload (troupe agents add).
            with contextlib.suppress(FileNotFoundError):
                (node.directory / PID_FILE).unlink()


def describe_cluster(troupe: ClusterTroupe, topology: Topology | None) -> str:
    """Return a one-line description of a started cluster troupe for ``troupe up``."""
    nodes = ", ".join(n.name for n in troupe.nodes)
    replicas = max((s.replicas for s in topology.streams), default=1) if topology else 1
    return f"{len(troupe.nodes)} nodes {nodes} in that order; workflow data at R{replicas}"
