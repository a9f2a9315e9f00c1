"""Shared fixtures: a real nats-server per test module, a connected bus per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.server import NatsServer
from actors.runtime.testing import nats_server

# Every troupe a test starts serves its gateway on a free port, never the default 8765.
os.environ.setdefault("TROUPE_GATEWAY_PORT", "0")


@pytest.fixture(scope="module")
def nats_module_server() -> Iterator[NatsServer]:
    """A JetStream nats-server on a free loopback port, shared by one test module."""
    with nats_server() as server:
        yield server


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A fresh JetStream nats-server on a free loopback port for one test."""
    with nats_server() as srv:
        yield srv


@pytest.fixture
def nats_url(server: NatsServer) -> str:
    """URL of the per-test server."""
    return server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A connected bus on the per-test server."""
    b = await Bus.connect(ConnectionConfig(url=nats_url, connect_timeout=5.0))
    try:
        yield b
    finally:
        await b.close()
