"""A whole troupe on one machine: the embedded nats-server plus every actor as a process.

Used by ``troupe up``, ``troupe demo`` and the end-to-end tests. The server is
started unless a URL of a running one is given (which must answer within
seconds); each actor runs as ``python -m actors run SPEC`` under a
:class:`~actors.runtime.supervisor.Supervisor`, logged in as its own role when
the embedded server (with ``nats.conf``) is used: a built-in actor as the role
of its name, a user actor as the ``actor`` role.

The embedded server is a supervised child too: killed, it is restarted on the
same port with the same state directory (the actors reconnect on their own),
and it is stopped after the actors, which need it to drain. SIGKILL of the
process running the troupe takes every child down with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors

from actors.runtime.access import ADMIN
from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.bus import Bus, abandon, tls_options
from actors.runtime.config import CA_ENV, ConnectionConfig
from actors.runtime.credentials import PASSWORD_FILE_ENV, login_env, password_path
from actors.runtime.errors import ConnectError, ServerError
from actors.runtime.server import NatsServer
from actors.runtime.supervisor import ChildSpec, ChildState, Supervisor
from actors.runtime.tls import StrictTlsClient

__all__ = [
    "SERVER_CHILD",
    "USER_ACTOR_ROLE",
    "Member",
    "Troupe",
    "ping_actors",
    "probe_server",
    "workspaces_for",
]

_LOGIN_VARS = (
    "TROUPE_NATS_USER",
    "TROUPE_NATS_PASSWORD",
    PASSWORD_FILE_ENV,
    "TROUPE_NATS_TOKEN",
    "TROUPE_NATS_CREDS",
)
"""Credentials of whoever started the troupe: never handed on to its actors."""

USER_ACTOR_ROLE = "actor"
"""The ``nats.conf`` role user actors log in as."""

SERVER_CHILD = "nats-server"
"""Name of the embedded server among the supervised children."""


async def _listening(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts connections."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@dataclass(frozen=True, slots=True)
class Member:
    """One actor process of a troupe.

    Attributes:
        name: the actor's name (micro service name, log file ``logs/<name>.log``).
        spec: what ``troupe run`` is given: a built-in name or ``module:Class``.
        role: the ``nats.conf`` user it logs in as on the embedded server.
    """

    name: str
    spec: str
    role: str

    @classmethod
    def builtin(cls, name: str) -> Member:
        """A built-in actor: its spec and its role are its name."""
        return cls(name=name, spec=name, role=name)


async def _quiet(exc: Exception) -> None:
    """Connection errors of a probe are reported by its result, not logged."""


async def _read_info(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        line = await reader.readline()
        if not line.startswith(b"INFO"):
            raise ConnectionError(f"{host}:{port} is not a NATS server")
    finally:
        writer.close()


async def probe_server(url: str, timeout: float = 4.0) -> None:
    """Check that a NATS server answers at ``url`` (any of its comma-separated URLs).

    Reads the server's ``INFO`` greeting without logging in, so it needs no
    credentials and prints nothing while the server is down.

    Raises:
        ConnectError: no server answered within ``timeout`` seconds.
    """
    last: BaseException | None = None
    for server in ConnectionConfig(url=url).servers:
        parts = urlsplit(server)
        try:
            await asyncio.wait_for(_read_info(parts.hostname or "", parts.port or 4222), timeout)
        except (OSError, TimeoutError) as exc:
            last = exc
        else:
            return
    detail = f"{type(last).__name__}: {last}" if str(last) else type(last).__name__
    raise ConnectError(f"no NATS server answers at {url} ({detail})")


async def ping_actors(config: ConnectionConfig, timeout: float = 1.0) -> dict[str, int]:
    """Send ``$SRV.PING`` and count replies per service name.

    Connects once, without retrying and without logging connection errors.

    Raises:
        ConnectError: the server could not be reached.
    """
    budget = min(2.0, config.connect_timeout)
    nc = StrictTlsClient()
    try:
        # One attempt per server: nats-py retries a refused first connection for ever
        # unless the attempts are bounded (allow_reconnect alone does not stop it).
        options: dict[str, Any] = {
            "servers": config.servers,
            "name": "troupe-ping",
            "user": config.user,
            "password": config.password,
            "token": config.token,
            "user_credentials": config.creds,
            "inbox_prefix": config.inbox_prefix,
            "connect_timeout": budget,
            "allow_reconnect": False,
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0.05,
            "error_cb": _quiet,
            **tls_options(config),
        }
        await asyncio.wait_for(
            nc.connect(**options),
            timeout=budget * (len(config.servers) + 1),
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        # A refused first attempt leaves nats-py's socket open: close it here.
        await abandon(nc)
        raise ConnectError(f"cannot reach NATS at {config.url} ({type(exc).__name__})") from None
    counts: dict[str, int] = {}
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.PING", b"", reply=inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=remaining)
            except nats.errors.TimeoutError:
                break
            try:
                name = json.loads(msg.data).get("name", "?")
            except ValueError:
                continue  # the server's "no responders" status, or a non-micro reply
            counts[name] = counts.get(name, 0) + 1
    except (OSError, nats.errors.Error) as exc:
        # The server went away mid-ping (it is being restarted, say).
        detail = str(exc) or type(exc).__name__
        raise ConnectError(f"lost NATS at {config.url} while pinging ({detail})") from None
    finally:
        await nc.close()
    return counts


def workspaces_for(state_dir: Path) -> Path:
    """The workspace root of a troupe's pipeline runners: its own, under the temp directory.

    Workspaces are named by workflow id, and two troupes on one machine may run
    workflows of the same id; keyed by the state directory, they never share one.
    """
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"troupe-workspaces-{digest}"


class Troupe:
    """A running troupe.

    Args:
        actors: the actors to run: built-in names or :class:`Member` entries.
        state_dir: JetStream files, logs and secrets.
        port: port of the embedded server.
        nats_url: use this running server instead of starting one.
        env: base environment of the actor processes.
        grace: seconds actors get to drain on stop.
        topology: streams, buckets and consumers to create (as ``admin``) on the
            embedded server before any actor starts.
        tls: the embedded server requires TLS (certificates from the state
            directory's local CA); actors and clients verify it with that CA.
        server_config: configuration file of the embedded server (troupe's
            ``nats.conf`` by default).
    """

    def __init__(
        self,
        actors: Sequence[str | Member],
        *,
        state_dir: Path,
        port: int = 4222,
        nats_url: str | None = None,
        env: Mapping[str, str] | None = None,
        grace: float = 15.0,
        tls: bool = False,
        topology: Topology | None = None,
        server_config: Path | None = None,
    ) -> None:
        self.members = tuple(m if isinstance(m, Member) else Member.builtin(m) for m in actors)
        # An actor listed n times runs as n processes (replicas); each must answer.
        self.replicas = Counter(m.name for m in self.members)
        self.actors = tuple(self.replicas)
        self.state_dir = Path(state_dir)
        self.port = port
        self.external_url = nats_url
        self.base_env = dict(os.environ if env is None else env)
        self.server: NatsServer | None = None
        self.supervisor: Supervisor | None = None
        self.grace = grace
        self.tls = tls
        self.topology = topology
        self.server_config = server_config

    @property
    def url(self) -> str:
        """URL clients connect to."""
        if self.external_url:
            return self.external_url
        assert self.server is not None, "troupe not started"
        return self.server.url

    def client_config(self, role: str = "client") -> ConnectionConfig:
        """Connection settings of a client logged in as ``role`` (``client`` by default).

        On an external server no credentials are added (the environment's apply).
        """
        ca = self.server.ca if self.server is not None else None
        user = password_file = None
        if self.server is not None and self.server.use_config:
            user, password_file = role, str(password_path(self.state_dir, role))
        return ConnectionConfig(
            url=self.url,
            name="troupe-cli",
            ca=str(ca) if ca else None,
            user=user,
            password_file=password_file,
        )

    async def bootstrap(self) -> None:
        """Create or migrate :attr:`topology` as ``admin`` on the embedded server."""
        if self.topology is None or self.server is None or not self.server.use_config:
            return
        bus = await Bus.connect(self.client_config(ADMIN).for_client(), name="troupe-init")
        try:
            await apply_topology(bus.js, self.topology)
        finally:
            await bus.close()

    async def start(self) -> None:
        """Start the server (unless external) and every actor process.

        Raises:
            ServerError: the server could not start, or no server answers at the
                external URL within a few seconds.
        """
        passwords: dict[str, str] = {}
        if self.external_url:
            try:
                await probe_server(self.external_url)
            except ConnectError as exc:
                raise ServerError(
                    f"{exc}; start it, or drop --nats-url and unset TROUPE_NATS_URL "
                    "to run the embedded server"
                ) from None
        self.supervisor = Supervisor([], grace=self.grace)
        await self.supervisor.start()
        if not self.external_url:
            await self._start_server()
            assert self.server is not None
            passwords = self.server.passwords
            await self.bootstrap()
        children = []
        seen: Counter[str] = Counter()
        for member in self.members:
            seen[member.name] += 1
            child_name = (
                member.name if seen[member.name] == 1 else f"{member.name}-{seen[member.name]}"
            )
            env = dict(self.base_env)
            for var in _LOGIN_VARS:
                env.pop(var, None)
            env["TROUPE_NATS_URL"] = self.url
            env.setdefault("TROUPE_WORKSPACES", str(workspaces_for(self.state_dir)))
            if self.server is not None and self.server.ca is not None:
                env[CA_ENV] = str(self.server.ca)
            if passwords:
                # The path of the role's password file, never the password itself.
                env.update(login_env(self.state_dir, member.role))
            children.append(
                ChildSpec(
                    name=child_name,
                    argv=(sys.executable, "-m", "actors", "run", member.spec),
                    env=env,
                    log_file=self.state_dir / "logs" / f"{child_name}.log",
                )
            )
        for child in children:
            await self.supervisor.add(child)

    async def _start_server(self, timeout: float = 15.0) -> None:
        """Start the embedded server as a supervised child; wait until it listens.

        Raises:
            ServerError: the binary is missing, the port is taken, or the server
                exited before listening (its log is quoted).
        """
        assert self.supervisor is not None
        self.server = server = NatsServer(
            self.state_dir, port=self.port, tls=self.tls, config=self.server_config
        )
        argv, env = server.command()
        # Forked from the event loop's own thread: the server is tied to the
        # lifetime of the thread that forked it (see actors.runtime.lifeline).
        state = await self.supervisor.add(
            ChildSpec(
                name=SERVER_CHILD,
                argv=tuple(argv),
                env=env,
                log_file=self.state_dir / "logs" / f"{SERVER_CHILD}.out",
                ready=self._server_ready,
                umask=0o077,
                stops_last=True,
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await _listening(server.port):
            if state.restarts or (state.proc is not None and state.proc.returncode is not None):
                raise ServerError(f"nats-server exited ({state.last_exit}): {server.log_tail()}")
            if loop.time() > deadline:
                raise ServerError(
                    f"nats-server did not listen on port {server.port} within {timeout:.0f}s"
                )
            await asyncio.sleep(0.05)

    async def _server_ready(self) -> bool:
        """Whether the (re)started server listens, with its topology in place.

        A restarted server lost its memory-storage streams (agent presence):
        the topology is applied again before the server counts as ready.
        """
        assert self.server is not None
        if not await _listening(self.server.port):
            return False
        assert self.supervisor is not None
        if self.supervisor.children[SERVER_CHILD].restarts:
            await self.bootstrap()
        return True

    def restarts(self) -> dict[str, ChildState]:
        """Every supervised child (the embedded server as ``nats-server``) and its restarts."""
        return dict(self.supervisor.children) if self.supervisor is not None else {}

    async def wait_ready(self, timeout: float = 60.0) -> dict[str, int]:
        """Wait until every actor answers ``$SRV.PING``.

        Raises:
            ServerError: not all actors answered within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        counts: dict[str, int] = {}
        while loop.time() < deadline:
            try:
                counts = await ping_actors(self.client_config(), timeout=0.5)
            except ConnectError:
                counts = {}
            if all(counts.get(name, 0) >= self.replicas[name] for name in self.actors):
                return counts
            await asyncio.sleep(0.2)
        missing = sorted(n for n in self.actors if counts.get(n, 0) < self.replicas[n])
        raise ServerError(
            f"actors not answering after {timeout:.0f}s: {', '.join(missing)} "
            f"(see {self.state_dir / 'logs'})"
        )

    async def wait_ready_or_stop(self, stop: asyncio.Event, timeout: float = 60.0) -> bool:
        """Like :meth:`wait_ready`, but give up as soon as ``stop`` is set.

        Returns:
            ``True`` once every actor answers, ``False`` if ``stop`` was set first.

        Raises:
            ServerError: not all actors answered within ``timeout`` seconds.
        """
        ready = asyncio.ensure_future(self.wait_ready(timeout=timeout))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready, stopped):
                task.cancel()
            await asyncio.gather(ready, stopped, return_exceptions=True)
        if ready.done() and not ready.cancelled():
            ready.result()
            return True
        return False

    async def stop(self) -> None:
        """Stop every actor (drain), then the server."""
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            self.server = None

    async def __aenter__(self) -> Troupe:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
