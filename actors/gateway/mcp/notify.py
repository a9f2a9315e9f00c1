"""Resource subscriptions: tell subscribed MCP clients when a workflow changes.

The status tracker announces every applied change of a workflow on
``troupe.status.updates.<id>``; :class:`Notifier` listens to all of them (one
core-NATS subscription) and, for each view, sends
``notifications/resources/updated`` for the resources it changed:

* to clients of the current protocol through the SDK's subscription bus
  (``subscriptions/listen`` streams filter by URI themselves);
* to clients of earlier protocol versions that called ``resources/subscribe``
  for that URI, through their session.

A view is announced after the tracker stored it, so a client reading the
resource on notification reads the new state. The subscription to the updates
is held only while a client listens or subscribes (:class:`ListenedBus` counts
the listen streams and reports each change): receiving every view of every
workflow for nobody would be the gateway's busiest work on the workflow path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from mcp import types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent
from nats.aio.msg import Msg

from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from protocols.status import TERMINAL_STATES, UPDATES_SUBJECTS, WorkflowView

__all__ = ["ListenedBus", "Notifier", "changed_uris"]

log = logging.getLogger(__name__)

_CODEC: Codec[WorkflowView] = Codec.of(WorkflowView)


def changed_uris(view: WorkflowView) -> list[str]:
    """Return the resources a new view of a workflow changes."""
    base = f"troupe://workflows/{view.workflow_id}"
    uris = [base, f"{base}/history", "troupe://workflows", "troupe://executions"]
    if view.state in TERMINAL_STATES:
        uris.append(f"{base}/result")
    return uris


class ListenedBus(InMemorySubscriptionBus):
    """The SDK's in-memory subscription bus, knowing how many listen streams it feeds.

    Attributes:
        listeners: open ``subscriptions/listen`` streams.
    """

    def __init__(self) -> None:
        super().__init__()
        self.listeners = 0
        self.on_change: Callable[[], None] | None = None
        """Called after :attr:`listeners` changed."""

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        """Register ``listener``; return an idempotent unsubscribe callable."""
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        self._changed()
        subscribed = True

        def once() -> None:
            nonlocal subscribed
            if subscribed:
                subscribed = False
                self.listeners -= 1
                self._changed()
            unsubscribe()

        return once


class Notifier:
    """Follows workflow updates and notifies the subscribers of changed resources.

    Args:
        bus: connection to listen on.
        subscriptions: the MCP server's subscription bus (current protocol).
    """

    def __init__(self, bus: Bus, subscriptions: ListenedBus) -> None:
        self._bus = bus
        self._subscriptions = subscriptions
        self._legacy: dict[str, weakref.WeakSet[Connection]] = {}
        self._sub: Any = None
        self._started = False
        self._turn = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    @staticmethod
    def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
        # ``ctx.session`` is a proxy made for one request; a subscription lives as long
        # as the client's connection, which is held weakly so a gone client is dropped.
        connection: Connection = ctx.session._connection
        return connection

    @property
    def subscribers(self) -> int:
        """Sessions subscribed through ``resources/subscribe`` (earlier protocol versions)."""
        return sum(len(sessions) for sessions in self._legacy.values())

    @property
    def listening(self) -> bool:
        """Whether any client listens or subscribes, so that updates are worth reading."""
        return self._subscriptions.listeners > 0 or bool(self._legacy)

    @property
    def reading(self) -> bool:
        """Whether the updates subscription is held now."""
        return self._sub is not None

    async def start(self) -> None:
        """Follow workflow updates from now on, whenever a client listens or subscribes."""
        self._started = True
        self._subscriptions.on_change = self._changed
        await self._follow()

    async def stop(self) -> None:
        """Stop following updates."""
        self._started = False
        self._subscriptions.on_change = None
        for task in list(self._pending):
            task.cancel()
        await self._follow()

    def _changed(self) -> None:
        task = asyncio.ensure_future(self._follow())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _follow(self) -> None:
        """Hold the updates subscription exactly while it is started and someone listens."""
        async with self._turn:
            wanted = self._started and self.listening
            if wanted and self._sub is None:
                try:
                    self._sub = await self._bus.nc.subscribe(UPDATES_SUBJECTS, cb=self._on_update)
                except Exception as exc:  # noqa: BLE001 - the bus is down: nothing to notify
                    log.warning("cannot follow workflow updates: %s", exc)
            elif not wanted and self._sub is not None:
                sub, self._sub = self._sub, None
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """Handle ``resources/subscribe``: remember the session for that URI."""
        self._legacy.setdefault(str(params.uri), weakref.WeakSet()).add(self._connection(ctx))
        await self._follow()
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        """Handle ``resources/unsubscribe``."""
        sessions = self._legacy.get(str(params.uri))
        if sessions is not None:
            sessions.discard(self._connection(ctx))
            if not sessions:
                self._legacy.pop(str(params.uri), None)
        await self._follow()
        return types.EmptyResult()

    async def _on_update(self, msg: Msg) -> None:
        if not self.listening:
            return
        try:
            view = _CODEC.decode(msg.data, encoding_of(msg.headers))
        except BadRequest:
            log.debug("skipped an undecodable workflow update on %s", msg.subject)
            return
        await self.announce(view)

    async def announce(self, view: WorkflowView) -> None:
        """Notify every subscriber of the resources ``view`` changed."""
        for uri in changed_uris(view):
            await self._subscriptions.publish(ResourceUpdated(uri=uri))
            for connection in list(self._legacy.get(uri, ())):
                try:
                    await connection.send_resource_updated(uri)
                except Exception:  # noqa: BLE001 - a gone client must not stop the others
                    log.debug("dropped the subscription of a closed connection to %s", uri)
                    self._legacy.get(uri, weakref.WeakSet()).discard(connection)
        if view.state in TERMINAL_STATES:
            # A finished workflow's resources do not change again.
            base = f"troupe://workflows/{view.workflow_id}"
            for uri in (base, f"{base}/history", f"{base}/result"):
                self._legacy.pop(uri, None)
            if not self.listening:
                self._changed()
