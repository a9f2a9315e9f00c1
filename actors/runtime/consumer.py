"""The durable pull consumer runtime: acknowledge, retry, keep alive, dead-letter.

:class:`ConsumerRuntime` runs a durable pull consumer: acknowledge after the
handler returns, ``nak`` with backoff when it raises, ``in_progress`` while it
runs (one :class:`~actors.runtime.keepalive.KeepAlive` task per consumer), and
terminate-and-copy to the dead-letter subject when the message does not decode
or keeps failing. On shutdown it stops fetching, lets running handlers finish
within the grace period and hands the rest back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors.runtime import metrics, telemetry
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.dispatch import FailureHook, Handler, Stats, _Running, notify
from actors.runtime.errors import BadRequest, DeadLetter, RetryLater
from actors.runtime.handlers import ConsumerSpec, MessageContext
from actors.runtime.keepalive import KeepAlive, keep_alive_interval
from actors.runtime.pull import Puller
from actors.runtime.topology import open_consumer
from protocols import headers as h
from protocols.errors import dead_letter_subject

__all__ = ["ConsumerRuntime"]

log = logging.getLogger(__name__)


class ConsumerRuntime:
    """Runs one durable pull consumer (messages pulled by a :class:`~.pull.Puller`)."""

    fetch_timeout = 0.5
    """Seconds an open pull request waits for messages before the server ends it; bounds
    how long shutdown waits for it (an idle consumer sends two tiny requests a second)."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        message_type: Any,
        *,
        actor: str,
        on_failure: FailureHook,
        clock: Clock = system_clock,
    ) -> None:
        self.spec = spec
        self.stats = Stats(
            actor=actor, destination=spec.filter_subject or ",".join(spec.stream.subjects)
        )
        self._clock = clock
        self.dead_lettered = 0
        self.redeliveries = 0
        self.handed_back_on_stop = 0
        self._js = js
        self._handler = handler
        self._codec: Codec[Any] = Codec.of(message_type)
        self._actor = actor
        self._on_failure = on_failure
        self.puller = Puller(
            js._nc,
            api_prefix=js._prefix,
            stream=spec.stream.name,
            durable=spec.durable,
            capacity=spec.concurrency,
            expires=self.fetch_timeout,
            deliver=self._deliver,
            clock=clock,
        )
        """Pulls the messages and counts the pull requests."""
        self._tasks = _Running(clock, self.puller.done)
        self.keep_alive = KeepAlive(keep_alive_interval(spec.ack_wait), clock)
        """Touches the messages whose handlers run long."""
        self._stopping = False
        self._started = False
        self._keeper: asyncio.Task[None] | None = None

    @property
    def subject(self) -> str:
        """The subject filter (or the stream's first subject)."""
        return self.spec.filter_subject or self.spec.stream.subjects[0]

    async def start(self) -> None:
        """Bind the durable consumer (created by ``troupe init``) and start pulling.

        Raises:
            TopologyMissing: the consumer does not exist (see
                :func:`~actors.runtime.topology.open_consumer`).
        """
        spec = self.spec
        await open_consumer(self._js._nc, self._js, spec)
        self._keeper = asyncio.create_task(self.keep_alive.run(), name=f"keep-{spec.durable}")
        self._started = True
        await self.puller.start()

    async def stop(self, grace: float) -> int:
        """Stop pulling, give running handlers ``grace`` seconds, hand back the rest.

        Messages the open pull request still brings are handed back at once.

        Returns:
            How many in-flight messages were handed back unfinished.
        """
        self._stopping = True
        handed_back = 0
        if self._started:
            handling = asyncio.ensure_future(self._tasks.settle(grace))
            await self.puller.stop()
            handed_back = await handling
            # Hand-backs of messages that arrived while the open request ended.
            await self._tasks.settle(5.0)
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            await cancel_and_wait(keeper)
        return handed_back + self.handed_back_on_stop

    def _deliver(self, msg: Msg) -> None:
        if self._stopping:
            self.handed_back_on_stop += 1
            self._tasks.spawn(_settle(msg.nak()))
            return
        self._tasks.spawn(self._process(msg))

    async def _process(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.stats.num_requests += 1
        headers = msg.headers or {}
        meta = msg.metadata
        delivered = meta.num_delivered
        if delivered > 1:
            self.redeliveries += 1
        failure: Exception | None = None
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
            self.keep_alive.hold(msg)
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
                failure = exc
                if delivered >= self.spec.max_deliver:
                    await self._dead_letter(
                        msg, f"handler failed {delivered} times, last with {error}"
                    )
                else:
                    await _settle(msg.nak(delay=self.spec.delay_after(delivered)))
            else:
                await _settle(msg.ack())
            finally:
                self.keep_alive.release(msg)
        self.stats.record(started, error)
        if failure is not None:
            await notify(self._on_failure, failure, self._actor)

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
        if metrics.exporting():
            metrics.record_dead_letter(self._actor, self.spec.stream.name)
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
