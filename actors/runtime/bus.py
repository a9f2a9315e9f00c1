"""The bus: a NATS connection that speaks troupe messages.

It encodes with msgspec, decodes replies into typed messages (an error reply
becomes the matching :class:`~actors.runtime.errors.RequestError`), carries
the trace context in headers, and publishes to JetStream with de-duplication
ids. It is the one place actors and clients touch ``nats-py`` for messaging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from actors.runtime import telemetry
from actors.runtime.codec import (
    Codec,
    Encoding,
    encode,
    encoding_of,
    exchange_headers,
    headers_for,
)
from actors.runtime.config import ConnectionConfig
from actors.runtime.connection import Connection
from actors.runtime.errors import ConnectError, LoginRefused, RequestError, Unavailable
from actors.runtime.stream_publish import publish_and_wait
from actors.runtime.tls import TlsNotOffered, client_context
from actors.runtime.topology import (
    BucketSpec,
    ObjectStoreSpec,
    StreamSpec,
    open_bucket,
    open_object_store,
    open_stream,
)
from protocols import headers as h
from protocols.errors import ErrorReply

__all__ = ["Bus", "abandon", "connect", "tls_options"]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def connect(config: ConnectionConfig, *, name: str | None = None) -> Client:
    """Open a NATS connection within the first-connect budget.

    The first connection is retried for ``config.connect_timeout`` seconds, so
    an actor may start before its server; the failed attempts are logged at
    debug level only, and the last one is named in the :class:`ConnectError`.
    Once connected, the connection reconnects for ever when ``config.reconnect``
    is set (the first failure of an outage is a warning, the rest debug), and
    closes on the first drop otherwise.

    Raises:
        ConnectError: NATS stayed unreachable for ``connect_timeout`` seconds,
            or refused the credentials.
    """
    nc = Connection()
    state = _ConnectState()

    async def on_error(exc: Exception) -> None:
        if not state.connected:
            state.last = exc
            log.debug("nats: connect attempt failed: %s: %s", type(exc).__name__, exc)
            if _refused_credentials(exc) or isinstance(exc, (TlsNotOffered, ssl.SSLError)):
                raise exc  # wrong credentials or TLS will not get better by retrying
            return
        if state.outage_reported:
            log.debug("nats: %s: %s", type(exc).__name__, exc)
            return
        state.outage_reported = not (nc.is_connected or nc.is_closed)
        log.warning("nats: %s: %s", type(exc).__name__, exc)

    async def on_disconnected() -> None:
        # A disconnect caused by our own close/drain is not news.
        if state.connected and not (nc.is_closed or nc.is_draining):
            if config.reconnect:
                log.warning("nats: disconnected from %s, reconnecting", config.url)
            else:
                log.debug("nats: disconnected from %s", config.url)

    async def on_reconnected() -> None:
        state.outage_reported = False
        log.info("nats: reconnected")

    budget = config.connect_timeout
    options: dict[str, Any] = {
        "servers": config.servers,
        "name": name or config.name,
        "user": config.user,
        "password": config.password,
        "token": config.token,
        "user_credentials": config.creds,
        "inbox_prefix": config.inbox_prefix,
        "connect_timeout": max(0.5, min(2.0, budget)),
        # nats-py retries the first connection only while reconnecting is allowed.
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "error_cb": on_error,
        **tls_options(config),
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
    }
    try:
        await asyncio.wait_for(nc.connect(**options), budget)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        await abandon(nc)
        cause = state.last if isinstance(exc, TimeoutError) and state.last else exc
        detail = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        if isinstance(exc, TimeoutError) and state.last is None:
            detail = f"no answer within {budget:g}s"
        if _refused_credentials(cause):
            raise LoginRefused(f"NATS at {config.url} refused the credentials ({detail})") from None
        if isinstance(cause, TlsNotOffered):
            raise ConnectError(f"NATS at {config.url} does not offer TLS ({cause})") from None
        if isinstance(cause, ssl.SSLError):
            raise ConnectError(
                f"TLS with NATS at {config.url} failed ({detail}); "
                "pass the server's CA with --ca or TROUPE_NATS_CA"
            ) from None
        raise ConnectError(f"cannot reach NATS at {config.url} ({detail})") from None
    state.connected = True
    if not config.reconnect:
        # Read by nats-py when the connection drops: close instead of reconnecting.
        nc.options["allow_reconnect"] = False
    return nc


def tls_options(config: ConnectionConfig) -> dict[str, Any]:
    """Return the nats-py TLS options of ``config``: a verifying context when TLS may be used.

    A ``tls://`` URL or a CA asks for a context (verifying with the CA, or with
    the system's trust store); otherwise nats-py makes a default one should the
    server require TLS.
    """
    if config.ca is None and not config.tls_required:
        return {}
    return {"tls": client_context(config.ca)}


def _refused_credentials(exc: Exception) -> bool:
    # nats-py reports the server's -ERR 'Authorization Violation' as a plain Error.
    return isinstance(exc, nats.errors.AuthorizationError) or (
        "authorization violation" in str(exc).lower()
    )


class _ConnectState:
    """What the callbacks of one connection know about it."""

    __slots__ = ("connected", "last", "outage_reported")

    def __init__(self) -> None:
        self.connected = False
        self.last: Exception | None = None
        self.outage_reported = False


async def abandon(nc: Client) -> None:
    """Close a client whose first connection failed or was cut short."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 2.0)


_DUPLICATE_IN_PROCESS = 10158
"""JetStream's error code for a message whose id an unfinished earlier send carries."""


async def _end_readers(nc: Client) -> None:
    """Unsubscribe ``nc``'s subscriptions that have no callback."""
    for sub in list(nc._subs.values()):
        if sub._cb is None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await sub.unsubscribe()


async def _close_while_reconnecting(nc: Client) -> None:
    """Close ``nc`` whose drain failed, e.g. while it reconnects.

    nats-py may then raise ``CancelledError`` from the transport it abandons
    although nobody cancelled the caller; that one is swallowed, a real
    cancellation of the calling task is not.
    """
    task = asyncio.current_task()
    try:
        await nc.close()
    except asyncio.CancelledError:
        if task is None or task.cancelling():
            raise
        log.debug("close interrupted by the abandoned transport; connection closed")


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
        """Drain the connection: flush what was published, then close.

        Subscriptions read with ``next_msg`` or as iterators end first, with what
        they received and nobody read: a drain would otherwise wait for a reader
        that has stopped, for the connection's whole drain timeout.
        """
        if not self.nc.is_closed:
            await _end_readers(self.nc)
            try:
                await self.nc.drain()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.debug("drain failed (%s); closing", type(exc).__name__)
                await _close_while_reconnecting(self.nc)

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
            Unavailable: no stream captured the subject, it did not answer, or
                it cannot store now (retryable).
        """
        hdrs = headers_for(encoding)
        if headers:
            hdrs.update(headers)
        if msg_id:
            hdrs[h.MSG_ID] = msg_id
        with telemetry.publish_span(subject, hdrs):
            try:
                return await publish_and_wait(
                    self.nc,
                    subject,
                    encode(message, encoding),
                    headers=hdrs,
                    timeout=timeout or self.request_timeout,
                )
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                raise Unavailable(f"no stream captures {subject}") from None
            except nats.errors.TimeoutError:
                raise Unavailable(
                    f"stream did not acknowledge {subject} in time (a cluster without a "
                    "quorum of its nodes, or an overloaded server); retry later"
                ) from None
            except nats.js.errors.ServiceUnavailableError:
                raise Unavailable(f"JetStream is unavailable for {subject}; retry later") from None
            except nats.js.errors.APIError as exc:
                if exc.err_code != _DUPLICATE_IN_PROCESS:
                    raise
                # The same id's earlier send is still being stored (e.g. while a cluster
                # elects a leader): retrying with the id is safe, it is stored once.
                raise Unavailable(
                    f"an earlier send of {msg_id} to {subject} is still being stored; retry"
                ) from None

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
        if encoding == h.MSGPACK and not telemetry.carrying():
            # The common case between actors: no header at all, no span to open.
            reply = await self._request(subject, encode(message), timeout, None)
        else:
            hdrs = exchange_headers(encoding)
            with telemetry.publish_span(subject, hdrs, operation="send"):
                reply = await self._request(
                    subject, encode(message, encoding), timeout, hdrs or None
                )
        codec: Codec[T] = Codec.of(reply_type)  # type: ignore[arg-type]
        if reply.headers is None:
            decoded: T = codec.decode(reply.data)
            return decoded
        reply_encoding = encoding_of(reply.headers)
        if h.ERROR_CODE in reply.headers:
            try:
                error = Codec.of(ErrorReply).decode(reply.data, reply_encoding)
            except RequestError:
                error = ErrorReply(
                    code="internal",
                    message=reply.headers.get(h.ERROR_DESCRIPTION, "error without body"),
                )
            raise RequestError.from_reply(error)
        return codec.decode(reply.data, reply_encoding)

    async def _request(
        self, subject: str, payload: bytes, timeout: float | None, headers: dict[str, str] | None
    ) -> Msg:
        try:
            return await self.nc.request(
                subject, payload, timeout=timeout or self.request_timeout, headers=headers
            )
        except nats.errors.NoRespondersError:
            raise Unavailable(f"no actor answers on {subject}") from None
        except nats.errors.TimeoutError:
            raise Unavailable(
                f"no reply on {subject} within {timeout or self.request_timeout}s",
                code="timeout",
            ) from None

    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Bind a stream; create or update it only on a server without authentication.

        Raises:
            TopologyMissing: it does not exist (see
                :func:`~actors.runtime.topology.open_stream`).
        """
        await open_stream(self.nc, self.js, spec)

    async def key_value(self, spec: BucketSpec) -> KeyValue:
        """Return a KV bucket; create it only on a server without authentication.

        Raises:
            TopologyMissing: it does not exist.
        """
        return await open_bucket(self.nc, self.js, spec)

    async def object_store(self, spec: ObjectStoreSpec) -> ObjectStore:
        """Return an object store; create it only on a server without authentication.

        Raises:
            TopologyMissing: it does not exist.
        """
        return await open_object_store(self.nc, self.js, spec)
