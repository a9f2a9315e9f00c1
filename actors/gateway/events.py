"""Live workflow events for SSE and WebSocket followers, resumable without a gap.

Events are the status stream's messages (:data:`~protocols.status.STATUS_STREAM`);
each carries its stream sequence, which is the SSE event id. :class:`EventHub`
reads the stream once (one ordered consumer from "now") and fans every event out
to the followers in memory, so a thousand followers cost one consumer. The
consumer exists only while someone follows (and ``idle_s`` after the last one
left, so reconnecting clients do not recreate it): a gateway nobody watches
receives none of the workflows' events.

A follower first registers with the hub (buffering live events), then replays
what the stream already holds after its starting point (its ``Last-Event-ID``,
or the start of the workflow's history), then drains the buffer, skipping what
the replay covered: every event arrives once, in stream order, with no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from protocols.status import (
    EVENTS_SUBJECTS,
    STATUS_STREAM,
    TERMINAL_STATES,
    StatusEvent,
    WorkflowTransition,
    event_subject,
)

__all__ = ["EventHub", "StreamedEvent", "is_final"]

log = logging.getLogger(__name__)

_CODEC: Codec[StatusEvent] = Codec.of(StatusEvent)


class StreamedEvent(msgspec.Struct, frozen=True):
    """One status event with its stream sequence.

    Attributes:
        seq: status stream sequence (the event id).
        workflow_id: the workflow it belongs to.
        event: the decoded event.
    """

    seq: int
    workflow_id: str
    event: StatusEvent

    def to_json(self) -> dict[str, Any]:
        """Return ``{"seq", "event"}`` as JSON-ready builtins."""
        return {"seq": self.seq, "event": msgspec.to_builtins(self.event)}


def is_final(event: StreamedEvent) -> bool:
    """Whether ``event`` moved its workflow into a terminal state."""
    return isinstance(event.event, WorkflowTransition) and event.event.state in TERMINAL_STATES


def _decode(msg: Msg) -> StreamedEvent | None:
    try:
        event = _CODEC.decode(msg.data, encoding_of(msg.headers))
    except BadRequest:
        log.debug("skipped an undecodable status event on %s", msg.subject)
        return None
    return StreamedEvent(msg.metadata.sequence.stream, event.workflow_id, event)


class _Follower:
    def __init__(self, workflow_id: str | None, limit: int) -> None:
        self.workflow_id = workflow_id
        self.queue: asyncio.Queue[StreamedEvent | None] = asyncio.Queue(limit)
        self.overflowed = False

    def offer(self, event: StreamedEvent) -> None:
        if self.workflow_id is not None and event.workflow_id != self.workflow_id:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    """Fan-out of the status stream to in-memory followers.

    Args:
        js: JetStream context of the gateway.
        buffer: events a slow follower may fall behind by before it is cut off
            (it reconnects with ``Last-Event-ID`` and loses nothing).
        replay_timeout: seconds a replay may take.
        idle_s: seconds the stream is still read after the last follower left.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        buffer: int = 10_000,
        replay_timeout: float = 30.0,
        idle_s: float = 30.0,
    ) -> None:
        self._js = js
        self._buffer = buffer
        self._replay_timeout = replay_timeout
        self._idle_s = idle_s
        self._followers: set[_Follower] = set()
        self._sub: Any = None
        self._reading = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def followers(self) -> int:
        """How many followers are attached."""
        return len(self._followers)

    @property
    def reading(self) -> bool:
        """Whether the hub holds its consumer on the status stream now."""
        return self._sub is not None

    async def start(self) -> None:
        """Make the hub ready; the stream is read once someone follows."""
        self._stopped = False

    async def stop(self) -> None:
        """Stop reading and end every follower."""
        self._stopped = True
        self._cancel_idle()
        async with self._reading:
            await self._unsubscribe()
        if self._closing:
            await asyncio.wait(set(self._closing))
        for follower in list(self._followers):
            with contextlib.suppress(asyncio.QueueFull):
                follower.queue.put_nowait(None)

    async def ensure_reading(self) -> None:
        """Read the stream from now on, if the hub does not already.

        A door calls this before it answers a follower's request, so a client
        that acts once its stream is open (submits a workflow, say) finds its
        events already read. Without a follower the consumer goes after ``idle_s``.
        """
        async with self._reading:
            if self._sub is None and not self._stopped:
                self._sub = await self._js.subscribe(
                    EVENTS_SUBJECTS,
                    stream=STATUS_STREAM,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                    cb=self._on_msg,
                )
        if not self._followers and self._idle is None:
            self._arm_idle()

    async def _attach(self, follower: _Follower) -> None:
        """Register ``follower`` and make sure the stream is read from now on."""
        self._cancel_idle()
        self._followers.add(follower)
        await self.ensure_reading()

    def _detach(self, follower: _Follower) -> None:
        """Drop ``follower``; the last one out lets the stream go after ``idle_s``."""
        self._followers.discard(follower)
        if not self._followers:
            self._cancel_idle()
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self._sub is not None and not self._stopped:
            self._idle = asyncio.get_running_loop().call_later(self._idle_s, self._release)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _release(self) -> None:
        self._idle = None
        task = asyncio.get_running_loop().create_task(self._release_if_idle())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _release_if_idle(self) -> None:
        async with self._reading:
            if not self._followers:
                await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        if not self._followers:
            return  # a follower that registers later replays what it needs from the stream
        event = _decode(msg)
        if event is None:
            return
        for follower in list(self._followers):
            follower.offer(event)

    async def now(self) -> int:
        """The status stream's last sequence: ``follow(None, after=now)`` starts here."""
        return await self._last_seq(EVENTS_SUBJECTS)

    async def _last_seq(self, subject: str) -> int:
        """Return the stream sequence of the last event on ``subject`` (0: none)."""
        try:
            info = await self._js.stream_info(STATUS_STREAM)
            if subject == EVENTS_SUBJECTS:
                return int(info.state.last_seq or 0)
            found = await self._js.get_msg(STATUS_STREAM, subject=subject)
        except nats.js.errors.NotFoundError:
            return 0
        return int(found.seq or 0)

    async def _replay(self, subject: str, after: int, until: int) -> AsyncIterator[StreamedEvent]:
        if until <= after:
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
        )
        sub = await self._js.subscribe(
            subject, stream=STATUS_STREAM, ordered_consumer=True, config=config
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._replay_timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"replay of {subject} not read in time")
                try:
                    msg = await sub.next_msg(timeout=remaining)
                except nats.errors.TimeoutError:
                    continue
                seq = msg.metadata.sequence.stream
                if seq > until:
                    break
                event = _decode(msg)
                if event is not None:
                    yield event
                if seq >= until or msg.metadata.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def history(self, workflow_id: str) -> AsyncIterator[StreamedEvent]:
        """Yield every event the status stream holds for ``workflow_id``, oldest first."""
        subject = event_subject(workflow_id)
        until = await self._last_seq(subject)
        async for event in self._replay(subject, 0, until):
            yield event

    async def follow(
        self, workflow_id: str | None, *, after: int | None = None
    ) -> AsyncIterator[StreamedEvent]:
        """Yield the events of ``workflow_id`` (``None``: every workflow), in stream order.

        Args:
            workflow_id: the workflow, or ``None`` for the firehose.
            after: resume after this sequence (a ``Last-Event-ID``); ``None``
                replays the workflow's whole history (the firehose starts now).

        A workflow's stream ends after its terminal transition. Ends early
        (the client should reconnect with the last id it saw) when the
        follower fell :attr:`buffer` events behind.
        """
        subject = EVENTS_SUBJECTS if workflow_id is None else event_subject(workflow_id)
        follower = _Follower(workflow_id, self._buffer)
        try:
            # Reading live events first, then asking where the stream ends, leaves no gap.
            await self._attach(follower)
            until = await self._last_seq(subject)
            start = after if after is not None else (0 if workflow_id else until)
            last = start
            async for event in self._replay(subject, start, until):
                last = event.seq
                yield event
                if workflow_id is not None and is_final(event):
                    return
            last = max(last, until)
            while True:
                item = await follower.queue.get()
                if item is None:
                    return
                if item.seq <= last:
                    continue
                last = item.seq
                yield item
                if workflow_id is not None and is_final(item):
                    return
        finally:
            self._detach(follower)
