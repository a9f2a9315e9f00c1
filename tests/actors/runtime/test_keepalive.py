"""Keep-alive of consumed messages: one task per consumer touches only what runs long."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime import Bus, MessageContext
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.keepalive import KeepAlive, keep_alive_interval
from actors.runtime.testing import ManualClock, eventually
from actors.runtime.topology import StreamSpec
from tests.actors.runtime.workers import JOBS_SUBJECT, Job, make_worker

pytestmark = pytest.mark.integration

STREAM = StreamSpec(name="KEEPALIVE", subjects=("keepalive.>",))


def test_the_interval_is_a_third_of_ack_wait_and_at_least_half_a_second() -> None:
    """Touches come well inside ack_wait, never more often than twice a second."""
    assert keep_alive_interval(30.0) == 10.0
    assert keep_alive_interval(0.9) == 0.5


async def test_a_held_message_is_touched_once_per_interval_until_released(bus: Bus) -> None:
    """Held past the interval: touched; released: never again, and the task sleeps idle."""
    await bus.ensure_stream(STREAM)
    await bus.js.publish("keepalive.one", b"x")
    sub = await bus.js.pull_subscribe("keepalive.one", durable="keepalive", stream=STREAM.name)
    (msg,) = await sub.fetch(1, timeout=5.0)
    clock = ManualClock()
    keep = KeepAlive(2.0, clock)
    task = asyncio.create_task(keep.run())
    try:
        keep.hold(msg)
        await eventually(lambda: clock.sleepers() == [1.0])
        clock.advance(1.0)  # held for half an interval: not yet
        await eventually(lambda: clock.sleepers() == [1.0])
        assert keep.touched == 0
        clock.advance(1.0)
        await eventually(lambda: keep.touched == 1 and clock.sleepers() == [1.0])
        keep.release(msg)
        clock.advance(1.0)
        await eventually(lambda: clock.sleepers() == [])
        clock.advance(10.0)
        assert keep.touched == 1
    finally:
        await cancel_and_wait(task)
        await msg.ack()


async def test_quick_handlers_are_never_touched(bus: Bus) -> None:
    """Handlers that end well inside the interval cost no in_progress at all."""

    async def work(job: Job, ctx: MessageContext) -> None:
        return None

    worker = make_worker(work, ack_wait=30.0, concurrency=4)
    async with worker.running(bus):
        (runtime,) = [r for r in worker.handlers if isinstance(r, ConsumerRuntime)]
        for i in range(20):
            await bus.send(JOBS_SUBJECT, Job(id=f"quick-{i}"))
        await eventually(lambda: runtime.stats.num_requests == 20)
    assert runtime.keep_alive.touched == 0
    assert runtime.redeliveries == 0
