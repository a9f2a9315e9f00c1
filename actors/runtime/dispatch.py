"""Dispatch of incoming messages to handlers: decode first, then call, then settle.

* :class:`EndpointRuntime` answers requests: a body that does not decode gets
  a ``bad_request`` :class:`~protocols.errors.ErrorReply`; a
  :class:`~actors.runtime.errors.RequestError` becomes its typed reply; any
  other exception becomes ``internal`` with a generic message.
* :class:`ConsumerRuntime` runs a durable pull consumer: acknowledge after the
  handler returns, ``nak`` with backoff when it raises, ``in_progress`` while it
  runs, and terminate-and-copy to the dead-letter subject when the message does
  not decode or keeps failing. On shutdown it stops fetching, lets running
  handlers finish within the grace period and hands the rest back.
* :class:`ListenerRuntime` handles core-NATS events (no acknowledgement).

Each keeps the counters ``$SRV.STATS`` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api

from actors.runtime import telemetry
from actors.runtime.codec import Codec, encode, encoding_of, headers_for
from actors.runtime.eager import start_eagerly
from actors.runtime.errors import BadRequest, DeadLetter, RequestError, RetryLater
from actors.runtime.handlers import (
    ConsumerSpec,
    EndpointSpec,
    ListenerSpec,
    MessageContext,
    RequestContext,
)
from protocols import headers as h
from protocols.errors import dead_letter_subject

__all__ = ["ConsumerRuntime", "EndpointRuntime", "ListenerRuntime", "Stats"]

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Awaitable[Any]]
FailureHook = Callable[[BaseException], Awaitable[None]]


@dataclass(slots=True)
class Stats:
    """Counters of one handler, in the NATS micro ``$SRV.STATS`` shape."""

    num_requests: int = 0
    num_errors: int = 0
    processing_time_ns: int = 0
    last_error: str = ""

    def record(self, started_ns: int, error: str | None = None) -> None:
        """Count one handled message that started at ``started_ns``."""
        self.processing_time_ns += time.perf_counter_ns() - started_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error

    @property
    def average_ns(self) -> int:
        """Average processing time in nanoseconds."""
        return self.processing_time_ns // self.num_requests if self.num_requests else 0


class _Tasks:
    """A bounded set of running handler tasks."""

    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.running: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in an acquired slot (started eagerly, see :mod:`.eager`)."""
        try:
            task = start_eagerly(coro)
        except BaseException:
            self.slots.release()
            raise
        if task is None:
            self.slots.release()
            return
        self.running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self.slots.release()

    async def settle(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for running tasks, cancel the rest; return how
        many were cancelled."""
        if not self.running:
            return 0
        _, pending = await asyncio.wait(set(self.running), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        return len(pending)


class _SubscriptionRuntime:
    """A core-NATS subscription whose messages are served by bounded concurrent tasks."""

    def __init__(
        self,
        nc: Client,
        subject: str,
        queue_group: str,
        handler: Handler,
        message_type: Any,
        *,
        actor: str,
        on_failure: FailureHook,
        concurrency: int,
    ) -> None:
        self.stats = Stats()
        self._nc = nc
        self._subject = subject
        self._queue_group = queue_group
        self._handler = handler
        self._codec: Codec[Any] = Codec.of(message_type)
        self._actor = actor
        self._on_failure = on_failure
        self._tasks = _Tasks(concurrency)
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe (in the queue group, if any)."""
        self._sub = await self._nc.subscribe(
            self._subject, queue=self._queue_group, cb=self._on_msg
        )

    async def stop(self, grace: float) -> None:
        """Stop taking messages, serve those already received, wait for handlers."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await self._sub.drain()  # type: ignore[no-untyped-call]
            self._sub = None
        await self._tasks.settle(grace)

    async def _on_msg(self, msg: Msg) -> None:
        await self._tasks.slots.acquire()
        self._tasks.spawn(self._serve(msg))

    async def _serve(self, msg: Msg) -> None:
        raise NotImplementedError


class EndpointRuntime(_SubscriptionRuntime):
    """Serves one request/reply endpoint in a queue group."""

    def __init__(
        self,
        nc: Client,
        spec: EndpointSpec,
        handler: Handler,
        request_type: Any,
        *,
        actor: str,
        on_failure: FailureHook,
    ) -> None:
        super().__init__(
            nc,
            spec.subject,
            spec.queue_group,
            handler,
            request_type,
            actor=actor,
            on_failure=on_failure,
            concurrency=spec.concurrency,
        )
        self.spec = spec

    async def _serve(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.stats.num_requests += 1
        encoding = encoding_of(msg.headers)
        headers = msg.headers or {}
        error: RequestError | None = None
        reply: Any = None
        with telemetry.process_span(msg.subject, headers, kind="server", actor=self._actor) as span:
            try:
                request = self._codec.decode(msg.data, encoding)
                ctx = RequestContext(subject=msg.subject, headers=headers, encoding=encoding)
                reply = await self._handler(request, ctx)
            except RequestError as exc:
                error = exc
            except Exception as exc:
                log.exception("%s: handler for %s failed", self._actor, self.spec.subject)
                error = RequestError("internal error", code="internal")
                await self._on_failure(exc)
            if error is not None:
                span.set_attribute("error.type", error.code)
        if not msg.reply:
            self.stats.record(started, error.code if error else None)
            return
        try:
            if error is None:
                await self._nc.publish(
                    msg.reply, encode(reply, encoding), headers=headers_for(encoding) or None
                )
            else:
                err_headers = headers_for(encoding)
                err_headers[h.ERROR_CODE] = _micro_code(error)
                err_headers[h.ERROR_DESCRIPTION] = error.message
                await self._nc.publish(
                    msg.reply, encode(error.to_reply(), encoding), headers=err_headers
                )
        except (nats.errors.Error, OSError) as exc:
            log.warning("%s: cannot reply on %s: %s", self._actor, self.spec.subject, exc)
        self.stats.record(started, error.code if error else None)


_MICRO_CODES = {
    "bad_request": "400",
    "not_found": "404",
    "conflict": "409",
    "forbidden": "403",
    "rejected": "422",
    "timeout": "504",
    "unavailable": "503",
}
"""NATS micro error codes (HTTP-like) of each :data:`~protocols.errors.ErrorCode`."""


def _micro_code(error: RequestError) -> str:
    return _MICRO_CODES.get(error.code, "500")


class ListenerRuntime(_SubscriptionRuntime):
    """Handles core-NATS events on one subject."""

    def __init__(
        self,
        nc: Client,
        spec: ListenerSpec,
        handler: Handler,
        message_type: Any,
        *,
        actor: str,
        on_failure: FailureHook,
        concurrency: int = 16,
    ) -> None:
        super().__init__(
            nc,
            spec.subject,
            spec.queue_group or "",
            handler,
            message_type,
            actor=actor,
            on_failure=on_failure,
            concurrency=concurrency,
        )
        self.spec = spec

    async def _serve(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.stats.num_requests += 1
        headers = msg.headers or {}
        encoding = encoding_of(headers)
        with telemetry.process_span(msg.subject, headers, kind="consumer", actor=self._actor):
            try:
                event = self._codec.decode(msg.data, encoding)
            except BadRequest as exc:
                log.warning(
                    "%s: dropped malformed event on %s: %s", self._actor, msg.subject, exc.message
                )
                self.stats.record(started, "bad_request")
                return
            try:
                await self._handler(
                    event, RequestContext(subject=msg.subject, headers=headers, encoding=encoding)
                )
            except Exception as exc:
                log.exception("%s: listener for %s failed", self._actor, msg.subject)
                self.stats.record(started, type(exc).__name__)
                await self._on_failure(exc)
                return
        self.stats.record(started)


class ConsumerRuntime:
    """Runs one durable pull consumer."""

    fetch_timeout = 0.5
    """Seconds one fetch waits for messages; bounds how long shutdown waits for the loop
    (an idle consumer costs two tiny pull requests a second)."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        message_type: Any,
        *,
        actor: str,
        on_failure: FailureHook,
    ) -> None:
        self.spec = spec
        self.stats = Stats()
        self.dead_lettered = 0
        self.redeliveries = 0
        self._js = js
        self._handler = handler
        self._codec: Codec[Any] = Codec.of(message_type)
        self._actor = actor
        self._on_failure = on_failure
        self._tasks = _Tasks(spec.concurrency)
        self._stopping = asyncio.Event()
        self._fetching = False
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def subject(self) -> str:
        """The subject filter (or the stream's first subject)."""
        return self.spec.filter_subject or self.spec.stream.subjects[0]

    async def start(self) -> None:
        """Create or update the durable consumer and start fetching."""
        spec = self.spec
        config = js_api.ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=spec.ack_wait,
            # One delivery beyond ours: a message that crashed the process on its last
            # allowed delivery still comes back once, to be dead-lettered unhandled.
            max_deliver=spec.max_deliver + 1,
            filter_subject=spec.filter_subject,
            max_ack_pending=spec.max_ack_pending,
            deliver_policy=js_api.DeliverPolicy.ALL,
        )
        await self._js.add_consumer(spec.stream.name, config)
        sub = await self._js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream.name)
        self._sub = sub
        self._loop = asyncio.create_task(self._fetch_loop(sub), name=f"consume-{spec.durable}")

    async def stop(self, grace: float) -> int:
        """Stop fetching, give running handlers ``grace`` seconds, hand back the rest.

        Returns:
            How many in-flight messages were handed back unfinished.
        """
        self._stopping.set()
        loop, self._loop = self._loop, None
        if loop is not None:
            if not self._fetching:
                # Waiting for a free slot, not for messages: nothing is in flight.
                loop.cancel()
            # A fetch in progress returns within fetch_timeout; what it brings is
            # handled (or handed back) below like any other in-flight message.
            _, pending = await asyncio.wait({loop}, timeout=self.fetch_timeout + 2.0)
            for task in pending:
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        handed_back = await self._tasks.settle(grace)
        sub, self._sub = self._sub, None
        if sub is not None:
            # Unsubscribe (not drain): late pull replies have no reader and would
            # stall a drain of the whole connection.
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError, OSError):
                await sub.unsubscribe()
        return handed_back

    async def _fetch_loop(self, sub: JetStreamContext.PullSubscription) -> None:
        failures = 0
        while not self._stopping.is_set():
            await self._tasks.slots.acquire()
            batch = 1
            while batch < self.spec.concurrency and not self._tasks.slots.locked():
                await self._tasks.slots.acquire()
                batch += 1
            if self._stopping.is_set():
                for _ in range(batch):
                    self._tasks.slots.release()
                return
            msgs: list[Msg] = []
            failed = False
            self._fetching = True
            try:
                msgs = await sub.fetch(batch, timeout=self.fetch_timeout)
                failures = 0
            except nats.errors.TimeoutError:
                pass
            except asyncio.CancelledError:
                for _ in range(batch):
                    self._tasks.slots.release()
                raise
            except (nats.errors.Error, OSError) as exc:
                failed = True
                failures += 1
                log.warning("%s: fetch from %s failed: %s", self._actor, self.spec.stream.name, exc)
            finally:
                self._fetching = False
            for _ in range(batch - len(msgs)):
                self._tasks.slots.release()
            for msg in msgs:
                self._tasks.spawn(self._process(msg))
            if failed:
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _process(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.stats.num_requests += 1
        headers = msg.headers or {}
        meta = msg.metadata
        delivered = meta.num_delivered
        if delivered > 1:
            self.redeliveries += 1
        with telemetry.process_span(msg.subject, headers, kind="consumer", actor=self._actor):
            if delivered > self.spec.max_deliver:
                await self._dead_letter(msg, f"gave up after {delivered - 1} deliveries")
                self.stats.record(started, "max_deliver")
                return
            try:
                message = self._codec.decode(msg.data, encoding_of(headers))
            except BadRequest as exc:
                await self._dead_letter(msg, exc.message)
                self.stats.record(started, "bad_request")
                return
            ctx = MessageContext(
                subject=msg.subject,
                headers=headers,
                stream=meta.stream,
                sequence=meta.sequence.stream,
                num_delivered=delivered,
                msg=msg,
            )
            ticker = asyncio.create_task(self._keep_alive(msg))
            error: str | None = None
            try:
                await self._handler(message, ctx)
            except RetryLater as exc:
                await _settle(msg.nak(delay=exc.delay))
            except DeadLetter as exc:
                error = "dead_letter"
                await self._dead_letter(msg, exc.reason)
            except asyncio.CancelledError:
                # Shutdown ran out of grace: hand the message back at once.
                await _settle(msg.nak())
                raise
            except Exception as exc:
                error = type(exc).__name__
                log.exception(
                    "%s: handler for %s failed (delivery %d)", self._actor, msg.subject, delivered
                )
                await self._on_failure(exc)
                if delivered >= self.spec.max_deliver:
                    await self._dead_letter(
                        msg, f"handler failed {delivered} times, last with {error}"
                    )
                else:
                    await _settle(msg.nak(delay=self.spec.delay_after(delivered)))
            else:
                await _settle(msg.ack())
            finally:
                ticker.cancel()
        self.stats.record(started, error)

    async def _keep_alive(self, msg: Msg) -> None:
        interval = max(0.5, self.spec.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            await _settle(msg.in_progress())

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """Copy ``msg`` to the dead-letter subject with ``reason``, then terminate it.

        If the copy cannot be stored the message is handed back instead, so a
        message is never dropped.
        """
        headers = dict(msg.headers or {})
        headers.pop(h.MSG_ID, None)
        headers[h.DEAD_LETTER_REASON] = reason[:1024]
        headers[h.DEAD_LETTER_SUBJECT] = msg.subject
        headers[h.DEAD_LETTER_STREAM] = self.spec.stream.name
        headers[h.DEAD_LETTER_DELIVERIES] = str(msg.metadata.num_delivered)
        try:
            await self._js.publish(
                dead_letter_subject(self.spec.stream.name), msg.data, headers=headers
            )
        except (nats.errors.Error, OSError) as exc:
            log.error("%s: dead-letter copy failed (%s); handing message back", self._actor, exc)
            await _settle(msg.nak(delay=self.spec.delay_after(msg.metadata.num_delivered)))
            return
        self.dead_lettered += 1
        log.warning(
            "%s: dead-lettered %s seq %d: %s",
            self._actor,
            msg.subject,
            msg.metadata.sequence.stream,
            reason,
        )
        await _settle(msg.term())


async def _settle(call: Awaitable[None]) -> None:
    """Send an ack/nak/term; a closed connection means the server redelivers anyway."""
    try:
        await call
    except (nats.errors.Error, OSError) as exc:
        log.debug("acknowledgement not sent: %s", exc)
