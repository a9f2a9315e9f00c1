"""The agents bucket as any client writes it: JSON or MessagePack heartbeats are both honoured."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.runtime.bus import Bus
from actors.runtime.codec import encode
from actors.runtime.testing import eventually
from protocols import headers as h
from protocols.agents import LIST_SUBJECT, AgentInfo, AgentList, ListAgents, heartbeat_subject

pytestmark = pytest.mark.integration


def _heartbeat(agent_id: str, **extra: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "agent_id": agent_id,
        "name": agent_id,
        "capabilities": [{"name": "text.stats", "version": "1.2"}],
        "inbox": f"troupe.agents.inbox.{agent_id}",
        "started_at": now,
        "heartbeat_at": now,
        **extra,
    }


async def _listed(bus: Bus) -> set[str] | None:
    reply = await bus.request(LIST_SUBJECT, ListAgents(), AgentList)
    return {view.info.agent_id for view in reply.agents} or None


@pytest.mark.parametrize(
    "headers",
    [{h.CONTENT_TYPE: h.JSON, "Nats-TTL": "3"}, {"Nats-TTL": "3"}],
    ids=["with-content-type", "without-content-type"],
)
async def test_json_heartbeat_written_by_a_client_is_listed(
    bus: Bus, registry: AgentRegistry, headers: dict[str, str]
) -> None:
    """A JSON heartbeat without the type tag registers the agent, header or not."""
    body = json.dumps(_heartbeat("json-agent")).encode()
    await bus.js.publish(heartbeat_subject("json-agent"), body, headers=headers)
    assert await eventually(lambda: _listed(bus)) == {"json-agent"}


async def test_msgpack_heartbeat_is_listed_with_or_without_its_header(
    bus: Bus, registry: AgentRegistry
) -> None:
    """MessagePack heartbeats keep working, named or not."""
    for agent_id, headers in (("mp-named", {h.CONTENT_TYPE: h.MSGPACK}), ("mp-bare", None)):
        info = AgentInfo(**_heartbeat(agent_id))
        await bus.js.publish(heartbeat_subject(agent_id), encode(info), headers=headers)

    async def both() -> bool:
        return await _listed(bus) == {"mp-named", "mp-bare"}

    await eventually(both)


async def test_malformed_json_heartbeat_is_ignored_and_the_registry_keeps_serving(
    bus: Bus, registry: AgentRegistry
) -> None:
    """A heartbeat missing required fields registers nothing; a good one after it does."""
    bad = json.dumps({"agent_id": "broken"}).encode()
    await bus.js.publish(heartbeat_subject("broken"), bad, headers={h.CONTENT_TYPE: h.JSON})
    good = json.dumps(_heartbeat("fine")).encode()
    await bus.js.publish(heartbeat_subject("fine"), good, headers={h.CONTENT_TYPE: h.JSON})
    assert await eventually(lambda: _listed(bus)) == {"fine"}
