"""A whole troupe on one machine: the embedded nats-server plus every actor as a process.

Used by ``troupe up``, ``troupe demo`` and the end-to-end tests. The server is
started unless a URL of a running one is given; each actor runs as
``python -m actors run NAME`` under a :class:`~actors.runtime.supervisor.Supervisor`,
logged in as its own role when the embedded server (with ``nats.conf``) is used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import nats.errors

from actors.runtime.bus import connect
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import ServerError
from actors.runtime.server import NatsServer, role_env
from actors.runtime.supervisor import ChildSpec, Supervisor

__all__ = ["Troupe", "ping_actors"]


async def ping_actors(config: ConnectionConfig, timeout: float = 1.0) -> dict[str, int]:
    """Send ``$SRV.PING`` and count replies per service name."""
    nc = await connect(config, name="troupe-ping")
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
    finally:
        await nc.close()
    return counts


class Troupe:
    """A running troupe.

    Args:
        actors: names of the actors to run.
        state_dir: JetStream files, logs and secrets.
        port: port of the embedded server.
        nats_url: use this running server instead of starting one.
        env: base environment of the actor processes.
        grace: seconds actors get to drain on stop.
    """

    def __init__(
        self,
        actors: Sequence[str],
        *,
        state_dir: Path,
        port: int = 4222,
        nats_url: str | None = None,
        env: Mapping[str, str] | None = None,
        grace: float = 15.0,
    ) -> None:
        self.actors = tuple(actors)
        self.state_dir = Path(state_dir)
        self.port = port
        self.external_url = nats_url
        self.base_env = dict(os.environ if env is None else env)
        self.server: NatsServer | None = None
        self.supervisor: Supervisor | None = None
        self.grace = grace

    @property
    def url(self) -> str:
        """URL clients connect to."""
        if self.external_url:
            return self.external_url
        assert self.server is not None, "troupe not started"
        return self.server.url

    def client_config(self) -> ConnectionConfig:
        """Connection settings of an unauthenticated client (the ``client`` role)."""
        return ConnectionConfig(url=self.url, name="troupe-cli")

    async def start(self) -> None:
        """Start the server (unless external) and every actor process.

        Raises:
            ServerError: the server could not start.
        """
        passwords: dict[str, str] = {}
        if not self.external_url:
            self.server = NatsServer(self.state_dir, port=self.port)
            # Started from the event loop's own thread: the server is tied to the
            # lifetime of the thread that forked it (see actors.runtime.lifeline).
            self.server.start()
            passwords = self.server.passwords
        children = []
        for name in self.actors:
            env = dict(self.base_env)
            for var in ("TROUPE_NATS_USER", "TROUPE_NATS_PASSWORD", "TROUPE_NATS_TOKEN"):
                env.pop(var, None)
            env["TROUPE_NATS_URL"] = self.url
            if passwords:
                env.update(role_env(name, passwords))
            children.append(
                ChildSpec(
                    name=name,
                    argv=(sys.executable, "-m", "actors", "run", name),
                    env=env,
                    log_file=self.state_dir / "logs" / f"{name}.log",
                )
            )
        self.supervisor = Supervisor(children, grace=self.grace)
        await self.supervisor.start()

    async def wait_ready(self, timeout: float = 60.0) -> dict[str, int]:
        """Wait until every actor answers ``$SRV.PING``.

        Raises:
            ServerError: not all actors answered within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        counts: dict[str, int] = {}
        while loop.time() < deadline:
            counts = await ping_actors(self.client_config(), timeout=0.5)
            if all(counts.get(name) for name in self.actors):
                return counts
            await asyncio.sleep(0.2)
        missing = sorted(n for n in self.actors if not counts.get(n))
        raise ServerError(
            f"actors not answering after {timeout:.0f}s: {', '.join(missing)} "
            f"(see {self.state_dir / 'logs'})"
        )

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
