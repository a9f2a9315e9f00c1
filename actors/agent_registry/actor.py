"""The agent registry actor: keeps the live index and answers find and list.

It watches the agents bucket (see :mod:`actors.agent_registry.store`), so
its index is rebuilt from the bucket alone after a restart; publishes
:class:`~protocols.agents.AgentJoined` on an agent's first heartbeat and
:class:`~protocols.agents.AgentLeft` when its key is deleted (clean
deregistration) or expires (the server's marker, or the registry's own
sweep shortly after the TTL). It also dead-letters inbox messages that waited
longer than the inbox retention for an agent that never came back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from actors.agent_registry.config import RegistryConfig
from actors.agent_registry.janitor import InboxJanitor
from actors.agent_registry.state import AgentIndex
from actors.agent_registry.store import HeartbeatWatch, PresenceEvent
from actors.runtime.actor import Actor
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.handlers import RequestContext, endpoint
from actors.topology import AGENT_INBOX, AGENTS
from protocols.agents import (
    FIND_SUBJECT,
    JOINED_SUBJECT,
    LEFT_SUBJECT,
    LIST_SUBJECT,
    AgentJoined,
    AgentLeft,
    AgentList,
    FindAgents,
    ListAgents,
)

__all__ = ["AgentRegistry"]

log = logging.getLogger(__name__)


class AgentRegistry(Actor):
    """Live index of the agents heartbeating into the agents bucket.

    Args:
        clock: time source (presence, sweeps).
        config: presence settings; read from ``TROUPE_AGENTS_*`` variables by default.
    """

    name = "agent_registry"
    description = "Agent discovery: live index of heartbeats, find by capability"
    buckets = (AGENTS,)
    streams = (AGENT_INBOX,)

    def __init__(
        self, *, clock: Clock = system_clock, config: RegistryConfig | None = None
    ) -> None:
        super().__init__(clock=clock)
        self.config = config or RegistryConfig.from_env()
        self.index = AgentIndex(
            suspect_after=self.config.suspect_after, expiry_grace=self.config.expiry_grace_s
        )
        self.joined = 0
        self.left = 0
        self._watch: HeartbeatWatch | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def on_start(self) -> None:
        """Rebuild the index from the bucket, then follow it and sweep expired agents."""
        self.index.clear()
        self._watch = HeartbeatWatch(self.bus.js, self._apply)
        await self._watch.start(self.config.snapshot_timeout_s)
        log.info("agent registry: %d agents in the bucket", len(self.index))
        janitor = InboxJanitor(
            self.bus.js,
            self.index,
            retention_s=self.config.inbox_retention_s,
            clock=self.clock,
        )
        self._tasks = [
            asyncio.create_task(self._sweep(), name="agents-sweep"),
            asyncio.create_task(
                janitor.run(self.config.janitor_interval_s), name="agents-inbox-janitor"
            ),
        ]

    async def on_stop(self) -> None:
        """Stop sweeping and watching."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Index size, suspects and join/leave counters, on the ``find`` endpoint's stats."""
        now = self.clock.monotonic()
        return {
            "find": {
                "agents": len(self.index),
                "suspect": sum(1 for v in self.index.views(now) if v.presence == "suspect"),
                "joined": self.joined,
                "left": self.left,
            }
        }

    @endpoint(FIND_SUBJECT, name="find")
    async def find(self, request: FindAgents, ctx: RequestContext) -> AgentList:
        """Agents offering a capability at a minimum version, least-loaded first."""
        return AgentList(agents=self.index.find(request, self.clock.monotonic()))

    @endpoint(LIST_SUBJECT, name="list")
    async def list_agents(self, request: ListAgents, ctx: RequestContext) -> AgentList:
        """Every agent in the index, by id."""
        return AgentList(agents=self.index.views(self.clock.monotonic()))

    async def _apply(self, event: PresenceEvent) -> None:
        now = self.clock.monotonic()
        if event.kind == "put":
            assert event.info is not None
            seen_at = now
            if event.snapshot:
                # A rebuilt entry is as old as the server says, capped by its TTL.
                age = min(max(0.0, self.clock.time() - event.stored_at), event.info.ttl_s)
                seen_at = now - age
            change = self.index.heartbeat(event.info, seen_at)
            if change == "joined" and not event.snapshot:
                self.joined += 1
                await self._publish(JOINED_SUBJECT, AgentJoined(info=event.info))
            return
        if event.snapshot:
            return
        reason: Literal["expired", "deregistered"] = (
            "deregistered" if event.kind == "delete" else "expired"
        )
        await self._depart(event.agent_id, reason)

    async def _depart(self, agent_id: str, reason: Literal["expired", "deregistered"]) -> None:
        if self.index.remove(agent_id) is None:
            return
        self.left += 1
        log.info("agent %s left (%s)", agent_id, reason)
        await self._publish(
            LEFT_SUBJECT, AgentLeft(agent_id=agent_id, reason=reason, at=self.clock.time())
        )

    async def _publish(self, subject: str, event: AgentJoined | AgentLeft) -> None:
        try:
            await self.bus.publish(subject, event)
        except Exception as exc:  # noqa: BLE001 - events are best effort; the bucket is the truth
            log.warning("cannot publish %s: %s", subject, exc)

    async def _sweep(self) -> None:
        # The bucket's expiry marker normally reports a departure; this catches
        # an agent whose marker is late or was missed (e.g. during a reconnect).
        while True:
            await self.clock.sleep(self.config.sweep_interval_s)
            for agent_id in self.index.expired(self.clock.monotonic()):
                await self._depart(agent_id, "expired")
