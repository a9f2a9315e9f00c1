"""Bus on a real server: every publish, stream message and JSON reply names its encoding;
MessagePack requests and replies travel without headers."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.msg import Msg

from actors.runtime import Bus
from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.codec import Codec, encode
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import Unavailable
from actors.runtime.testing import eventually, nats_cluster
from actors.topology import TASKS
from protocols import headers as h
from protocols.tasks import SUBMIT_SUBJECT
from tests.actors.runtime.workers import ECHO_SUBJECT, JOBS, JOBS_SUBJECT, Echo, Job, Ping, Pong

pytestmark = pytest.mark.integration

ENCODINGS = [h.MSGPACK, h.JSON]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_core_publish_carries_the_content_type_of_its_encoding(
    bus: Bus, encoding: str
) -> None:
    """A fire-and-forget event says in Content-Type how it is encoded."""
    got: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await bus.nc.subscribe("test.events", cb=got.put)
    await bus.nc.flush()
    await bus.publish("test.events", Ping(n=1), encoding=encoding)
    msg = await asyncio.wait_for(got.get(), 5)
    await sub.unsubscribe()
    assert (msg.headers or {}).get(h.CONTENT_TYPE) == encoding
    assert msg.data == encode(Ping(n=1), encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_stream_message_stores_the_content_type_of_its_encoding(
    bus: Bus, encoding: str
) -> None:
    """A JetStream publish keeps Content-Type beside the de-duplication id."""
    await bus.ensure_stream(JOBS)
    ack = await bus.send(JOBS_SUBJECT, Job(id="j-1"), msg_id="j-1", encoding=encoding)
    stored = await bus.js.get_msg(JOBS.name, ack.seq)
    assert (stored.headers or {}).get(h.CONTENT_TYPE) == encoding
    assert (stored.headers or {}).get(h.MSG_ID) == "j-1"


async def test_a_msgpack_request_and_its_reply_travel_without_headers(bus: Bus) -> None:
    """MessagePack is what a message without Content-Type is: neither the request nor the
    endpoint's reply carries a header block for either side to encode and parse."""
    seen: asyncio.Queue[Msg] = asyncio.Queue()
    tap = await bus.nc.subscribe(ECHO_SUBJECT, cb=seen.put)
    async with Echo().running(bus):
        reply = await bus.nc.request(ECHO_SUBJECT, encode(Ping(n=3)), timeout=5)
        assert (await bus.request(ECHO_SUBJECT, Ping(n=4), Pong)).n == 4
    await tap.unsubscribe()
    assert reply.headers is None
    assert Codec.of(Pong).decode(reply.data).n == 3
    await seen.get()  # the raw request above
    request = await asyncio.wait_for(seen.get(), 5)
    assert request.headers is None


async def test_a_json_request_and_its_reply_name_their_encoding(bus: Bus) -> None:
    """A JSON request says so, and the endpoint answers in JSON, saying so too."""
    seen: asyncio.Queue[Msg] = asyncio.Queue()
    tap = await bus.nc.subscribe(ECHO_SUBJECT, cb=seen.put)
    async with Echo().running(bus):
        reply = await bus.nc.request(
            ECHO_SUBJECT, encode(Ping(n=5), h.JSON), headers={h.CONTENT_TYPE: h.JSON}, timeout=5
        )
        assert (await bus.request(ECHO_SUBJECT, Ping(n=6), Pong, encoding=h.JSON)).n == 6
    await tap.unsubscribe()
    assert reply.headers == {h.CONTENT_TYPE: h.JSON}
    assert Codec.of(Pong).decode(reply.data, h.JSON).n == 5
    await seen.get()
    request = await asyncio.wait_for(seen.get(), 5)
    assert (request.headers or {}).get(h.CONTENT_TYPE) == h.JSON


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_error_reply_names_its_encoding(bus: Bus, encoding: str) -> None:
    """A typed error reply carries Content-Type beside the micro error headers."""
    async with Echo().running(bus):
        reply = await bus.nc.request(
            ECHO_SUBJECT,
            encode(Ping(n=1, mode="missing"), encoding),
            headers={h.CONTENT_TYPE: encoding},
            timeout=5,
        )
    headers = reply.headers or {}
    assert headers.get(h.CONTENT_TYPE) == encoding
    assert headers.get(h.ERROR_CODE) == "404"


@pytest.mark.cluster
async def test_concurrent_sends_of_one_id_on_a_replicated_stream_are_stored_once() -> None:
    """While a send is being replicated, the same id again is a retryable Unavailable or a
    duplicate acknowledgement, never a raw JetStream error; the stream keeps one copy."""
    with nats_cluster(3) as urls:
        bus = await Bus.connect(ConnectionConfig(url=",".join(urls), connect_timeout=10.0))
        try:
            part = Topology(streams=(TASKS,)).with_replicas(3)

            async def applied() -> bool:
                await apply_topology(bus.js, part)
                return True

            await eventually(applied, timeout=60.0, interval=0.5, ignoring=(Exception,))
            outcomes: list[str] = []

            async def send(msg_id: str) -> None:
                try:
                    ack = await bus.send(SUBMIT_SUBJECT, {"x": 1}, msg_id=msg_id)
                except Unavailable as exc:
                    outcomes.append("retry" if exc.retryable else "final")
                else:
                    outcomes.append("duplicate" if ack.duplicate else "stored")

            for round_ in range(10):
                await asyncio.gather(*(send(f"same-{round_}") for _ in range(20)))
            info = await bus.js.stream_info(TASKS.name)
        finally:
            await bus.close()
    assert len(outcomes) == 200  # every send answered: stored, duplicate or retry
    assert "final" not in outcomes
    assert outcomes.count("stored") <= 10, outcomes
    assert info.state.messages == 10  # one copy per id


async def test_close_does_not_wait_for_messages_nobody_will_read(nats_url: str) -> None:
    """A subscription left with unread messages ends at close instead of holding the drain."""
    bus = await Bus.connect(ConnectionConfig(url=nats_url))
    listener = await bus.nc.subscribe("unread.>")
    for i in range(50):
        await bus.nc.publish(f"unread.{i}", b"x")
    await bus.nc.flush()
    await eventually(lambda: listener.pending_msgs == 50, timeout=30.0)
    started = time.monotonic()
    await bus.close()
    assert bus.nc.is_closed
    # A drain waiting for the reader would take its whole timeout: 30 s.
    assert time.monotonic() - started < 15.0
