"""Codec: MessagePack by default, JSON on request, validation errors as BadRequest."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.runtime.codec import Codec, encode, encoding_of, exchange_headers, headers_for
from actors.runtime.errors import BadRequest
from protocols import headers as h
from tests.actors.runtime.workers import Ping


def test_encoding_defaults_to_msgpack_without_content_type() -> None:
    """No headers, or no Content-Type, means MessagePack."""
    assert encoding_of(None) == h.MSGPACK
    assert encoding_of({}) == h.MSGPACK
    assert encoding_of({"X-Other": "1"}) == h.MSGPACK


@pytest.mark.parametrize(
    "value", ["application/json", "Application/JSON", "application/json; charset=utf-8"]
)
def test_encoding_is_json_for_any_spelling_of_the_json_content_type(value: str) -> None:
    """Content-Type matching ignores case and parameters."""
    assert encoding_of({h.CONTENT_TYPE: value}) == h.JSON


def test_headers_announce_every_encoding_msgpack_included() -> None:
    """Both encodings are named in Content-Type, so no reader has to guess."""
    assert headers_for(h.MSGPACK) == {h.CONTENT_TYPE: h.MSGPACK}
    assert headers_for(h.JSON) == {h.CONTENT_TYPE: h.JSON}


def test_headers_for_returns_a_fresh_dict_each_time() -> None:
    """Callers add their own headers; one call's additions never leak into the next."""
    first = headers_for(h.MSGPACK)
    first["X-Extra"] = "1"
    assert headers_for(h.MSGPACK) == {h.CONTENT_TYPE: h.MSGPACK}


def test_exchange_headers_name_json_and_leave_msgpack_bare() -> None:
    """A core request or reply names JSON; MessagePack goes without, which reads as MessagePack."""
    assert exchange_headers(h.JSON) == {h.CONTENT_TYPE: h.JSON}
    assert exchange_headers(h.MSGPACK) == {}
    assert encoding_of(exchange_headers(h.MSGPACK)) == h.MSGPACK
    first = exchange_headers(h.JSON)
    first["X-Extra"] = "1"
    assert exchange_headers(h.JSON) == {h.CONTENT_TYPE: h.JSON}


def test_msgpack_content_type_reads_as_msgpack() -> None:
    """The explicit MessagePack header means what its absence always meant."""
    assert encoding_of({h.CONTENT_TYPE: h.MSGPACK}) == h.MSGPACK


@given(n=st.integers(min_value=-(2**63), max_value=2**64 - 1), mode=st.text())
def test_messages_round_trip_in_both_encodings(n: int, mode: str) -> None:
    """Whatever is encoded decodes back equal, in either encoding."""
    message = Ping(n=n, mode=mode)
    codec = Codec.of(Ping)
    for encoding in (h.MSGPACK, h.JSON):
        assert codec.decode(encode(message, encoding), encoding) == message


def test_codec_is_built_once_per_type() -> None:
    """Codec.of caches the decoders of a type."""
    assert Codec.of(Ping) is Codec.of(Ping)


@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        (b"\xc1", h.MSGPACK, "malformed MessagePack"),
        (b"{", h.JSON, "malformed JSON"),
        (b"\x82\xa1n\x01\xa4mode\xa2\xed\xa0", h.MSGPACK, "malformed"),
        (b'{"type": "troupe.test.v1.ping", "n": "1"}', h.JSON, "invalid message"),
        (b'{"type": "troupe.test.v1.ping"}', h.JSON, "`n`"),
        (b'{"type": "troupe.test.v2.ping", "n": 1}', h.JSON, "Invalid value"),
    ],
)
def test_bad_bytes_raise_bad_request_saying_what_is_wrong(
    data: bytes, encoding: str, expected: str
) -> None:
    """Undecodable or invalid input raises BadRequest, never a msgspec error."""
    with pytest.raises(BadRequest, match=expected) as caught:
        Codec.of(Ping).decode(data, encoding)
    assert caught.value.code == "bad_request"


@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_bad_request(data: bytes) -> None:
    """No input makes the codec raise anything but BadRequest."""
    for encoding in (h.MSGPACK, h.JSON):
        with contextlib.suppress(BadRequest):
            Codec.of(Ping).decode(data, encoding)


def test_bad_request_message_does_not_echo_the_input() -> None:
    """The error text names the problem, not the offending bytes."""
    secret = "s3cr3t-token-value"
    with pytest.raises(BadRequest) as caught:
        Codec.of(Ping).decode(
            msgspec.json.encode({"type": "troupe.test.v1.ping", "n": secret}), h.JSON
        )
    assert secret not in caught.value.message


def test_missing_type_tag_is_accepted_where_only_one_type_is_expected() -> None:
    """A client may omit ``type`` when the subject takes one message type."""
    assert Codec.of(Ping).decode(b'{"n": 1}', h.JSON) == Ping(n=1)
