"""The registry actor on a real nats-server: discovery, departures, matching, scale."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest
from actors.runtime.testing import eventually
from actors.sdk import Agent
from protocols.agents import (
    FIND_SUBJECT,
    LIST_SUBJECT,
    AgentJoined,
    AgentLeft,
    AgentList,
    FindAgents,
    ListAgents,
)

pytestmark = pytest.mark.integration

INTERVAL = 0.25


async def find(bus: Bus, capability: str, **fields: object) -> list[str]:
    reply = await bus.request(FIND_SUBJECT, FindAgents(capability=capability, **fields), AgentList)  # type: ignore[arg-type]
    return [v.info.agent_id for v in reply.agents]


async def listed(bus: Bus) -> AgentList:
    return await bus.request(LIST_SUBJECT, ListAgents(), AgentList)


async def test_new_agent_is_found_within_one_heartbeat_interval(
    bus: Bus, registry: AgentRegistry, presence: list[AgentJoined | AgentLeft]
) -> None:
    """An agent that starts is answered by find within one interval, and joined is published."""
    agent = Agent("stats-1", capabilities=["text.stats@1.2"], interval=INTERVAL)
    started = time.monotonic()
    async with agent.running(bus):
        await eventually(lambda: find(bus, "text.stats"), timeout=INTERVAL + 0.5, interval=0.01)
        assert time.monotonic() - started < INTERVAL + 0.5
        await eventually(lambda: _async(any(isinstance(e, AgentJoined) for e in presence)))


async def test_clean_shutdown_publishes_left_deregistered(
    bus: Bus, registry: AgentRegistry, presence: list[AgentJoined | AgentLeft]
) -> None:
    """Stopping an agent deletes its key: it leaves at once with reason deregistered."""
    agent = Agent("stats-1", capabilities=["text.stats"], interval=INTERVAL)
    async with agent.running(bus):
        await eventually(lambda: find(bus, "text.stats"))
    left = await eventually(lambda: _async([e for e in presence if isinstance(e, AgentLeft)]))
    assert left[0].agent_id == "stats-1"
    assert left[0].reason == "deregistered"
    assert await find(bus, "text.stats") == []


async def test_silent_agent_is_suspect_then_leaves_within_ttl_and_one_interval(
    bus: Bus, registry: AgentRegistry, presence: list[AgentJoined | AgentLeft]
) -> None:
    """Heartbeats stop: suspect after one missed beat, gone (expired) within TTL + interval."""
    agent = Agent("mute", capabilities=["text.stats"], interval=INTERVAL, ttl_multiple=4)
    await agent.start(bus)
    await eventually(lambda: find(bus, "text.stats"))
    assert agent._beat is not None
    agent._beat.cancel()  # the process hangs: no heartbeat, no deregistration
    silenced = time.monotonic()
    await eventually(
        lambda: _async(
            [v for v in registry.index.views(registry.clock.monotonic()) if v.presence == "suspect"]
        ),
    )
    left = await eventually(
        lambda: _async([e for e in presence if isinstance(e, AgentLeft)]),
        interval=0.01,
    )
    assert time.monotonic() - silenced <= agent.ttl + INTERVAL + 0.5
    assert left[0].reason == "expired"
    assert (await listed(bus)).agents == []
    agent._heartbeats = None  # nothing to deregister
    await agent.stop(grace=0.1)


async def test_find_orders_by_load_and_filters_versions_and_labels(
    bus: Bus, registry: AgentRegistry
) -> None:
    """Matching honours minimum versions (numerically) and labels; least-loaded comes first."""
    agents = [
        Agent("old", capabilities=["summarize@1.9"], interval=INTERVAL),
        Agent(
            "new-busy",
            capabilities=["summarize@1.10"],
            interval=INTERVAL,
            capacity=2,
            labels={"zone": "eu"},
        ),
        Agent(
            "new-idle",
            capabilities=["summarize@2"],
            interval=INTERVAL,
            capacity=2,
            labels={"zone": "us"},
        ),
    ]
    for agent in agents:
        await agent.start(bus)
    try:
        agents[1]._load = 2  # reported in its next heartbeat
        await agents[1].heartbeat()
        await eventually(
            lambda: _async((e := registry.index.get("new-busy")) is not None and e.info.load == 2)
        )
        found = await find(bus, "summarize")
        assert set(found[:2]) == {"old", "new-idle"}
        assert found[2] == "new-busy"
        assert await find(bus, "summarize", min_version="1.10") == ["new-idle", "new-busy"]
        assert await find(bus, "summarize", labels={"zone": "eu"}) == ["new-busy"]
        assert await find(bus, "translate") == []
        agents[1]._load = 0
    finally:
        for agent in agents:
            await agent.stop()


async def test_malformed_find_gets_a_typed_error(bus: Bus, registry: AgentRegistry) -> None:
    """A query with an invalid minimum version is answered with bad_request."""
    with pytest.raises(BadRequest):
        await bus.request(
            FIND_SUBJECT,
            {"type": "troupe.agents.v1.find", "capability": "x", "min_version": "newest"},
            AgentList,
        )


async def test_index_stays_exact_with_200_agents_heartbeating(
    bus: Bus, registry: AgentRegistry
) -> None:
    """200 agents in one process: the index holds exactly them, then exactly the survivors."""
    agents = [
        # A 10 s lease: the loop of one process beating for 200 may lag on a busy machine.
        Agent(f"swarm-{i:03d}", capabilities=["swarm"], interval=1.0, ttl_multiple=10)
        for i in range(200)
    ]
    await asyncio.gather(*(a.start(bus) for a in agents))
    try:
        expected = {a.agent_id for a in agents}
        await eventually(lambda: _async(registry.index.ids() == expected))
        for _ in range(3):  # across several heartbeat rounds nobody flickers out
            await asyncio.sleep(1.0)
            views = (await listed(bus)).agents
            assert {v.info.agent_id for v in views} == expected
            assert all(v.presence == "live" for v in views)
        await asyncio.gather(*(a.stop(grace=0.1) for a in agents[100:]))
        survivors = {a.agent_id for a in agents[:100]}
        await eventually(lambda: _async(registry.index.ids() == survivors))
        assert len(await find(bus, "swarm", limit=1000)) == 100
        assert registry.left == 100
    finally:
        await asyncio.gather(*(a.stop(grace=0.1) for a in agents[:100]))


async def _async(value: object) -> object:
    return value
