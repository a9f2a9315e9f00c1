"""The Actor lifecycle on a real server: graceful drain, SIGTERM, the micro protocol."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.runtime import Actor, Bus, ConnectionConfig, MessageContext, NotFound
from actors.runtime.testing import eventually
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
        await eventually(lambda: _true(len(redelivered) == 2), timeout=5.0)
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
        await eventually(lambda: _true(redelivered == [2]), timeout=5.0)


# -- the micro protocol -------------------------------------------------------------------


async def _collect(bus: Bus, subject: str, expected: int) -> list[dict[str, object]]:
    """Send a micro request and gather ``expected`` JSON replies."""
    inbox = bus.nc.new_inbox()
    sub = await bus.nc.subscribe(inbox)
    await bus.nc.publish(subject, b"", reply=inbox)
    replies = []
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
    (consumer,) = worker["endpoints"]  # type: ignore[misc]
    assert consumer["subject"] == JOBS_SUBJECT
    assert consumer["metadata"] == {"kind": "stream", "stream": JOBS.name, "durable": "workers"}


async def test_srv_stats_counts_requests_errors_and_latency(bus: Bus) -> None:
    """$SRV.STATS reports per-endpoint requests, errors, last error and processing time."""
    async with Echo().running(bus):
        for i in range(3):
            await bus.request(ECHO_SUBJECT, Ping(n=i), Pong)
        with pytest.raises(NotFound):
            await bus.request(ECHO_SUBJECT, Ping(n=9, mode="missing"), Pong)
        await bus.nc.request(ECHO_SUBJECT, b"\xc1", timeout=5.0)
        (stats,) = await _collect(bus, "$SRV.STATS.echo", 1)
    (endpoint,) = stats["endpoints"]  # type: ignore[misc]
    assert endpoint["num_requests"] == 5
    assert endpoint["num_errors"] == 2
    assert endpoint["last_error"] == "bad_request"
    assert endpoint["processing_time"] > 0
    assert 0 < endpoint["average_processing_time"] <= endpoint["processing_time"]


async def test_srv_stats_of_a_consumer_reports_redeliveries_and_dead_letters(bus: Bus) -> None:
    """A stream consumer's stats carry redelivery and dead-letter counts in ``data``."""

    async def fail(job: Job, ctx: MessageContext) -> None:
        raise ValueError("no")

    worker = make_worker(fail, max_deliver=2, backoff=(0.05,))
    async with worker.running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="x"))
        await eventually(lambda: _true(worker._runtimes[0].dead_lettered == 1))  # type: ignore[union-attr]
        (stats,) = await _collect(bus, "$SRV.STATS.worker", 1)
    (endpoint,) = stats["endpoints"]  # type: ignore[misc]
    assert endpoint["num_requests"] == 2
    assert endpoint["num_errors"] == 2
    assert endpoint["data"] == {"redeliveries": 1, "dead_lettered": 1}
