"""The Actor lifecycle on a real server: graceful drain, SIGTERM, the micro protocol."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import (
    Actor,
    BucketSpec,
    Bus,
    ConfigError,
    ConnectionConfig,
    ConsumerSpec,
    Entry,
    MessageContext,
    NotFound,
    RequestContext,
    TypedBucket,
    consumer,
    endpoint,
)
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.subscriptions import EndpointRuntime
from actors.runtime.testing import eventually
from tests.actors.behaviour import ActorBehaviour
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

REPO = Path(__file__).resolve().parents[3]


async def _true(value: bool) -> bool:
    return value


async def _consumer_idle(bus: Bus):  # type: ignore[no-untyped-def]
    info = await bus.js.consumer_info(JOBS.name, "workers")
    return info if info.num_ack_pending == 0 and info.num_pending == 0 else None


# -- graceful drain ---------------------------------------------------------------------


async def test_stop_lets_running_handlers_finish_within_grace(bus: Bus) -> None:
    """Stopping while stream handlers run waits for them; their messages are acked."""
    started: list[str] = []
    finished: list[str] = []

    async def work(job: Job, ctx: MessageContext) -> None:
        started.append(job.id)
        await asyncio.sleep(0.4)
        finished.append(job.id)

    worker = make_worker(work, concurrency=4)
    worker.grace = 5.0
    await worker.start(bus)
    try:
        for i in range(3):
            await bus.send(JOBS_SUBJECT, Job(id=f"j{i}"))
        await eventually(lambda: _true(len(started) == 3))
    finally:
        await worker.stop()
    assert sorted(finished) == ["j0", "j1", "j2"]
    assert await _consumer_idle(bus) is not None


async def test_stop_hands_back_handlers_that_outlive_grace(bus: Bus) -> None:
    """Handlers still running after grace are cancelled and their messages nak'ed at once."""
    started: list[str] = []

    async def hang(job: Job, ctx: MessageContext) -> None:
        started.append(job.id)
        await asyncio.Event().wait()

    # concurrency 2 with 2 jobs: every slot is busy when stop begins.
    worker = make_worker(hang, concurrency=2)
    worker.grace = 0.3
    await worker.start(bus)
    try:
        await bus.send(JOBS_SUBJECT, Job(id="a"))
        await bus.send(JOBS_SUBJECT, Job(id="b"))
        await eventually(lambda: _true(len(started) == 2))
    finally:
        began = time.monotonic()
        await worker.stop()
        stop_took = time.monotonic() - began
    assert stop_took < 3.0
    redelivered: list[tuple[str, int]] = []

    async def finish(job: Job, ctx: MessageContext) -> None:
        redelivered.append((job.id, ctx.num_delivered))

    # ack_wait is 30 s: a redelivery within seconds proves the messages were nak'ed.
    async with make_worker(finish, concurrency=2).running(bus):
        await eventually(lambda: _true(len(redelivered) == 2))
    assert sorted(redelivered) == [("a", 2), ("b", 2)]


async def test_stop_answers_requests_already_received(bus: Bus) -> None:
    """A request being handled when the actor stops still gets its reply."""
    actor = Echo()
    await actor.start(bus)
    pending = asyncio.ensure_future(bus.request(ECHO_SUBJECT, Ping(n=5, mode="slow"), Pong))
    await eventually(lambda: _true(actor._runtimes[0].stats.num_requests == 1))
    await actor.stop()
    assert await asyncio.wait_for(pending, 5.0) == Pong(n=5)


async def test_serve_stops_when_asked_and_closes_its_connection(nats_url: str) -> None:
    """serve() runs until its stop event is set, then returns."""
    stop = asyncio.Event()
    actor = Echo()
    task = asyncio.ensure_future(
        actor.serve(
            ConnectionConfig(url=nats_url, connect_timeout=5.0), stop=stop, handle_signals=False
        )
    )
    async with await Bus.connect(ConnectionConfig(url=nats_url)) as client:
        reply = await eventually(lambda: _request_or_none(client))
        assert reply == Pong(n=1)
        stop.set()
        await asyncio.wait_for(task, 10.0)
    assert actor.service is None


async def _request_or_none(bus: Bus) -> Pong | None:
    try:
        return await bus.request(ECHO_SUBJECT, Ping(n=1), Pong, timeout=0.5)
    except Exception:
        return None


@pytest.mark.processes
async def test_sigterm_hands_back_in_flight_work_and_exits_zero(bus: Bus, nats_url: str) -> None:
    """A worker process given SIGTERM stops within its grace and exits 0."""
    started = await bus.nc.subscribe(STARTED_SUBJECT)
    await bus.ensure_stream(JOBS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.actors.runtime.workers", nats_url, "0.5", "30"],
        cwd=REPO,
        env={**os.environ, "OTEL_SDK_DISABLED": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await bus.send(JOBS_SUBJECT, Job(id="in-flight"))
        await started.next_msg(timeout=15.0)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stderr is not None
        proc.stderr.close()
    assert code == 0
    assert took < 5.0
    redelivered: list[int] = []

    async def finish(job: Job, ctx: MessageContext) -> None:
        redelivered.append(ctx.num_delivered)

    # ack_wait is 30 s: a redelivery within seconds proves the process nak'ed it.
    async with make_worker(finish, ack_wait=30.0).running(bus):
        await eventually(lambda: _true(redelivered == [2]))


# -- the micro protocol -------------------------------------------------------------------


async def _collect(bus: Bus, subject: str, expected: int) -> list[dict[str, Any]]:
    """Send a micro request and gather ``expected`` JSON replies."""
    inbox = bus.nc.new_inbox()
    sub = await bus.nc.subscribe(inbox)
    await bus.nc.publish(subject, b"", reply=inbox)
    replies: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 5.0
        while len(replies) < expected and time.monotonic() < deadline:
            msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
            replies.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    return replies


async def test_srv_ping_gets_one_answer_per_running_actor(bus: Bus) -> None:
    """$SRV.PING is answered by every actor, with its name and version."""
    async with Echo().running(bus), make_worker().running(bus):
        replies = await _collect(bus, "$SRV.PING", 2)
        by_name = await _collect(bus, "$SRV.PING.echo", 1)
    assert sorted(r["name"] for r in replies) == ["echo", "worker"]
    assert all(r["type"] == "io.nats.micro.v1.ping_response" for r in replies)
    assert by_name[0]["name"] == "echo"
    assert by_name[0]["version"] == Actor.version


async def test_srv_info_lists_every_handler_as_an_endpoint(bus: Bus) -> None:
    """$SRV.INFO describes request endpoints and stream consumers."""
    async with Echo().running(bus), make_worker().running(bus):
        (echo,) = await _collect(bus, "$SRV.INFO.echo", 1)
        (worker,) = await _collect(bus, "$SRV.INFO.worker", 1)
    assert echo["endpoints"] == [
        {
            "name": "test-echo",
            "subject": ECHO_SUBJECT,
            "queue_group": "troupe",
            "metadata": {"kind": "request"},
        }
    ]
    (described,) = worker["endpoints"]
    assert described["subject"] == JOBS_SUBJECT
    assert described["metadata"] == {"kind": "stream", "stream": JOBS.name, "durable": "workers"}


async def test_srv_stats_counts_requests_errors_and_latency(bus: Bus) -> None:
    """$SRV.STATS reports per-endpoint requests, errors, last error and processing time."""
    async with Echo().running(bus):
        for i in range(3):
            await bus.request(ECHO_SUBJECT, Ping(n=i), Pong)
        with pytest.raises(NotFound):
            await bus.request(ECHO_SUBJECT, Ping(n=9, mode="missing"), Pong)
        await bus.nc.request(ECHO_SUBJECT, b"\xc1", timeout=5.0)
        (stats,) = await _collect(bus, "$SRV.STATS.echo", 1)
    (counted,) = stats["endpoints"]
    assert counted["num_requests"] == 5
    assert counted["num_errors"] == 2
    assert counted["last_error"] == "bad_request"
    assert counted["processing_time"] > 0
    assert 0 < counted["average_processing_time"] <= counted["processing_time"]


async def test_srv_stats_of_a_consumer_reports_redeliveries_and_dead_letters(bus: Bus) -> None:
    """A stream consumer's stats carry redelivery and dead-letter counts in ``data``."""

    async def fail(job: Job, ctx: MessageContext) -> None:
        raise ValueError("no")

    worker = make_worker(fail, max_deliver=2, backoff=(0.05,))
    async with worker.running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="x"))
        await eventually(lambda: _true(worker._runtimes[0].dead_lettered == 1))  # type: ignore[union-attr]
        (stats,) = await _collect(bus, "$SRV.STATS.worker", 1)
    (counted,) = stats["endpoints"]
    assert counted["num_requests"] == 2
    assert counted["num_errors"] == 2
    assert counted["data"] == {"redeliveries": 1, "dead_lettered": 1}


# -- handlers added at run time, per-instance options -------------------------------------

BOARD = BucketSpec(name="test-board")


class Configured(Actor):
    """A worker whose consumer and endpoint options come from its instance config."""

    name = "configured"

    def __init__(self, *, concurrency: int, ack_wait: float, max_deliver: int) -> None:
        super().__init__()
        self.concurrency = concurrency
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver

    @consumer(
        JOBS,
        durable="configured",
        options=lambda self: {
            "concurrency": self.concurrency,
            "ack_wait": self.ack_wait,
            "max_deliver": self.max_deliver,
            "max_ack_pending": self.concurrency * 2,
        },
    )
    async def work(self, job: Job, ctx: MessageContext) -> None:
        """Accept every job."""

    @endpoint(ECHO_SUBJECT, options=lambda self: {"concurrency": self.concurrency})
    async def echo(self, request: Ping, ctx: RequestContext) -> Pong:
        """Echo."""
        return Pong(n=request.n)


async def test_decorator_options_take_each_instances_config_to_the_server(bus: Bus) -> None:
    """A per-instance options callable sets the durable consumer's settings on the server."""
    actor = Configured(concurrency=1, ack_wait=5.0, max_deliver=3)
    async with actor.running(bus):
        info = await bus.js.consumer_info(JOBS.name, "configured")
        endpoint_runtime = next(r for r in actor.handlers if isinstance(r, EndpointRuntime))
        consumer_runtime = next(r for r in actor.handlers if isinstance(r, ConsumerRuntime))
    assert info.config.ack_wait == 5.0
    assert info.config.max_deliver == 3 + 1  # one more to dead-letter a crash on the last
    assert info.config.max_ack_pending == 2
    assert consumer_runtime.spec.concurrency == 1
    assert endpoint_runtime.spec.concurrency == 1


async def test_invalid_per_instance_options_fail_start_naming_the_field(bus: Bus) -> None:
    """An options callable returning a bad value fails start with a ConfigError."""
    actor = Configured(concurrency=0, ack_wait=5.0, max_deliver=3)
    with pytest.raises(ConfigError, match="concurrency"):
        await actor.start(bus)
    assert not actor.is_running


class Dynamic(Actor):
    """Adds every handler kind at run time."""

    name = "dynamic"

    def __init__(self, durable: str = "dynamic") -> None:
        super().__init__()
        self.durable = durable
        self.jobs: list[str] = []
        self.events: list[int] = []
        self.entries: list[Entry[Job | None]] = []
        self.failures: list[BaseException] = []

    async def on_start(self) -> None:
        await self.add_consumer(
            ConsumerSpec(stream=JOBS, durable=self.durable, ack_wait=7.0, max_ack_pending=9),
            self.work,
        )
        await self.add_listener("test.events.>", self.hear)
        await self.add_watch(BOARD, self.seen)

    async def on_failure(self, exc: BaseException) -> None:
        self.failures.append(exc)

    async def work(self, job: Job, ctx: MessageContext) -> None:
        self.jobs.append(job.id)

    async def hear(self, event: Ping, ctx: RequestContext) -> None:
        self.events.append(event.n)

    async def seen(self, entry: Entry[Job | None]) -> None:
        self.entries.append(entry)
        if entry.value is not None and entry.value.id == "boom":
            raise RuntimeError("watch handler failed")

    async def echo(self, request: Ping, ctx: RequestContext) -> Pong:
        return Pong(n=request.n * 2)


async def test_handlers_added_in_on_start_run_and_appear_in_srv_info(bus: Bus) -> None:
    """Consumer, listener and watch added in on_start all work and are listed by INFO."""
    actor = Dynamic()
    kv_jobs = await TypedBucket.bind(bus, BOARD, Job)
    await kv_jobs.put("before", Job(id="b"))
    async with actor.running(bus):
        info = await bus.js.consumer_info(JOBS.name, "dynamic")
        await bus.send(JOBS_SUBJECT, Job(id="j1"))
        await bus.publish("test.events.x", Ping(n=4))
        await kv_jobs.put("after", Job(id="a"))
        await eventually(lambda: _true(actor.jobs == ["j1"] and actor.events == [4]))
        await eventually(lambda: _true(len(actor.entries) == 2))
        (described,) = await _collect(bus, "$SRV.INFO.dynamic", 1)
    assert info.config.ack_wait == 7.0
    assert info.config.max_ack_pending == 9
    assert [e.key for e in actor.entries] == ["before", "after"]
    kinds = {e["metadata"]["kind"]: e["subject"] for e in described["endpoints"]}
    assert kinds == {"stream": JOBS_SUBJECT, "event": "test.events.>", "watch": "$KV.test-board.>"}


async def test_an_endpoint_added_while_running_answers_at_once_and_is_counted(bus: Bus) -> None:
    """add_endpoint after start subscribes at once; STATS shows it with its counts."""
    actor = Dynamic()
    async with actor.running(bus):
        await actor.add_endpoint("test.double", actor.echo, concurrency=3)
        assert await bus.request("test.double", Ping(n=21), Pong) == Pong(n=42)
        await bus.nc.request("test.double", b"\xc1", timeout=5.0)
        (stats,) = await _collect(bus, "$SRV.STATS.dynamic", 1)
    (added,) = [e for e in stats["endpoints"] if e["subject"] == "test.double"]
    assert added["num_requests"] == 2
    assert added["last_error"] == "bad_request"


async def test_a_failing_watch_handler_is_counted_and_reported_and_the_watch_goes_on(
    bus: Bus,
) -> None:
    """A watch handler that raises counts an error, reaches on_failure, and sees later entries."""
    actor = Dynamic()
    board = await TypedBucket.bind(bus, BOARD, Job)
    async with actor.running(bus):
        await board.put("x", Job(id="boom"))
        await board.put("y", Job(id="fine"))
        await board.delete("x")
        await eventually(lambda: _true(len(actor.entries) == 3))
        (stats,) = await _collect(bus, "$SRV.STATS.dynamic", 1)
    (watch,) = [e for e in stats["endpoints"] if e["name"] == "watch-test-board"]
    assert watch["num_requests"] == 3
    assert watch["num_errors"] == 1
    assert [type(f).__name__ for f in actor.failures] == ["RuntimeError"]
    assert actor.entries[-1].operation == "delete"
    assert actor.entries[-1].value is None


class CaughtUp(Actor):
    """Records the entries its watch handled when the watch caught up."""

    name = "caught-up"

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.at_caught_up: list[list[str]] = []

    async def on_start(self) -> None:
        await self.add_watch(BOARD, self.seen, on_caught_up=self.caught_up)

    async def seen(self, entry: Entry[Job | None]) -> None:
        self.keys.append(entry.key)

    async def caught_up(self) -> None:
        self.at_caught_up.append(list(self.keys))


async def test_a_watch_calls_on_caught_up_after_handling_every_initial_value(bus: Bus) -> None:
    """on_caught_up runs once, after the handler took each live key and before any update."""
    board = await TypedBucket.bind(bus, BOARD, Job)
    await board.put("a", Job(id="a"))
    await board.put("b", Job(id="b"))
    actor = CaughtUp()
    async with actor.running(bus):
        await eventually(lambda: actor.at_caught_up == [["a", "b"]])
        await board.put("c", Job(id="c"))
        await eventually(lambda: actor.keys == ["a", "b", "c"])
    assert actor.at_caught_up == [["a", "b"]]


async def _board_readers(bus: Bus) -> int:
    """Consumers on the board bucket's stream that the server delivers to (a watch's
    consumer left unbound is removed by the server later, and meanwhile gets nothing)."""
    return sum(1 for c in await bus.js.consumers_info(f"KV_{BOARD.name}") if c.push_bound)


async def _board_read_by(bus: Bus, count: int) -> bool:
    """The server marks a consumer unbound once it has handled the unsubscribe, which may be
    after it answers the next request: callers wait for this rather than assert it at once."""
    return await _board_readers(bus) == count


async def test_a_watch_removed_while_running_loses_its_consumer_and_leaves_srv_info(
    bus: Bus,
) -> None:
    """remove_handler stops a watch added at run time: the server delivers to its consumer no
    more, INFO lists it no more, the other handlers go on, and removing it again says it is gone."""
    board = await TypedBucket.bind(bus, BOARD, Job)
    await board.put("a", Job(id="a"))
    actor = CaughtUp()
    async with actor.running(bus):
        seen: list[str] = []

        async def also(entry: Entry[Job | None]) -> None:
            seen.append(entry.key)

        spec = await actor.add_watch(BOARD, also, name="watch-also")
        await eventually(lambda: _true(seen == ["a"] and actor.keys == ["a"]))
        assert await _board_readers(bus) == 2

        assert await actor.remove_handler(spec)
        await eventually(lambda: _board_read_by(bus, 1), what="the server unbinding the consumer")
        assert [r.spec.name for r in actor.handlers] == ["watch-test-board"]
        (described,) = await _collect(bus, "$SRV.INFO.caught-up", 1)
        assert [e["name"] for e in described["endpoints"]] == ["watch-test-board"]
        await board.put("b", Job(id="b"))
        await eventually(lambda: _true(actor.keys == ["a", "b"]))
        assert not await actor.remove_handler(spec)
    assert seen == ["a"]


class DynamicWithEndpoint(Dynamic):
    """Every handler kind, all added with add_* in on_start."""

    name = "dynamic-full"

    async def on_start(self) -> None:
        await super().on_start()
        await self.add_endpoint("test.double", self.echo)


class TestHandlersAddedAtRunTimeBehaviour(ActorBehaviour):
    """The shared behaviour suite holds for handlers added with add_*."""

    @pytest.fixture
    def actor_factory(self) -> Callable[[], Actor]:
        """A fresh actor whose handlers are all added at run time."""
        return DynamicWithEndpoint
