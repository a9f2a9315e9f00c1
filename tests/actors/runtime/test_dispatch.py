"""Dispatch on a real server: decode before the handler, typed errors, ack discipline."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from actors.runtime import (
    Bus,
    DeadLetter,
    MessageContext,
    NotFound,
    RequestContext,
    RequestError,
    RetryLater,
)
from actors.runtime.codec import encode
from actors.runtime.dispatch import _Tasks
from actors.runtime.testing import eventually
from protocols import headers as h
from protocols.errors import DEAD_LETTER_STREAM, ErrorReply, dead_letter_subject
from tests.actors.runtime.workers import (
    ECHO_SUBJECT,
    JOBS,
    JOBS_SUBJECT,
    STARTED_SUBJECT,
    Echo,
    Job,
    Ping,
    Pong,
    make_worker,
)

pytestmark = pytest.mark.integration

JSON_HEADERS = {h.CONTENT_TYPE: h.JSON}
DLQ_SUBJECT = dead_letter_subject(JOBS.name)
REPO = Path(__file__).resolve().parents[3]


async def _raw_request(bus: Bus, data: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return await bus.nc.request(ECHO_SUBJECT, data, timeout=5.0, headers=headers)


async def _dead_letters(bus: Bus) -> list[tuple[bytes, dict[str, str]]]:
    """Every message in the dead-letter stream for :data:`JOBS`, oldest first."""
    found = []
    try:
        info = await bus.js.stream_info(DEAD_LETTER_STREAM)
    except Exception:
        return []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg(DEAD_LETTER_STREAM, seq)
        except Exception:
            continue
        if msg.subject == DLQ_SUBJECT:
            found.append((msg.data or b"", dict(msg.headers or {})))
    return found


# -- request/reply ------------------------------------------------------------------


async def test_endpoint_answers_a_valid_request_with_its_reply(bus: Bus) -> None:
    """A valid MessagePack request gets the handler's typed reply."""
    async with Echo().running(bus):
        assert await bus.request(ECHO_SUBJECT, Ping(n=7), Pong) == Pong(n=7)


async def test_endpoint_answers_json_in_json(bus: Bus) -> None:
    """A request with Content-Type: application/json is answered in JSON."""
    async with Echo().running(bus):
        body = json.dumps({"type": "troupe.test.v1.ping", "n": 3}).encode()
        reply = await _raw_request(bus, body, JSON_HEADERS)
    assert reply.headers[h.CONTENT_TYPE] == h.JSON
    assert json.loads(reply.data) == {"type": "troupe.test.v1.pong", "n": 3}


@pytest.mark.parametrize(
    ("data", "headers", "decode"),
    [
        (b"\xc1\xff not msgpack", None, msgspec.msgpack.decode),
        (b"{not json", JSON_HEADERS, msgspec.json.decode),
        (encode({"type": "troupe.test.v1.ping", "n": "seven"}), None, msgspec.msgpack.decode),
        (b'{"type": "troupe.test.v1.ping"}', JSON_HEADERS, msgspec.json.decode),
        (b'{"type": "troupe.other.v1.x", "n": 1}', JSON_HEADERS, msgspec.json.decode),
    ],
    ids=["bad-msgpack", "bad-json", "wrong-type-msgpack", "missing-field-json", "wrong-tag"],
)
async def test_undecodable_request_gets_bad_request_in_its_own_encoding(
    bus: Bus, data: bytes, headers: dict[str, str] | None, decode: object
) -> None:
    """A request that does not decode is answered bad_request, in the request's encoding."""
    async with Echo().running(bus):
        reply = await _raw_request(bus, data, headers)
        assert reply.headers[h.ERROR_CODE] == "400"
        assert (reply.headers.get(h.CONTENT_TYPE) == h.JSON) == (headers is not None)
        error = msgspec.convert(decode(reply.data), ErrorReply)  # type: ignore[operator]
        assert error.code == "bad_request"
        assert not error.retryable
        # The actor is still serving.
        assert await bus.request(ECHO_SUBJECT, Ping(n=1), Pong) == Pong(n=1)


async def test_validation_error_names_the_offending_field(bus: Bus) -> None:
    """The bad_request message says which field is wrong."""
    async with Echo().running(bus):
        with pytest.raises(RequestError) as caught:
            await bus.request(ECHO_SUBJECT, {"type": "troupe.test.v1.ping", "n": "x"}, Pong)
    assert caught.value.code == "bad_request"
    assert "$.n" in caught.value.message


async def test_request_error_becomes_its_typed_reply(bus: Bus) -> None:
    """A NotFound raised by the handler reaches the requester as NotFound."""
    async with Echo().running(bus):
        with pytest.raises(NotFound, match="no thing 4"):
            await bus.request(ECHO_SUBJECT, Ping(n=4, mode="missing"), Pong)
        reply = await _raw_request(bus, encode(Ping(n=4, mode="bad")))
        error = msgspec.msgpack.decode(reply.data, type=ErrorReply)
        assert error.details == {"field": "n"}


async def test_handler_crash_becomes_internal_without_leaking_details(bus: Bus) -> None:
    """An unexpected exception is answered as code internal, with no repr on the wire."""
    failures: list[BaseException] = []
    actor = Echo()

    async def record(exc: BaseException) -> None:
        failures.append(exc)

    actor.on_failure = record  # type: ignore[method-assign]
    async with actor.running(bus):
        reply = await _raw_request(
            bus,
            json.dumps({"type": "troupe.test.v1.ping", "n": 1, "mode": "crash"}).encode(),
            JSON_HEADERS,
        )
        assert await bus.request(ECHO_SUBJECT, Ping(n=2), Pong) == Pong(n=2)
    body = json.loads(reply.data)
    assert body["code"] == "internal"
    assert b"secret" not in reply.data
    assert reply.headers[h.ERROR_CODE] == "500"
    assert [type(f) for f in failures] == [RuntimeError]


# -- stream consumers -----------------------------------------------------------------


async def test_malformed_stream_message_is_dead_lettered_with_reason(bus: Bus) -> None:
    """An undecodable stream message is terminated and copied to troupe.dlq.<stream>."""
    seen: list[str] = []

    async def record(job: Job, ctx: MessageContext) -> None:
        seen.append(job.id)

    async with make_worker(record).running(bus):
        await bus.js.publish(JOBS_SUBJECT, b"\xc1garbage", headers={"X-Mark": "1"})
        await bus.js.publish(JOBS_SUBJECT, b'{"type": "troupe.test.v1.job"}', headers=JSON_HEADERS)
        await bus.send(JOBS_SUBJECT, Job(id="good"))
        await eventually(lambda: _async(seen == ["good"]))
        letters = await eventually(lambda: _dead_letters_n(bus, 2))
        info = await bus.js.consumer_info(JOBS.name, "workers")
    (data0, hdrs0), (_, hdrs1) = letters
    assert data0 == b"\xc1garbage"
    assert hdrs0["X-Mark"] == "1"
    assert "malformed MessagePack" in hdrs0[h.DEAD_LETTER_REASON]
    assert "`id`" in hdrs1[h.DEAD_LETTER_REASON]
    assert hdrs0[h.DEAD_LETTER_SUBJECT] == JOBS_SUBJECT
    assert hdrs0[h.DEAD_LETTER_STREAM] == JOBS.name
    assert hdrs0[h.DEAD_LETTER_DELIVERIES] == "1"
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_failing_handler_is_redelivered_with_backoff_then_dead_lettered(bus: Bus) -> None:
    """A handler that keeps raising sees max_deliver deliveries spaced by the backoff."""
    deliveries: list[tuple[int, float]] = []

    async def fail(job: Job, ctx: MessageContext) -> None:
        deliveries.append((ctx.num_delivered, time.monotonic()))
        raise ValueError("boom")

    async with make_worker(fail, max_deliver=3, backoff=(0.3, 0.6)).running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="doomed"))
        letters = await eventually(lambda: _dead_letters_n(bus, 1))
    assert [n for n, _ in deliveries] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(deliveries)]
    assert gaps[0] >= 0.25
    assert gaps[1] >= 0.55
    reason = letters[0][1][h.DEAD_LETTER_REASON]
    assert "3 times" in reason
    assert "ValueError" in reason
    assert "boom" not in reason


async def test_handler_succeeding_on_redelivery_is_acked(bus: Bus) -> None:
    """A transient failure is retried; success then acks and nothing is dead-lettered."""
    deliveries: list[int] = []

    async def flaky(job: Job, ctx: MessageContext) -> None:
        deliveries.append(ctx.num_delivered)
        if ctx.num_delivered == 1:
            raise ConnectionError("transient")

    async with make_worker(flaky, backoff=(0.1,)).running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="flaky"))
        await eventually(lambda: _async(deliveries == [1, 2]))
        info = await eventually(lambda: _consumer_idle(bus))
    assert info.num_redelivered == 0 or info.delivered.consumer_seq == 2
    assert await _dead_letters(bus) == []


async def test_retry_later_naks_with_the_requested_delay(bus: Bus) -> None:
    """RetryLater(delay) hands the message back for at least ``delay`` and is not an error."""
    deliveries: list[float] = []
    worker = make_worker(_retry_once(deliveries, 0.6))
    async with worker.running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="later"))
        await eventually(lambda: _async(len(deliveries) == 2))
        await eventually(lambda: _consumer_idle(bus))
        stats = worker.service.stats() if worker.service else None
    assert deliveries[1] - deliveries[0] >= 0.55
    assert stats is not None
    assert stats.endpoints[0].num_errors == 0


def _retry_once(deliveries: list[float], delay: float):  # type: ignore[no-untyped-def]
    async def handler(job: Job, ctx: MessageContext) -> None:
        deliveries.append(time.monotonic())
        if ctx.num_delivered == 1:
            raise RetryLater(delay)

    return handler


async def test_dead_letter_signal_copies_message_with_reason(bus: Bus) -> None:
    """DeadLetter(reason) terminates the message at once with that reason."""

    async def refuse(job: Job, ctx: MessageContext) -> None:
        raise DeadLetter("template gone")

    async with make_worker(refuse).running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="refused"))
        letters = await eventually(lambda: _dead_letters_n(bus, 1))
    assert letters[0][1][h.DEAD_LETTER_REASON] == "template gone"
    assert msgspec.msgpack.decode(letters[0][0], type=Job) == Job(id="refused")


async def test_in_progress_keeps_a_long_handler_from_redelivery(bus: Bus) -> None:
    """A handler running past ack_wait is kept alive, so the message is delivered once."""
    deliveries: list[int] = []

    async def slow(job: Job, ctx: MessageContext) -> None:
        deliveries.append(ctx.num_delivered)
        await asyncio.sleep(2.6)

    async with make_worker(slow, ack_wait=1.0).running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="slow"))
        await eventually(lambda: _consumer_idle(bus))
    assert deliveries == [1]


@pytest.mark.processes
@pytest.mark.chaos
async def test_message_is_acked_only_after_success_so_a_killed_handler_is_redelivered(
    bus: Bus, nats_url: str
) -> None:
    """SIGKILL while a handler runs: the message comes back to the next worker."""
    started = await bus.nc.subscribe(STARTED_SUBJECT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.actors.runtime.workers", nats_url, "10", "1"],
        cwd=REPO,
        env={**os.environ, "OTEL_SDK_DISABLED": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await bus.ensure_stream(JOBS)
        await bus.send(JOBS_SUBJECT, Job(id="victim"))
        first = await started.next_msg(timeout=15.0)
        assert first.data == b"victim"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    deliveries: list[tuple[str, int]] = []

    async def finish(job: Job, ctx: MessageContext) -> None:
        deliveries.append((job.id, ctx.num_delivered))

    async with make_worker(finish, ack_wait=1.0).running(bus):
        await eventually(lambda: _async(bool(deliveries)), timeout=10.0)
        await eventually(lambda: _consumer_idle(bus))
    assert deliveries == [("victim", 2)]


# -- helpers ---------------------------------------------------------------------------


async def _async(value: bool) -> bool:
    return value


async def _dead_letters_n(bus: Bus, n: int) -> list[tuple[bytes, dict[str, str]]] | None:
    letters = await _dead_letters(bus)
    return letters if len(letters) >= n else None


async def _consumer_idle(bus: Bus):  # type: ignore[no-untyped-def]
    info = await bus.js.consumer_info(JOBS.name, "workers")
    return info if info.num_ack_pending == 0 and info.num_pending == 0 else None


# -- handler slots ------------------------------------------------------------------


async def test_handlers_that_wait_hold_a_place_and_the_next_one_waits_for_a_free_place() -> None:
    """At most ``limit`` handlers are suspended at once; one more starts only once one ends,
    and while it waits nothing else is let in ahead of it."""
    tasks = _Tasks(2)
    release = asyncio.Event()
    started: list[int] = []

    async def handler(n: int) -> None:
        started.append(n)
        await release.wait()

    await tasks.run(handler(1))
    assert tasks.try_run(handler, 2)
    assert tasks.full
    third = asyncio.ensure_future(tasks.run(handler(3)))
    await asyncio.sleep(0)
    assert started == [1, 2]
    assert not third.done()
    assert not tasks.try_run(handler, 4)  # full, and the third is waiting
    release.set()
    await asyncio.wait_for(third, 30)
    assert started == [1, 2, 3]
    assert await tasks.settle(30) == 0
    assert not tasks.full


async def test_handlers_that_finish_without_waiting_never_take_a_place() -> None:
    """A handler answering from memory runs at once and leaves no task behind, even while
    every place is held; one that waits holds its place until it ends."""
    tasks = _Tasks(1)
    release = asyncio.Event()
    answered: list[int] = []

    async def waits() -> None:
        await release.wait()

    async def answers(n: int) -> None:
        answered.append(n)

    await tasks.run(waits())
    assert tasks.full
    assert not tasks.try_run(answers, 0)
    release.set()
    assert await tasks.settle(30) == 0
    for n in range(1, 6):
        assert tasks.try_run(answers, n)
    await tasks.run(answers(6))
    assert answered == [1, 2, 3, 4, 5, 6]
    assert tasks.running == set()
    assert not tasks.full


async def test_a_waiter_cancelled_while_waiting_for_a_place_lets_others_in_again() -> None:
    """Stopping while a message waits for a place closes its handler unstarted and leaves
    no one counted as waiting."""
    tasks = _Tasks(1)
    release = asyncio.Event()
    started: list[str] = []

    async def handler(name: str) -> None:
        started.append(name)
        await release.wait()

    await tasks.run(handler("first"))
    waiter = asyncio.ensure_future(tasks.run(handler("held back")))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await tasks.settle(30) == 0
    assert tasks.try_run(handler, "next")
    assert started == ["first", "next"]
    assert await tasks.settle(30) == 0


async def test_requests_beyond_the_endpoints_concurrency_wait_in_order_and_are_all_answered(
    bus: Bus,
) -> None:
    """While every place of an endpoint is taken, requests queue on its subscription and are
    answered once places free; none is lost, whether served as read or from the queue."""
    gate = asyncio.Event()
    seen: list[int] = []

    class Gated(Echo):
        name = "gated"

        async def on_start(self) -> None:
            await self.add_endpoint("test.gated", self.gated, concurrency=1)

        async def gated(self, request: Ping, ctx: RequestContext) -> Pong:
            seen.append(request.n)
            if request.n == 0:
                await gate.wait()
            return Pong(n=request.n)

    async with Gated().running(bus):
        first = asyncio.ensure_future(bus.request("test.gated", Ping(n=0), Pong, timeout=30))
        await eventually(lambda: seen == [0])
        rest = [
            asyncio.ensure_future(bus.request("test.gated", Ping(n=n), Pong, timeout=30))
            for n in range(1, 21)
        ]
        await bus.nc.flush()
        assert seen == [0]
        gate.set()
        answers = await asyncio.gather(first, *rest)
        assert [a.n for a in answers] == list(range(21))
        assert sorted(seen) == list(range(21))
        more = await asyncio.gather(
            *(bus.request("test.gated", Ping(n=n), Pong, timeout=30) for n in range(21, 41))
        )
        assert [a.n for a in more] == list(range(21, 41))
