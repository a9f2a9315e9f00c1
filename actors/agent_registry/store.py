"""Reading the agents bucket: a watch that turns its entries into presence events.

:class:`HeartbeatWatch` runs an ordered consumer over the bucket's stream
(last value per key first, then every change) and calls back with a
:class:`PresenceEvent` per entry: a heartbeat (``put``), a clean
deregistration (``delete``) or an expiry (``purge``: the marker the server
places when a key's TTL runs out). Nothing else is needed to know who is
present, so a restarted reader rebuilds its view from the bucket alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api

from protocols.agents import AGENTS_BUCKET, AgentInfo

__all__ = ["HeartbeatWatch", "PresenceEvent", "heartbeat_subject"]

log = logging.getLogger(__name__)

_KV_OP = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"
_decoder = msgspec.msgpack.Decoder(AgentInfo)


def heartbeat_subject(agent_id: str, bucket: str = AGENTS_BUCKET) -> str:
    """Return the subject of ``agent_id``'s key in the agents bucket."""
    return f"$KV.{bucket}.{agent_id}"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """One entry of the agents bucket.

    Attributes:
        kind: ``put`` (heartbeat), ``delete`` (deregistered) or ``purge`` (expired).
        agent_id: the key.
        info: the heartbeat, for ``put``.
        stored_at: server Unix time of the entry.
        snapshot: part of the bucket's state when the watch started.
    """

    kind: Literal["put", "delete", "purge"]
    agent_id: str
    info: AgentInfo | None
    stored_at: float
    snapshot: bool


def _event_of(msg: Msg, prefix: str, snapshot: bool) -> PresenceEvent | None:
    agent_id = msg.subject[len(prefix) :]
    headers = msg.headers or {}
    stored_at = msg.metadata.timestamp.timestamp()
    op = headers.get(_KV_OP)
    if op is None and _MARKER_REASON in headers:
        # nats-server 2.11+ marks a TTL/max-age expiry with a reason, not an operation.
        op = "DEL" if headers[_MARKER_REASON] == "Remove" else "PURGE"
    if op == "DEL":
        return PresenceEvent("delete", agent_id, None, stored_at, snapshot)
    if op == "PURGE":
        return PresenceEvent("purge", agent_id, None, stored_at, snapshot)
    try:
        info = _decoder.decode(msg.data)
    except msgspec.DecodeError as exc:
        log.warning("agents bucket: ignoring malformed heartbeat under %s: %s", agent_id, exc)
        return None
    if info.agent_id != agent_id:
        log.warning(
            "agents bucket: heartbeat of %s stored under %s; ignored", info.agent_id, agent_id
        )
        return None
    return PresenceEvent("put", agent_id, info, stored_at, snapshot)


class HeartbeatWatch:
    """Watch the agents bucket and call ``on_event`` for every entry, in order.

    Args:
        js: JetStream context.
        on_event: awaited for each event; events are delivered one at a time.
        bucket: bucket name.
    """

    def __init__(
        self,
        js: JetStreamContext,
        on_event: Callable[[PresenceEvent], Awaitable[None]],
        *,
        bucket: str = AGENTS_BUCKET,
    ) -> None:
        self._js = js
        self._on_event = on_event
        self._bucket = bucket
        self._prefix = f"$KV.{bucket}."
        self._sub: Subscription | None = None
        self.ready = asyncio.Event()
        """Set once the bucket's state at start has been delivered."""

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe and wait until the bucket's current state has been delivered.

        Raises:
            TimeoutError: the current state did not arrive within ``timeout`` seconds.
        """
        self._sub = await self._js.subscribe(
            f"{self._prefix}>",
            stream=f"KV_{self._bucket}",
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT,
            # A crashed watcher's server-side consumer is cleaned up after this long.
            inactive_threshold=60.0,
            # The default pending limit would drop heartbeats of a large troupe.
            pending_msgs_limit=1_000_000,
        )
        info = await self._sub.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        if info.num_pending == 0 and not delivered:
            self.ready.set()
        async with asyncio.timeout(timeout):
            await self.ready.wait()

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        snapshot = not self.ready.is_set()
        event = _event_of(msg, self._prefix, snapshot)
        if event is not None:
            try:
                await self._on_event(event)
            except Exception:
                log.exception("agents bucket: handling %s of %s failed", event.kind, event.agent_id)
        if snapshot and msg.metadata.num_pending == 0:
            self.ready.set()
