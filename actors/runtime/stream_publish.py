"""Publishing to a JetStream stream and waiting for its acknowledgement, cheaply.

:func:`publish_and_wait` is what nats-py's ``JetStreamContext.publish`` does
(the same request, headers and errors, the same
:class:`nats.js.api.PubAck`), with the acknowledgement decoded by msgspec into
its four fields instead of ``json.loads`` and a generic dataclass walk, which
cost more than the rest of the client's side of the publish. An
acknowledgement msgspec cannot read (a field of an unexpected type, from a
newer server) goes through nats-py's own parsing, so nothing is lost.
Every stream write of the bus and of typed buckets goes through here.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api as js_api

__all__ = ["publish_and_wait"]


class _Ack(msgspec.Struct):
    """The fields of a JetStream publish acknowledgement troupe reads (others are ignored)."""

    stream: str = ""
    seq: int = 0
    domain: str | None = None
    duplicate: bool | None = None
    error: dict[str, Any] | None = None


_ACK = msgspec.json.Decoder(_Ack)


async def publish_and_wait(
    nc: Client,
    subject: str,
    payload: bytes,
    *,
    headers: dict[str, str],
    timeout: float,
    stream: str | None = None,
    ttl: float | None = None,
) -> js_api.PubAck:
    """Publish ``payload`` to the stream capturing ``subject``; return its acknowledgement.

    Args:
        nc: the connection.
        subject: a subject captured by a stream.
        payload: the message body.
        headers: message headers (``Nats-Expected-Stream`` and ``Nats-TTL`` are added here).
        timeout: seconds to wait for the acknowledgement.
        stream: the stream expected to store it.
        ttl: per-message TTL in seconds.

    Raises:
        nats.js.errors.NoStreamResponseError: no stream captures ``subject``.
        nats.errors.TimeoutError: no acknowledgement within ``timeout``.
        nats.js.errors.APIError: the stream refused the message (the subclass
            matches the code, as nats-py raises it).
    """
    if stream is not None:
        headers[js_api.Header.EXPECTED_STREAM] = stream
    if ttl is not None:
        headers[js_api.Header.MSG_TTL] = str(int(ttl))
    try:
        msg = await nc.request(subject, payload, timeout=timeout, headers=headers)
    except nats.errors.NoRespondersError:
        raise nats.js.errors.NoStreamResponseError from None
    try:
        ack = _ACK.decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        resp = json.loads(msg.data)
        if "error" in resp:
            raise nats.js.errors.APIError.from_error(resp["error"]) from None
        return js_api.PubAck.from_response(resp)
    if ack.error is not None:
        raise nats.js.errors.APIError.from_error(ack.error)
    return js_api.PubAck(stream=ack.stream, seq=ack.seq, domain=ack.domain, duplicate=ack.duplicate)
