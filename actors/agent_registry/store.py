"""Reading the agents bucket: its entries as presence events.

The agents bucket is watched with the runtime's typed watch
(:meth:`actors.runtime.actor.Actor.add_watch` over ``Entry[AgentInfo | None]``).
:class:`PresenceFeed` turns each entry into a :class:`PresenceEvent`: a
heartbeat (``put``), a clean deregistration (``delete``) or an expiry
(``purge``: the marker the server places when a key's TTL runs out), and says
whether it belongs to the bucket's state when the watch started.
:class:`HeartbeatWatch` does the same for code that is not an actor handler,
over :meth:`actors.runtime.kv.TypedBucket.watch` directly. Nothing else
is needed to know who is present, so a restarted reader rebuilds its view from
the bucket alone.

A heartbeat may come from any client, JSON or MessagePack (the watch decodes
each value in the encoding its writer named, or sniffs it); one that does not
decode, or that is stored under another agent's key, is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from actors.runtime import Actor, BucketWatch, Bus, Entry, TypedBucket
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.handlers import WatchSpec
from actors.topology import AGENTS
from protocols.agents import AgentInfo

__all__ = ["HeartbeatWatch", "PresenceEvent", "PresenceFeed", "presence_event"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """One entry of the agents bucket.

    Attributes:
        kind: ``put`` (heartbeat), ``delete`` (deregistered) or ``purge`` (expired).
        agent_id: the key.
        info: the heartbeat, for ``put``.
        stored_at: server Unix time of the entry, when the server said.
        snapshot: part of the bucket's state when the watch started.
    """

    kind: Literal["put", "delete", "purge"]
    agent_id: str
    info: AgentInfo | None
    stored_at: float | None
    snapshot: bool


def presence_event(entry: Entry[AgentInfo | None], *, snapshot: bool) -> PresenceEvent | None:
    """Return the presence event of one watched entry, or ``None`` to ignore it.

    Args:
        entry: an entry of the agents bucket.
        snapshot: whether it was part of the bucket's state when the watch started.
    """
    if entry.operation != "put":
        return PresenceEvent(entry.operation, entry.key, None, entry.created, snapshot)
    info = entry.value
    if info is None:
        return None
    if info.agent_id != entry.key:
        log.warning(
            "agents bucket: heartbeat of %s stored under %s; ignored", info.agent_id, entry.key
        )
        return None
    return PresenceEvent("put", entry.key, info, entry.created, snapshot)


class PresenceFeed:
    """Feeds the agents bucket to ``on_event`` as presence events, one at a time.

    Add it to an actor with :meth:`attach` (from ``on_start``);
    :attr:`caught_up` is set once every entry of the bucket's state at start
    has been handed over.

    Args:
        on_event: awaited for each event.
    """

    def __init__(self, on_event: Callable[[PresenceEvent], Awaitable[None]]) -> None:
        self._on_event = on_event
        self.caught_up = asyncio.Event()
        """Set once the bucket's state at start has been delivered."""

    async def attach(self, actor: Actor, *, name: str | None = None) -> WatchSpec:
        """Watch the agents bucket as one of ``actor``'s handlers.

        Returns:
            The watch's spec.
        """
        self.caught_up.clear()
        return await actor.add_watch(
            AGENTS,
            self.on_entry,
            value_type=AgentInfo,
            name=name,
            on_caught_up=self.mark_caught_up,
        )

    async def on_entry(self, entry: Entry[AgentInfo | None]) -> None:
        """Hand one watched entry over as a presence event."""
        event = presence_event(entry, snapshot=not self.caught_up.is_set())
        if event is not None:
            await self._on_event(event)

    async def mark_caught_up(self) -> None:
        """Note that the bucket's state at start has been delivered."""
        self.caught_up.set()


class HeartbeatWatch:
    """Feeds the agents bucket to ``on_event`` outside an actor's handlers.

    For components that are not actors (an actor adds a :class:`PresenceFeed`
    instead, so its watch is one of its handlers): :meth:`start` watches the
    bucket with :meth:`~actors.runtime.kv.TypedBucket.watch` and returns once
    its state at start was delivered; :meth:`stop` ends the watch.

    Args:
        bus: a connected bus.
        on_event: awaited for each event; one that raises is logged.
        clock: time source of the start time-out.
    """

    def __init__(
        self,
        bus: Bus,
        on_event: Callable[[PresenceEvent], Awaitable[None]],
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._bus = bus
        self._on_event = on_event
        self._clock = clock
        self._feed = PresenceFeed(self._guarded)
        self._loop: asyncio.Task[None] | None = None

    @property
    def ready(self) -> asyncio.Event:
        """Set once the bucket's state at start has been delivered."""
        return self._feed.caught_up

    async def start(self, timeout: float = 10.0) -> None:
        """Watch the bucket and wait until its current state has been delivered.

        Raises:
            TimeoutError: the current state did not arrive within ``timeout`` seconds.
        """
        bucket = await TypedBucket.bind(self._bus, AGENTS, AgentInfo)
        watch = await bucket.watch(on_caught_up=self._feed.mark_caught_up)
        self._loop = asyncio.create_task(self._run(watch), name="agents-heartbeat-watch")
        waiter = asyncio.ensure_future(self.ready.wait())
        try:
            late = await wait_tasks({waiter}, timeout, self._clock)
        finally:
            waiter.cancel()
        if late:
            await self.stop()
            raise TimeoutError(f"agents bucket: state not delivered within {timeout:g}s")

    async def stop(self) -> None:
        """End the watch; idempotent."""
        loop, self._loop = self._loop, None
        if loop is not None:
            await cancel_and_wait([loop])

    async def _run(self, watch: BucketWatch[AgentInfo]) -> None:
        async with watch:
            async for entry in watch:
                await self._feed.on_entry(entry)

    async def _guarded(self, event: PresenceEvent) -> None:
        try:
            await self._on_event(event)
        except Exception:
            log.exception("agents bucket: handling %s of %s failed", event.kind, event.agent_id)
