"""Core-NATS handler runtimes: request/reply endpoints and event listeners.

* :class:`EndpointRuntime` answers requests: a body that does not decode gets
  a ``bad_request`` :class:`~protocols.errors.ErrorReply`; a
  :class:`~actors.runtime.errors.RequestError` becomes its typed reply; any
  other exception becomes ``internal`` with a generic message.
* :class:`ListenerRuntime` handles core-NATS events (no acknowledgement).

Both serve a subscription with bounded concurrent tasks, keep the counters
``$SRV.STATS`` reports and run the failure hook after the reply (see
:mod:`actors.runtime.dispatch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.trace import INVALID_SPAN, Span

from actors.runtime import telemetry
from actors.runtime.clock import Clock, system_clock
from actors.runtime.codec import (
    Codec,
    Encoding,
    encode,
    encoding_of,
    exchange_headers,
    headers_for,
)
from actors.runtime.connection import Connection
from actors.runtime.dispatch import FailureHook, Handler, Stats, _Tasks, notify
from actors.runtime.errors import BadRequest, RequestError
from actors.runtime.handlers import EndpointSpec, ListenerSpec, RequestContext
from protocols import headers as h

__all__ = ["EndpointRuntime", "ListenerRuntime"]

log = logging.getLogger(__name__)

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""The headers of a request that came without any."""


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
        clock: Clock = system_clock,
    ) -> None:
        self.stats = Stats(actor=actor, destination=subject)
        self._nc = nc
        self._subject = subject
        self._queue_group = queue_group
        self._handler = handler
        self._codec: Codec[Any] = Codec.of(message_type)
        self._actor = actor
        self._on_failure = on_failure
        self._tasks = _Tasks(concurrency, clock)
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe (in the queue group, if any), served directly on troupe's connection."""
        self._sub = await self._nc.subscribe(
            self._subject, queue=self._queue_group, cb=self._on_msg
        )
        if isinstance(self._nc, Connection):
            self._nc.serve_directly(self._sub._id, self._take)

    async def stop(self, grace: float) -> None:
        """Stop taking messages, serve those already received, wait for handlers."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await self._sub.drain()  # type: ignore[no-untyped-call]
            if isinstance(self._nc, Connection):
                self._nc.stop_serving_directly(self._sub._id)
            self._sub = None
        await self._tasks.settle(grace)

    def _take(self, msg: Msg) -> bool:
        return self._tasks.try_run(self._serve, msg)

    async def _on_msg(self, msg: Msg) -> None:
        await self._tasks.run(self._serve(msg))

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
        clock: Clock = system_clock,
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
            clock=clock,
        )
        self.spec = spec

    async def _serve(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.stats.num_requests += 1
        headers: Mapping[str, str] | None = msg.headers
        if headers is None:
            # A MessagePack request without a trace: the common case between actors.
            encoding: Encoding = h.MSGPACK
            headers = _NO_HEADERS
            if not telemetry.recording():
                await self._answer(msg, headers, encoding, started, INVALID_SPAN)
                return
        else:
            encoding = encoding_of(headers)
        with telemetry.process_span(msg.subject, headers, kind="server", actor=self._actor) as span:
            await self._answer(msg, headers, encoding, started, span)

    async def _answer(
        self, msg: Msg, headers: Mapping[str, str], encoding: Encoding, started: int, span: Span
    ) -> None:
        error: RequestError | None = None
        failure: Exception | None = None
        reply: Any = None
        try:
            request = self._codec.decode(msg.data, encoding)
            ctx = RequestContext(subject=msg.subject, headers=headers, encoding=encoding)
            reply = await self._handler(request, ctx)
        except RequestError as exc:
            error = exc
        except Exception as exc:
            log.exception("%s: handler for %s failed", self._actor, self.spec.subject)
            error = RequestError("internal error", code="internal")
            failure = exc
        if error is not None:
            span.set_attribute("error.type", error.code)
        if msg.reply:
            # Inline (no helper coroutine): this is the request hot path.
            try:
                if error is None:
                    answer = encode(reply, encoding)
                    headers_out = exchange_headers(encoding) if encoding != h.MSGPACK else None
                    await self._nc.publish(msg.reply, answer, headers=headers_out)
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
        if failure is not None:
            # After the reply: a slow or raising hook never delays or breaks it.
            await notify(self._on_failure, failure, self._actor)


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
        clock: Clock = system_clock,
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
            clock=clock,
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
                await notify(self._on_failure, exc, self._actor)
                return
        self.stats.record(started)
