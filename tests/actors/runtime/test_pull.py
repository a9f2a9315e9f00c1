"""Continuous pull on a real server: one open request for free slots, never more in hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from actors.runtime import Bus, ConnectionConfig, ConsumerSpec, MessageContext
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.server import NatsServer
from actors.runtime.testing import eventually
from actors.runtime.topology import StreamSpec
from tests.actors.runtime.workers import Job

pytestmark = pytest.mark.integration

STREAM = StreamSpec(name="PULL", subjects=("pull.>",))


class _Patient(ConsumerRuntime):
    """A consumer whose pull requests stay open for 2 s."""

    fetch_timeout = 2.0


async def _failure(exc: BaseException) -> None:
    raise AssertionError(f"handler failed: {exc!r}")


@pytest.fixture
async def started() -> AsyncIterator[list[ConsumerRuntime]]:
    """Consumers started by a test, stopped after it."""
    runtimes: list[ConsumerRuntime] = []
    try:
        yield runtimes
    finally:
        for runtime in runtimes:
            await runtime.stop(1.0)


async def _consume(
    bus: Bus,
    handler: object,
    started: list[ConsumerRuntime],
    *,
    concurrency: int,
    kind: type[ConsumerRuntime] = ConsumerRuntime,
) -> ConsumerRuntime:
    await bus.ensure_stream(STREAM)
    spec = ConsumerSpec(stream=STREAM, durable="pull", concurrency=concurrency)
    runtime = kind(bus.js, spec, handler, Job, actor="test", on_failure=_failure)  # type: ignore[arg-type]
    await runtime.start()
    started.append(runtime)
    return runtime


async def test_messages_that_trickle_in_share_one_pull_request(
    bus: Bus, started: list[ConsumerRuntime]
) -> None:
    """Twenty messages sent one after the other, each handled before the next: one request
    per expiry of the open one, not one per message."""
    seen: list[str] = []

    async def handle(job: Job, ctx: MessageContext) -> None:
        seen.append(job.id)

    runtime = await _consume(bus, handle, started, concurrency=32, kind=_Patient)
    began = time.monotonic()
    for i in range(20):
        await bus.send("pull.jobs", Job(id=f"j{i}"))
        await eventually(lambda: f"j{i}" in seen)  # noqa: B023 - awaited in this iteration
    expiries = int((time.monotonic() - began) // _Patient.fetch_timeout)
    assert seen == [f"j{i}" for i in range(20)]
    assert runtime.puller.requests <= 1 + expiries


async def test_a_saturated_consumer_never_holds_more_messages_than_slots(
    bus: Bus, started: list[ConsumerRuntime]
) -> None:
    """With two slots, two messages are in hand at a time and the rest wait on the server."""
    release = asyncio.Event()
    running: list[str] = []
    most = 0
    done: list[str] = []

    async def handle(job: Job, ctx: MessageContext) -> None:
        nonlocal most
        running.append(job.id)
        most = max(most, len(running))
        await release.wait()
        running.remove(job.id)
        done.append(job.id)

    for i in range(6):
        await bus.ensure_stream(STREAM)
        await bus.send("pull.jobs", Job(id=f"j{i}"))
    runtime = await _consume(bus, handle, started, concurrency=2)
    await eventually(lambda: len(running) == 2)
    info = await bus.js.consumer_info(STREAM.name, "pull")
    assert (info.num_ack_pending, info.num_pending) == (2, 4)
    assert runtime.puller.handed == 2
    release.set()
    await eventually(lambda: len(done) == 6)
    assert most == 2


async def test_consuming_goes_on_after_the_server_restarts(server: NatsServer) -> None:
    """The open request dies with the server; a new one is sent and new messages arrive."""
    bus = await Bus.connect(ConnectionConfig(url=server.url, connect_timeout=5.0))
    seen: list[str] = []

    async def handle(job: Job, ctx: MessageContext) -> None:
        seen.append(job.id)

    runtimes: list[ConsumerRuntime] = []
    try:
        await _consume(bus, handle, runtimes, concurrency=4)
        await bus.send("pull.jobs", Job(id="before"))
        await eventually(lambda: seen == ["before"])
        server.stop()
        server.start()
        await eventually(lambda: bus.nc.is_connected, timeout=30.0)

        async def sent() -> bool:
            await bus.send("pull.jobs", Job(id="after"))
            return True

        await eventually(sent, timeout=30.0, ignoring=(Exception,))
        await eventually(lambda: "after" in seen, timeout=30.0)
    finally:
        for runtime in runtimes:
            await runtime.stop(1.0)
        await bus.close()
