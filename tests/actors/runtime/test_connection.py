"""Connection: memoised header blocks read and write exactly what nats-py would."""

from __future__ import annotations

import asyncio
from typing import cast

import nats.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from actors.runtime import Bus
from actors.runtime.connection import Connection, encode_header_block
from actors.runtime.testing import eventually

TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=12,
)
HEADERS = st.dictionaries(TOKEN, st.text(max_size=20), max_size=4)


async def _nats_py_block(headers: dict[str, str]) -> bytes:
    """The header block nats-py's own publish writes for ``headers``."""
    client = Client()
    sent: list[bytes] = []

    async def capture(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    client._send_command = capture  # type: ignore[method-assign]
    client._flush_queue = None
    await client._send_publish("s", "", b"", 0, headers)
    head, rest = sent[0].split(b"\r\n", 1)
    block_size = int(head.split()[-2])
    return rest[:block_size]


@settings(max_examples=200, deadline=None)
@given(HEADERS)
def test_encoded_block_is_byte_for_byte_that_of_nats_py(headers: dict[str, str]) -> None:
    """A memoised block is what nats-py writes for the same headers."""
    assert encode_header_block(headers) == asyncio.run(_nats_py_block(headers))


def test_encoding_refuses_what_nats_py_alone_may_judge() -> None:
    """Invalid names and non-string values are left to nats-py's own path."""
    assert encode_header_block({"bad name": "x"}) is None
    assert encode_header_block({"Count": 3}) is None


@settings(max_examples=200, deadline=None)
@given(HEADERS)
def test_parsed_block_is_that_of_nats_py_and_a_fresh_dict(headers: dict[str, str]) -> None:
    """A block read twice parses as nats-py parses it, into a new dict each time."""

    async def parse_twice() -> None:
        block = encode_header_block(headers)
        assert block is not None
        expected = await Client()._process_headers(block)
        connection = Connection()
        first = await connection._process_headers(block)
        assert first == expected
        if first is not None:
            first["Mutated"] = "yes"
        second = await connection._process_headers(block)
        assert second == expected
        assert second is None or second is not first

    asyncio.run(parse_twice())


_LINE_BYTES = st.sampled_from(
    [
        b"Nats-Msg-Id",
        b"Content-Type",
        b"a",
        b":",
        b" ",
        b"\t",
        b"\x0b",
        b"\x1c",
        b"\x85",
        b"\xc3\xa9",
        b"\xff",
        b"\r",
        b"\n",
        b"\r\n",
        b"value",
        b"-",
        b"NATS/1.0",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.lists(_LINE_BYTES, max_size=8).map(b"".join), max_size=6))
def test_header_lines_parse_exactly_as_nats_py_parses_them(lines: list[bytes]) -> None:
    """Names with whitespace inside, non-ASCII names, bare lines: the same dict as nats-py."""
    raw = b"\r\n".join(lines)
    assert Connection._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_a_name_with_whitespace_inside_is_dropped_and_an_empty_name_kept() -> None:
    """As nats-py: ``Bad Name`` and ``Bad\\x1cName`` go, ``: v`` is kept under ``""``."""
    raw = b"Bad Name: x\r\nBad\x1cName: y\r\n: v\r\nNats-Msg-Id:  id-1 \r\n"
    assert Connection._parse_header_lines(raw) == {"": "v", "Nats-Msg-Id": "id-1"}


@pytest.mark.integration
async def test_repeated_headers_arrive_intact_in_both_directions(bus: Bus) -> None:
    """The same headers published many times arrive each time as sent, with the payload."""
    assert isinstance(bus.nc, Connection)
    got: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await bus.nc.subscribe("test.headers", cb=got.put)
    await bus.nc.flush()
    sent = [{"Content-Type": "application/msgpack"}, {"Content-Type": "application/json"}] * 3
    sent.append({"Content-Type": "application/msgpack", "Trace": "x\r\ny"})
    sent.append({"Content-Type": "application/msgpack", "Trace": "x\r\ny"})
    for i, headers in enumerate(sent):
        await bus.nc.publish("test.headers", str(i).encode(), headers=headers)
    received = [await asyncio.wait_for(got.get(), 5) for _ in sent]
    await sub.unsubscribe()
    assert [m.data for m in received] == [str(i).encode() for i in range(len(sent))]
    assert [m.headers for m in received[:6]] == sent[:6]
    assert received[-1].headers == {"Content-Type": "application/msgpack", "Trace": "x  y"}
    assert received[-1].headers is not received[-2].headers


async def test_replies_reach_their_requests_without_the_reply_subscriptions_task(
    bus: Bus,
) -> None:
    """A reply is handed to its waiting request as it is read, not via a second task."""

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await bus.nc.subscribe("conn.echo", cb=echo)
    nc = bus.nc
    assert isinstance(nc, Connection)
    await nc.request("conn.echo", b"first", timeout=5.0)
    reply_sub = nc._subs[nc._reply_sid]
    task = cast("asyncio.Task[None]", reply_sub._wait_for_msgs_task)
    task.cancel()
    replies = await asyncio.gather(
        *(nc.request("conn.echo", str(i).encode(), timeout=5.0) for i in range(20))
    )
    assert [r.data for r in replies] == [str(i).encode() for i in range(20)]
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("conn.nobody", b"", timeout=5.0)


async def test_a_request_waits_on_its_future_alone_and_leaves_nothing_behind(bus: Bus) -> None:
    """A request waits on its reply's future with a timer of its own: answered, it returns
    the reply; unanswered, it raises nats-py's TimeoutError at its timeout; cancelled, it is
    cancelled. In every case no waiting future is left registered."""
    nc = bus.nc
    assert isinstance(nc, Connection)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    held: list[Msg] = []
    await nc.subscribe("conn.echo2", cb=echo)

    async def keep(msg: Msg) -> None:
        held.append(msg)

    await nc.subscribe("conn.silent", cb=keep)
    assert (await nc.request("conn.echo2", b"a", timeout=30.0)).data == b"a"
    assert nc._resp_map == {}

    with pytest.raises(nats.errors.TimeoutError):
        await nc.request("conn.silent", b"", timeout=0.05)
    assert len(held) == 1
    assert nc._resp_map == {}

    pending = asyncio.ensure_future(nc.request("conn.silent", b"", timeout=30.0))
    await eventually(lambda: len(held) == 2)
    assert len(nc._resp_map) == 1
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert nc._resp_map == {}
    assert (await nc.request("conn.echo2", b"b", timeout=30.0)).data == b"b"
