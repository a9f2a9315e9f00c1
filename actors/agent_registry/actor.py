"""The agent registry actor: keeps the live index and answers find and list.

It watches the agents bucket (a typed watch handler, see
:mod:`actors.agent_registry.store`), so its index is rebuilt from the bucket
alone after a restart — find and list wait for that rebuild; publishes
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
from actors.agent_registry.store import PresenceEvent, PresenceFeed
from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.errors import Unavailable
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
from protocols.headers import EVENT_ENCODING

__all__ = ["AgentRegistry"]

log = logging.getLogger(__name__)


class AgentRegistry(Actor):
    """Live index of the agents heartbeating into the agents bucket.

    Args:
        clock: time source (presence, sweeps).
        config: presence settings; read from ``TROUPE_AGENTS_*`` variables by default.
    """

    name = "agent_registry"
    event_loop = "uvloop"
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
        self.presence = PresenceFeed(self._apply)
        """The watch of the agents bucket; ``presence.caught_up`` once the index is rebuilt."""

    async def on_start(self) -> None:
        """Rebuild the index from the bucket, then follow it and sweep expired agents."""
        self.index.clear()
        await self.presence.attach(self, name="heartbeats")
        janitor = InboxJanitor(
            self.bus.js,
            self.index,
            retention_s=self.config.inbox_retention_s,
            clock=self.clock,
        )
        self.spawn(self._sweep(), name="agents-sweep")
        self.spawn(janitor.run(self.config.janitor_interval_s), name="agents-inbox-janitor")

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Index size, suspects and join/leave counters, on the ``find`` endpoint's stats."""
        now = self.clock.monotonic()
        return {
            "find": {
                "agents": len(self.index),
                "suspect": self.index.suspects(now),
                "joined": self.joined,
                "left": self.left,
            }
        }

    @endpoint(FIND_SUBJECT, name="find")
    async def find(self, request: FindAgents, ctx: RequestContext) -> AgentList:
        """Agents offering a capability at a minimum version, least-loaded first."""
        await self._rebuilt()
        return AgentList(agents=self.index.find(request, self.clock.monotonic()))

    @endpoint(LIST_SUBJECT, name="list")
    async def list_agents(self, request: ListAgents, ctx: RequestContext) -> AgentList:
        """Every agent in the index, by id."""
        await self._rebuilt()
        return AgentList(agents=self.index.views(self.clock.monotonic()))

    async def _rebuilt(self) -> None:
        """Wait until the index holds the bucket's state at start.

        Raises:
            Unavailable: the bucket's state did not arrive within the snapshot time-out.
        """
        if self.presence.caught_up.is_set():
            return
        waiter = asyncio.ensure_future(self.presence.caught_up.wait())
        try:
            late = await wait_tasks({waiter}, self.config.snapshot_timeout_s, self.runtime_clock)
        finally:
            waiter.cancel()
        if late:
            raise Unavailable("the agent index is still being rebuilt from the agents bucket")

    async def _apply(self, event: PresenceEvent) -> None:
        now = self.clock.monotonic()
        if event.kind == "put":
            assert event.info is not None
            seen_at = now
            if event.snapshot and event.stored_at is not None:
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
            await self.bus.publish(subject, event, encoding=EVENT_ENCODING)
        except Exception as exc:  # noqa: BLE001 - events are best effort; the bucket is the truth
            log.warning("cannot publish %s: %s", subject, exc)

    async def _sweep(self) -> None:
        # The bucket's expiry marker normally reports a departure; this catches
        # an agent whose marker is late or was missed (e.g. during a reconnect).
        while True:
            await self.clock.sleep(self.config.sweep_interval_s)
            for agent_id in self.index.expired(self.clock.monotonic()):
                await self._depart(agent_id, "expired")
