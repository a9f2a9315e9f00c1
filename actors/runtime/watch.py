"""A typed watch of a KV bucket: an async iterator of :class:`Entry` values.

A :class:`BucketWatch` is a JetStream ordered push consumer on the bucket's
stream. nats-py's ordered consumer re-creates itself from the last seen
revision when heartbeats stop (a reconnect, a restarted server), so a watch
survives reconnects without gaps or repeats. Each message is decoded in the
encoding its writer named in ``Content-Type`` (see
:func:`~actors.runtime.codec.stored_encoding`); a value that does not decode is
logged and skipped, never fatal.

With ``initial=True`` the watch first yields the current value of every live
key (tombstones of deleted keys are skipped), then :attr:`BucketWatch.caught_up`
is set — exactly when the consumer has been handed every initial value — and
the optional ``on_caught_up`` callback runs; updates follow.

:class:`WatchRuntime` runs an actor's watch handler over a watch (see
:meth:`actors.runtime.actor.Actor.add_watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api

from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.codec import Codec, stored_encoding
from actors.runtime.dispatch import FailureHook, Stats, notify
from actors.runtime.errors import BadRequest
from actors.runtime.handlers import WatchSpec

__all__ = ["BucketWatch", "Entry", "Operation", "WatchHandler", "WatchRuntime", "operation_of"]

log = logging.getLogger(__name__)

V = TypeVar("V")

Operation = Literal["put", "delete", "purge"]
"""What a KV revision did to its key."""

_KV_OP = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"


@dataclass(frozen=True, slots=True)
class Entry(Generic[V]):
    """One revision of one key.

    :meth:`~actors.runtime.kv.TypedBucket.get` returns ``Entry[T]`` (always a
    value); a watch yields ``Entry[T | None]`` whose value is ``None`` for a
    delete or purge.

    Attributes:
        bucket: bucket name.
        key: the key.
        value: the decoded value (``None`` for a delete or purge in a watch).
        revision: the bucket's sequence number of this revision.
        operation: ``put``, ``delete`` or ``purge``.
        created: Unix time the revision was stored, when the server said.
    """

    bucket: str
    key: str
    value: V
    revision: int
    operation: Operation = "put"
    created: float | None = None


def operation_of(headers: dict[str, str] | None) -> Operation:
    """Return the KV operation a stored message's headers describe.

    Server-placed expiry markers (``Nats-Marker-Reason``) count as purges
    (``MaxAge``, ``Purge``) or deletes (``Remove``).
    """
    if not headers:
        return "put"
    op = headers.get(_KV_OP)
    if op == "DEL":
        return "delete"
    if op == "PURGE":
        return "purge"
    reason = headers.get(_MARKER_REASON)
    if reason in ("MaxAge", "Purge"):
        return "purge"
    if reason == "Remove":
        return "delete"
    return "put"


_STOP = object()
_CAUGHT_UP = object()


class BucketWatch(Generic[V]):
    """Typed updates of the keys matching a pattern; iterate, then :meth:`close`.

    Created by :meth:`actors.runtime.kv.TypedBucket.watch`; usable as an async
    context manager that closes it.

    Attributes:
        caught_up: set once every initial value has been yielded (at once
            without ``initial``).
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str,
        stream: str,
        prefix: str,
        pattern: str,
        codec: Codec[Any],
        initial: bool = True,
        on_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.caught_up = asyncio.Event()
        self._js = js
        self._bucket = bucket
        self._stream = stream
        self._prefix = prefix
        self._pattern = pattern
        self._codec = codec
        self._initial = initial
        self._on_caught_up = on_caught_up
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._marked = False
        self._closed = False
        self._sub: JetStreamContext.PushSubscription | None = None

    async def start(self) -> BucketWatch[V]:
        """Create the ordered consumer; return ``self``."""
        policy = (
            js_api.DeliverPolicy.LAST_PER_SUBJECT if self._initial else js_api.DeliverPolicy.NEW
        )
        self._sub = await self._js.subscribe(
            f"{self._prefix}{self._pattern}",
            stream=self._stream,
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=policy,
            inactive_threshold=300.0,
        )
        if not self._initial:
            self._mark_caught_up()
            return self
        try:
            info = await self._sub.consumer_info()
        except BaseException:
            await self.close()
            raise
        # Nothing delivered and nothing pending: the bucket had no initial values.
        delivered = info.delivered.consumer_seq if info.delivered else 0
        if info.num_pending == 0 and delivered == 0:
            self._mark_caught_up()
        return self

    def _mark_caught_up(self) -> None:
        if not self._marked:
            self._marked = True
            self._queue.put_nowait(_CAUGHT_UP)

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        headers = msg.headers
        operation = operation_of(headers)
        in_initial = not self._marked
        if operation == "put" or not in_initial:
            value: Any = None
            skip = False
            if operation == "put":
                try:
                    value = self._codec.decode(msg.data, stored_encoding(msg.data, headers))
                except BadRequest as exc:
                    log.warning(
                        "watch of %s: skipped undecodable %s rev %d: %s",
                        self._bucket,
                        msg.subject,
                        meta.sequence.stream,
                        exc.message,
                    )
                    skip = True
            if not skip:
                created = meta.timestamp.timestamp() if meta.timestamp else None
                self._queue.put_nowait(
                    Entry(
                        bucket=self._bucket,
                        key=msg.subject[len(self._prefix) :],
                        value=value,
                        revision=meta.sequence.stream,
                        operation=operation,
                        created=created,
                    )
                )
        if in_initial and meta.num_pending == 0:
            self._mark_caught_up()

    def __aiter__(self) -> AsyncIterator[Entry[V | None]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Entry[V | None]]:
        while True:
            item = await self._queue.get()
            if item is _STOP:
                return
            if item is _CAUGHT_UP:
                self.caught_up.set()
                if self._on_caught_up is not None:
                    await self._on_caught_up()
                continue
            assert isinstance(item, Entry)
            yield item

    async def close(self) -> None:
        """Stop the consumer and end iteration; idempotent."""
        if self._closed:
            return
        self._closed = True
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError, OSError):
                await sub.unsubscribe()
        self._queue.put_nowait(_STOP)

    async def __aenter__(self) -> BucketWatch[V]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


WatchHandler = Callable[[Entry[Any]], Awaitable[None]]
"""``async def h(entry: Entry[T | None]) -> None``."""


class WatchRuntime:
    """Runs a watch handler over a started :class:`BucketWatch`, one entry at a time.

    Counts entries and handler failures like the other handler runtimes, so a
    watch shows up in ``$SRV.STATS``; a failing handler is logged, reported to
    the guarded failure hook, and the watch goes on with the next entry.

    Args:
        spec: what is watched (a :class:`~actors.runtime.handlers.WatchSpec`).
        open_watch: starts the watch (called by :meth:`start`).
        handler: called with every entry.
        actor: actor name for logs.
        on_failure: guarded failure hook.
        clock: time source of the shutdown wait.
    """

    def __init__(
        self,
        spec: WatchSpec,
        open_watch: Callable[[], Awaitable[BucketWatch[Any]]],
        handler: WatchHandler,
        *,
        actor: str,
        on_failure: FailureHook,
        clock: Clock = system_clock,
    ) -> None:
        self.spec = spec
        self.stats = Stats()
        self.watch: BucketWatch[Any] | None = None
        self._open = open_watch
        self._handler = handler
        self._actor = actor
        self._on_failure = on_failure
        self._clock = clock
        self._loop: asyncio.Task[None] | None = None

    @property
    def subject(self) -> str:
        """The bucket subjects watched."""
        return self.spec.subject

    async def start(self) -> None:
        """Start the watch and the loop feeding the handler."""
        self.watch = await self._open()
        self._loop = asyncio.create_task(self._run(self.watch), name=f"watch-{self.spec.name}")

    async def stop(self, grace: float) -> int:
        """Close the watch; let the current entry finish within ``grace`` seconds.

        Returns:
            0 (a watch holds nothing to hand back).
        """
        if self.watch is not None:
            await self.watch.close()
        loop, self._loop = self._loop, None
        if loop is not None and await wait_tasks({loop}, grace, self._clock):
            await cancel_and_wait(loop)
        return 0

    async def _run(self, watch: BucketWatch[Any]) -> None:
        async for entry in watch:
            started = time.perf_counter_ns()
            self.stats.num_requests += 1
            try:
                await self._handler(entry)
            except Exception as exc:
                log.exception("%s: watch handler for %s failed", self._actor, entry.key)
                self.stats.record(started, type(exc).__name__)
                await notify(self._on_failure, exc, self._actor)
            else:
                self.stats.record(started)
