"""The bus: a NATS connection that speaks troupe messages.

It encodes with msgspec, decodes replies into typed messages (an error reply
becomes the matching :class:`~actors.runtime.errors.RequestError`), carries
the trace context in headers, and publishes to JetStream with de-duplication
ids. It is the one place actors and clients touch ``nats-py`` for messaging.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from actors.runtime import telemetry
from actors.runtime.codec import Codec, Encoding, encode, encoding_of, headers_for
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import ConnectError, RequestError, Unavailable
from actors.runtime.topology import (
    BucketSpec,
    ObjectStoreSpec,
    StreamSpec,
    ensure_bucket,
    ensure_object_store,
    ensure_stream,
)
from protocols import headers as h
from protocols.errors import ErrorReply

__all__ = ["Bus", "connect"]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def connect(config: ConnectionConfig, *, name: str | None = None) -> Client:
    """Open a NATS connection that reconnects for ever once established.

    The first connection is retried with capped backoff for
    ``config.connect_timeout`` seconds, so an actor may start before its server.

    Raises:
        ConnectError: NATS stayed unreachable for ``connect_timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.connect_timeout
    holder: list[Client] = []

    async def disconnected() -> None:
        # A disconnect caused by our own close/drain is not news.
        if holder and not (holder[0].is_closed or holder[0].is_draining):
            log.warning("nats: disconnected, reconnecting")

    delay = 0.05
    last: Exception | None = None
    while True:
        try:
            nc = await nats.connect(
                servers=config.servers,
                name=name or config.name,
                user=config.user,
                password=config.password,
                token=config.token,
                user_credentials=config.creds,
                connect_timeout=max(0.5, min(2.0, deadline - loop.time())),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_log_error,
                disconnected_cb=disconnected,
                reconnected_cb=_log_reconnected,
            )
            holder.append(nc)
            return nc
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            last = exc
        if loop.time() + delay > deadline:
            raise ConnectError(f"cannot reach NATS at {config.url} ({type(last).__name__}: {last})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s: %s", type(exc).__name__, exc)


async def _log_reconnected() -> None:
    log.info("nats: reconnected")


class Bus:
    """Typed messaging over one NATS connection.

    Args:
        nc: a connected nats-py client.
        request_timeout: default seconds to wait for a reply.
    """

    def __init__(self, nc: Client, *, request_timeout: float = 5.0) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.request_timeout = request_timeout

    @classmethod
    async def connect(cls, config: ConnectionConfig, *, name: str | None = None) -> Bus:
        """Connect to NATS and return a bus (see :func:`connect`)."""
        return cls(await connect(config, name=name))

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain the connection: flush what was published, then close."""
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.debug("drain failed (%s); closing", type(exc).__name__)
                await self.nc.close()

    async def publish(
        self,
        subject: str,
        message: Any,
        *,
        encoding: Encoding = h.MSGPACK,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish on core NATS (fire and forget), with the trace context."""
        hdrs = headers_for(encoding)
        if headers:
            hdrs.update(headers)
        with telemetry.publish_span(subject, hdrs):
            await self.nc.publish(subject, encode(message, encoding), headers=hdrs or None)

    async def send(
        self,
        subject: str,
        message: Any,
        *,
        msg_id: str | None = None,
        encoding: Encoding = h.MSGPACK,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> js_api.PubAck:
        """Publish to a JetStream stream and wait for its acknowledgement.

        Args:
            subject: a subject captured by a stream.
            message: the message to encode.
            msg_id: de-duplication id (``Nats-Msg-Id``); a re-send with the same
                id inside the stream's window is dropped by the server.
            encoding: wire encoding.
            headers: extra headers.
            timeout: seconds to wait for the stream's acknowledgement.

        Raises:
            Unavailable: no stream captured the subject or it did not answer.
        """
        hdrs = headers_for(encoding)
        if headers:
            hdrs.update(headers)
        if msg_id:
            hdrs[h.MSG_ID] = msg_id
        with telemetry.publish_span(subject, hdrs):
            try:
                return await self.js.publish(
                    subject,
                    encode(message, encoding),
                    headers=hdrs or None,
                    timeout=timeout or self.request_timeout,
                )
            except nats.errors.NoRespondersError:
                raise Unavailable(f"no stream captures {subject}") from None
            except nats.errors.TimeoutError:
                raise Unavailable(f"stream did not acknowledge {subject} in time") from None

    async def request(
        self,
        subject: str,
        message: Any,
        reply_type: type[T],
        *,
        timeout: float | None = None,
        encoding: Encoding = h.MSGPACK,
    ) -> T:
        """Send a request and decode the reply as ``reply_type``.

        Raises:
            RequestError: the responder answered with an :class:`ErrorReply`
                (the subclass matches its code).
            Unavailable: nobody answers on ``subject``, or not in time.
        """
        hdrs = headers_for(encoding)
        with telemetry.publish_span(subject, hdrs, operation="send"):
            try:
                reply = await self.nc.request(
                    subject,
                    encode(message, encoding),
                    timeout=timeout or self.request_timeout,
                    headers=hdrs or None,
                )
            except nats.errors.NoRespondersError:
                raise Unavailable(f"no actor answers on {subject}") from None
            except nats.errors.TimeoutError:
                raise Unavailable(
                    f"no reply on {subject} within {timeout or self.request_timeout}s",
                    code="timeout",
                ) from None
        reply_encoding = encoding_of(reply.headers)
        if reply.headers and h.ERROR_CODE in reply.headers:
            try:
                error = Codec.of(ErrorReply).decode(reply.data, reply_encoding)
            except RequestError:
                error = ErrorReply(
                    code="internal",
                    message=reply.headers.get(h.ERROR_DESCRIPTION, "error without body"),
                )
            raise RequestError.from_reply(error)
        codec: Codec[T] = Codec.of(reply_type)  # type: ignore[arg-type]
        decoded: T = codec.decode(reply.data, reply_encoding)
        return decoded

    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Create or update a stream (see :func:`ensure_stream`)."""
        await ensure_stream(self.js, spec)

    async def key_value(self, spec: BucketSpec) -> KeyValue:
        """Create a KV bucket if needed and return it."""
        return await ensure_bucket(self.js, spec)

    async def object_store(self, spec: ObjectStoreSpec) -> ObjectStore:
        """Create an object store if needed and return it."""
        return await ensure_object_store(self.js, spec)
