"""The embedded nats-server with troupe's nats.conf: roles, permissions, secrets."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from actors.runtime.errors import ServerError
from actors.runtime.server import NatsServer, default_config_path, load_secrets
from actors.runtime.testing import eventually, nats_server

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
        auth = {"user": role, "password": server.passwords[f"TROUPE_{role.upper()}_PASSWORD"]}
    return await nats.connect(server.url, error_cb=on_error, allow_reconnect=False, **auth)


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
        try:
            await sub.next_msg(timeout=1.0)
        except nats.errors.TimeoutError:
            await eventually(lambda: _any(errors), timeout=2.0)
            assert any("permissions violation" in str(e).lower() for e in errors), errors
            return False
        return True
    finally:
        await publisher.close()
        await admin.close()


async def _any(items: list[Exception]) -> bool:
    return bool(items)


async def test_client_without_credentials_may_submit_tasks(configured: NatsServer) -> None:
    """The anonymous client role can publish troupe.tasks.submit."""
    assert await _delivered(configured, None, "troupe.tasks.submit")


async def test_client_without_credentials_may_not_run_pipelines(configured: NatsServer) -> None:
    """The anonymous client role cannot publish troupe.pipelines.run."""
    assert not await _delivered(configured, None, "troupe.pipelines.run")


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
    """Role passwords are kept in secrets.env (0600) and reused on the next start."""
    first = load_secrets(tmp_path)
    second = load_secrets(tmp_path)
    assert first == second
    assert set(first) >= {"TROUPE_CLIENT_PASSWORD", "TROUPE_ADMIN_PASSWORD"}
    assert len(set(first.values())) == len(first)
    mode = stat.S_IMODE((tmp_path / "secrets.env").stat().st_mode)
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
