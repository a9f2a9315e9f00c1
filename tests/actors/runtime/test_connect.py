"""``connect``: a first-connect budget that holds, quiet retries, reconnect only when asked."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from actors.runtime.bus import Bus, connect
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import ConnectError
from actors.runtime.server import NatsServer, free_port
from actors.runtime.testing import eventually, nats_server

pytestmark = pytest.mark.integration

GENEROUS = 15.0
"""Seconds within which a bounded connect must have returned: proof it does not hang."""


async def test_first_connect_gives_up_after_its_budget_and_names_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With nothing listening, connect raises ConnectError naming the URL, without warnings."""
    url = f"nats://127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG, logger="actors.runtime.bus")
    with pytest.raises(ConnectError, match=url):
        await asyncio.wait_for(connect(ConnectionConfig(url=url, connect_timeout=1.0)), GENEROUS)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("connect attempt failed" in r.getMessage() for r in caplog.records)


async def test_first_connect_waits_for_a_server_that_starts_within_the_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An actor may start before its server: connect succeeds once the server is up."""
    port = free_port()
    caplog.set_level(logging.DEBUG, logger="actors.runtime.bus")
    config = ConnectionConfig(url=f"nats://127.0.0.1:{port}", connect_timeout=GENEROUS)
    attempt = asyncio.create_task(connect(config))

    async def refused_once() -> bool:
        return any("connect attempt failed" in r.getMessage() for r in caplog.records)

    await eventually(refused_once, timeout=GENEROUS)
    late = NatsServer(tmp_path, port=port, use_config=False).start()
    try:
        nc = await asyncio.wait_for(attempt, GENEROUS)
        assert nc.is_connected
        await nc.close()
    finally:
        late.stop()


async def test_wrong_credentials_fail_at_once_instead_of_retrying() -> None:
    """An authorization error is final: connect does not spend its budget retrying it."""
    with nats_server(with_config=True) as server:
        config = ConnectionConfig(url=server.url, user="nobody", password="wrong")
        with pytest.raises(ConnectError, match="Authorization"):
            # The budget is far longer than the wait: only an immediate failure passes.
            await asyncio.wait_for(connect(replace(config, connect_timeout=120.0)), GENEROUS)


async def test_a_client_connection_closes_when_its_server_goes_away() -> None:
    """reconnect=False: the connection closes on the first drop instead of retrying."""
    with nats_server() as server:
        client = await connect(ConnectionConfig(url=server.url).for_client())
        actor = await connect(ConnectionConfig(url=server.url, connect_timeout=5.0))
        server.stop()

        async def client_closed() -> bool:
            return client.is_closed

        async def actor_reconnecting() -> bool:
            return actor.is_reconnecting

        await eventually(client_closed, timeout=GENEROUS)
        await eventually(actor_reconnecting, timeout=GENEROUS)
        assert not actor.is_closed
        await actor.close()


async def test_a_bus_closes_cleanly_while_its_connection_reconnects() -> None:
    """Closing during a reconnect neither raises nor hangs: the drain gives way to a close."""
    with nats_server() as server:
        bus = Bus(await connect(ConnectionConfig(url=server.url, connect_timeout=5.0)))
        server.stop()

        async def reconnecting() -> bool:
            return bus.nc.is_reconnecting

        await eventually(reconnecting, timeout=GENEROUS)
        await asyncio.wait_for(bus.close(), GENEROUS)
        assert bus.nc.is_closed


def test_for_client_caps_the_budget_and_turns_reconnecting_off() -> None:
    """Client settings fail fast: a short first-connect budget and no reconnect."""
    actor = ConnectionConfig(url="nats://127.0.0.1:4222")
    client = actor.for_client()
    assert (actor.reconnect, client.reconnect) == (True, False)
    assert client.connect_timeout < actor.connect_timeout
    assert client.url == actor.url
