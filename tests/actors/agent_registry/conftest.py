"""Fixtures for the agent registry: a running registry, and a recorder of presence events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.agent_registry.config import RegistryConfig
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from protocols.agents import JOINED_SUBJECT, LEFT_SUBJECT, AgentJoined, AgentLeft
from protocols.headers import EVENT_ENCODING

FAST = RegistryConfig(sweep_interval_s=0.05, expiry_grace_s=0.2, janitor_interval_s=0.2)
"""Presence settings for tests: quick sweeps."""


@pytest.fixture
async def registry(bus: Bus) -> AsyncIterator[AgentRegistry]:
    """An agent registry running in this process on the per-test server."""
    actor = AgentRegistry(config=FAST)
    async with actor.running(bus):
        yield actor


@pytest.fixture
async def presence(bus: Bus) -> AsyncIterator[list[AgentJoined | AgentLeft]]:
    """Every AgentJoined / AgentLeft published, in order of arrival (read as JSON)."""
    seen: list[AgentJoined | AgentLeft] = []
    codec = Codec.of(AgentJoined | AgentLeft)

    async def record(msg: object) -> None:
        seen.append(codec.decode(msg.data, EVENT_ENCODING))  # type: ignore[attr-defined]

    subs = [await bus.nc.subscribe(s, cb=record) for s in (JOINED_SUBJECT, LEFT_SUBJECT)]
    await bus.nc.flush()
    try:
        yield seen
    finally:
        for sub in subs:
            await sub.unsubscribe()
