"""Encoding and validation of wire messages with msgspec.

MessagePack is the default between actors. A message whose headers say
``Content-Type: application/json`` is decoded as JSON and its answer is
encoded as JSON, so the stock ``nats`` CLI and clients in any language can
take part. Everything troupe stores or publishes says what it is in a
``Content-Type`` header (``application/msgpack`` included); a core-NATS request
or reply in MessagePack carries none, and a message without the header is read
as MessagePack. Decoders are built once per type and cached.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgspec

from actors.runtime.errors import BadRequest
from protocols import headers as h

__all__ = [
    "Codec",
    "Encoding",
    "encode",
    "encoding_of",
    "exchange_headers",
    "headers_for",
    "stored_encoding",
]

T = TypeVar("T")

Encoding = str
"""Either :data:`protocols.headers.JSON` or :data:`protocols.headers.MSGPACK`."""

_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()


def encoding_of(headers: Mapping[str, str] | None) -> Encoding:
    """Return the encoding a message with these headers uses."""
    if headers:
        value = headers.get(h.CONTENT_TYPE)
        if value is not None and value.split(";", 1)[0].strip().lower() == h.JSON:
            return h.JSON
    return h.MSGPACK


def stored_encoding(data: bytes, headers: Mapping[str, str] | None = None) -> Encoding:
    """Return the encoding of a stored value (a KV entry or stream message).

    The ``Content-Type`` header decides when present. Otherwise a value whose
    first byte is ``{`` is JSON: in MessagePack that byte is the integer 123,
    never the start of a map, so a JSON object written by a client that sets no
    header is still read as JSON.
    """
    if headers and h.CONTENT_TYPE in headers:
        return encoding_of(headers)
    return h.JSON if data[:1] == b"{" else h.MSGPACK


def encode(message: Any, encoding: Encoding = h.MSGPACK) -> bytes:
    """Encode ``message`` (a Struct or plain data) in ``encoding``."""
    if encoding == h.JSON:
        return _json_encoder.encode(message)
    return _msgpack_encoder.encode(message)


def headers_for(encoding: Encoding) -> dict[str, str]:
    """Return a new header dict announcing ``encoding`` in ``Content-Type``.

    MessagePack is announced too, so a reader never has to guess what a
    message, a stored value or a reply is.
    """
    return {h.CONTENT_TYPE: h.JSON if encoding == h.JSON else h.MSGPACK}


def exchange_headers(encoding: Encoding) -> dict[str, str]:
    """Return a new header dict for a core-NATS request or reply in ``encoding``.

    JSON is announced; MessagePack, the default, travels without a header, since
    a request or reply without ``Content-Type`` is read as MessagePack and
    nothing keeps it. A message that carries no header at all costs each side
    the header block's encoding and parsing, which is about a quarter of a
    request/reply round trip in nats-py. Stored values and stream messages
    always name their encoding (:func:`headers_for`).
    """
    return {h.CONTENT_TYPE: h.JSON} if encoding == h.JSON else {}


class Codec(Generic[T]):
    """Decoder for one message type, in both encodings.

    Args:
        message_type: the Struct class (or tagged union of Structs) to decode.
    """

    __slots__ = ("_json", "_msgpack", "message_type")

    def __init__(self, message_type: Any) -> None:
        self.message_type = message_type
        self._msgpack: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(message_type)
        self._json: msgspec.json.Decoder[T] = msgspec.json.Decoder(message_type)

    def decode(self, data: bytes, encoding: Encoding = h.MSGPACK) -> T:
        """Decode and validate ``data``.

        Raises:
            BadRequest: the bytes are not a valid message of this type; the
                message says what is wrong and where (never echoes the input).
        """
        try:
            if encoding == h.JSON:
                return self._json.decode(data)
            return self._msgpack.decode(data)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"invalid message: {exc}") from None
        except (msgspec.DecodeError, ValueError) as exc:
            # msgspec raises UnicodeDecodeError (a ValueError) for invalid UTF-8 in a
            # MessagePack string; its message quotes no input, only positions.
            kind = "JSON" if encoding == h.JSON else "MessagePack"
            raise BadRequest(f"malformed {kind}: {exc}") from None

    @staticmethod
    @functools.cache
    def of(message_type: Any) -> Codec[Any]:
        """Return the shared codec of ``message_type``."""
        return Codec(message_type)
