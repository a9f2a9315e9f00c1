"""The embedded nats-server with troupe's nats.conf: roles, permissions, secrets."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import nats.aio.client
import pytest

from actors.runtime import Actor, Bus, ConnectionConfig, RequestContext, endpoint
from actors.runtime.access import render_config
from actors.runtime.bootstrap import apply_topology
from actors.runtime.errors import ServerError, TopologyMissing
from actors.runtime.server import (
    NatsServer,
    default_config_path,
    ephemeral_low,
    free_port,
    load_secrets,
    role_password_var,
)
from actors.runtime.testing import connect_once, eventually, nats_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def configured() -> Iterator[NatsServer]:
    """One server running troupe's nats.conf for this module."""
    with nats_server(with_config=True) as server:
        yield server


async def _connect(server: NatsServer, role: str | None, errors: list[Exception]):  # type: ignore[no-untyped-def]
    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    auth = {}
    if role is not None:
        auth = {
            "user": role,
            "password": server.passwords[f"TROUPE_{role.upper()}_PASSWORD"],
            "inbox_prefix": f"_INBOX_{role}",
        }
    return await connect_once(server.url, error_cb=on_error, **auth)


async def _delivered(server: NatsServer, publisher_role: str | None, subject: str) -> bool:
    """Publish on ``subject`` as ``publisher_role``; return whether an admin saw it."""
    errors: list[Exception] = []
    admin = await _connect(server, "admin", errors)
    publisher = await _connect(server, publisher_role, errors)
    try:
        sub = await admin.subscribe(subject)
        await admin.flush()
        await publisher.publish(subject, b"{}")
        await publisher.flush()

        async def outcome() -> str | None:
            # Whichever comes first: the message, or the server's permissions error.
            if errors:
                return "denied"
            try:
                await sub.next_msg(timeout=0.2)
            except nats.errors.TimeoutError:
                return None
            return "delivered"

        seen = await eventually(outcome, timeout=30.0, what=f"{subject} delivered or denied")
        if seen == "denied":
            assert any("permissions violation" in str(e).lower() for e in errors), errors
            return False
        return True
    finally:
        await publisher.close()
        await admin.close()


async def _any(items: list[Exception]) -> bool:
    return bool(items)


async def test_a_connection_without_credentials_is_refused(configured: NatsServer) -> None:
    """The credential-less identity is off: no user, no login."""
    nc = nats.aio.client.Client()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nc.connect(
                configured.url, allow_reconnect=False, max_reconnect_attempts=1, error_cb=_ignore
            )
    finally:
        await nc.close()


async def _ignore(exc: Exception) -> None:
    """Connection errors are asserted on by the caller."""


async def test_client_may_submit_tasks(configured: NatsServer) -> None:
    """The client role can publish troupe.tasks.submit."""
    assert await _delivered(configured, "client", "troupe.tasks.submit")


async def test_client_may_not_run_pipelines(configured: NatsServer) -> None:
    """The client role cannot publish troupe.pipelines.run."""
    assert not await _delivered(configured, "client", "troupe.pipelines.run")


@pytest.mark.parametrize("subject", ["troupe.breakers.control", "troupe.pipelines.cache.clear"])
async def test_operator_actions_need_the_operator_role(
    configured: NatsServer, subject: str
) -> None:
    """Breaker control and cache clear are open to operator, not to client."""
    assert not await _delivered(configured, "client", subject)
    assert await _delivered(configured, "operator", subject)


async def test_task_manager_role_may_run_pipelines(configured: NatsServer) -> None:
    """The task manager's own subjects are open to it."""
    assert await _delivered(configured, "task_manager", "troupe.pipelines.run")


async def test_status_tracker_role_may_not_submit_pipelines(configured: NatsServer) -> None:
    """An actor role cannot publish another concern's subjects."""
    assert not await _delivered(configured, "status_tracker", "troupe.pipelines.run")


def test_config_flushes_jetstream_writes_before_acknowledging() -> None:
    """nats.conf sets sync_interval: always."""
    lines = [line.split("#")[0].strip() for line in default_config_path().read_text().splitlines()]
    assert "sync_interval: always" in lines


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    """Role passwords are kept in one 0600 file per role and reused on the next start."""
    first = load_secrets(tmp_path)
    second = load_secrets(tmp_path)
    assert first == second
    assert set(first) >= {"TROUPE_CLIENT_PASSWORD", "TROUPE_ADMIN_PASSWORD"}
    assert len(set(first.values())) == len(first)
    mode = stat.S_IMODE((tmp_path / "secrets" / "admin.password").stat().st_mode)
    assert mode == 0o600


def test_starting_on_a_taken_port_fails_clearly(configured: NatsServer, tmp_path: Path) -> None:
    """A second server on the same port raises ServerError naming the port."""
    with pytest.raises(ServerError, match=str(configured.port)):
        NatsServer(tmp_path, port=configured.port).start()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    """Stopping twice, or a server never started, is harmless."""
    server = NatsServer(tmp_path, port=0, use_config=False)
    server.stop()
    server.start()
    server.stop()
    server.stop()
    assert server.proc is None


class Hello(msgspec.Struct, frozen=True):
    """Request and reply of :class:`Greeter`."""

    who: str = "world"


class Greeter(Actor):
    """A user actor serving one troupe.ext subject."""

    name = "greeter"

    @endpoint("troupe.ext.greeter.hello", name="hello")
    async def hello(self, request: Hello, ctx: RequestContext) -> Hello:
        """Greet."""
        return Hello(who=f"hello {request.who}")


async def test_actor_role_may_serve_its_micro_service_and_ext_subjects(
    configured: NatsServer,
) -> None:
    """A user actor logged in as ``actor`` binds to the topology admin created, then answers
    $SRV.PING and a troupe.ext request."""
    admin = ConnectionConfig(
        url=configured.url, user="admin", password=configured.passwords["TROUPE_ADMIN_PASSWORD"]
    )
    async with await Bus.connect(admin) as bus:
        await apply_topology(bus.js, Greeter().topology())
    password = configured.passwords[role_password_var("actor")]
    config = ConnectionConfig(url=configured.url, user="actor", password=password)
    async with await Bus.connect(config) as bus, Greeter().running(bus):
        client = await _connect(configured, "client", [])
        try:
            pong = await client.request("$SRV.PING.greeter", b"", timeout=5)
            assert json.loads(pong.data)["name"] == "greeter"
            reply = await client.request(
                "troupe.ext.greeter.hello",
                b'{"who": "troupe"}',
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
            assert json.loads(reply.data)["who"] == "hello troupe"
        finally:
            await client.close()


async def test_client_role_may_not_register_a_micro_service(configured: NatsServer) -> None:
    """Without the actor role a process cannot subscribe to $SRV.PING (why user actors need it)."""
    errors: list[Exception] = []
    client = await _connect(configured, "client", errors)
    try:
        await client.subscribe("$SRV.PING")
        await client.flush()
        await eventually(lambda: _any(errors))
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await client.close()


@pytest.mark.parametrize(
    "subject", ["troupe.tasks.submit", "troupe.pipelines.run", "$KV.troupe-agents.x", "$JS.API.>"]
)
async def test_actor_role_may_not_act_for_others(configured: NatsServer, subject: str) -> None:
    """The actor role cannot submit, run pipelines, heartbeat as an agent or use the JS API."""
    target = "$JS.API.STREAM.LIST" if subject == "$JS.API.>" else subject
    assert not await _delivered(configured, "actor", target)


def test_packaged_nats_conf_is_generated_from_the_role_table() -> None:
    """The shipped nats.conf is exactly what the role table renders (regenerate, never edit)."""
    assert default_config_path().read_text() == render_config()


def test_packaged_nats_conf_is_the_only_server_config() -> None:
    """One nats.conf: the packaged one; no other file in the repository claims to be it."""
    repo = Path(__file__).resolve().parents[3]
    assert default_config_path() == repo / "actors" / "runtime" / "nats.conf"
    tracked = subprocess.run(
        ["git", "ls-files", "*nats.conf"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == ["actors/runtime/nats.conf"]
    for path in repo.glob("deploy/**/*.conf"):
        for line in path.read_text().splitlines():
            if line.startswith("include"):
                assert line.split()[1] == "./nats.conf", (path, line)


async def test_an_actor_on_a_troupe_server_binds_and_names_what_is_missing(
    tmp_path: Path,
) -> None:
    """Without ``troupe init`` an actor does not create its stream: it fails naming it."""
    with NatsServer(tmp_path, port=0) as server:
        password = server.passwords[role_password_var("actor")]
        config = ConnectionConfig(url=server.url, user="actor", password=password)
        async with await Bus.connect(config) as bus:
            with pytest.raises(TopologyMissing, match=r"TROUPE_DLQ.*troupe init"):
                await Greeter().start(bus)


def test_free_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    """No outgoing connection can take a port handed out before its server binds it."""
    low = ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(1024 < p < low for p in ports), [p for p in ports if p >= low]
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
