"""What other actors, the SDK and the CLI use of the agent registry.

Typed calls to its request subjects (:func:`find_agents`, :func:`list_agents`),
the local view of the agents bucket (:class:`PresenceFeed` for an actor, :class:`HeartbeatWatch`
elsewhere, feeding an :class:`AgentIndex`), capability parsing and the dispatch settings. Pure wire
helpers (heartbeat key and subject, inbox subject and durable name) live in
:mod:`protocols.agents`.
"""

from __future__ import annotations

from actors.agent_registry.config import DispatchConfig
from actors.agent_registry.state import AgentIndex, capability_list, parse_requirement
from actors.agent_registry.store import (
    HeartbeatWatch,
    PresenceEvent,
    PresenceFeed,
    presence_event,
)
from actors.runtime.bus import Bus
from protocols.agents import FIND_SUBJECT, LIST_SUBJECT, AgentList, FindAgents, ListAgents

__all__ = [
    "AgentIndex",
    "DispatchConfig",
    "HeartbeatWatch",
    "PresenceEvent",
    "PresenceFeed",
    "capability_list",
    "find_agents",
    "list_agents",
    "parse_requirement",
    "presence_event",
]


async def find_agents(bus: Bus, query: FindAgents, *, timeout: float = 5.0) -> AgentList:
    """Ask the registry for agents matching ``query``, least-loaded first.

    Raises:
        RequestError: the registry answered with an error, or did not answer.
    """
    return await bus.request(FIND_SUBJECT, query, AgentList, timeout=timeout)


async def list_agents(bus: Bus, *, timeout: float = 5.0) -> AgentList:
    """Ask the registry for every agent it knows, by id.

    Raises:
        RequestError: the registry answered with an error, or did not answer.
    """
    return await bus.request(LIST_SUBJECT, ListAgents(), AgentList, timeout=timeout)
