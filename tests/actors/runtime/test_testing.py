"""ManualClock and eventually: test affordances shipped with the runtime."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, system_clock
from actors.runtime.testing import ManualClock, consumer_acked, consumer_idle, eventually


def test_manual_clock_is_a_clock() -> None:
    """ManualClock satisfies the Clock protocol, as does the system clock."""
    assert isinstance(ManualClock(), Clock)
    assert isinstance(system_clock, Clock)


def test_manual_clock_moves_only_when_advanced() -> None:
    """time() and monotonic() change only through advance()."""
    clock = ManualClock(start=100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 0.0)
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (102.5, 2.5)


def test_manual_clock_refuses_to_go_back() -> None:
    """Time only moves forward."""
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(-1)


async def test_sleep_wakes_only_once_time_passes_its_deadline() -> None:
    """A sleeper wakes when advance() reaches its deadline, not before."""
    clock = ManualClock()
    sleeper = asyncio.ensure_future(clock.sleep(10))
    await asyncio.sleep(0)
    clock.advance(9.99)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(0.01)
    await asyncio.wait_for(sleeper, 1.0)


async def test_sleepers_wake_in_deadline_order_as_time_advances() -> None:
    """Several sleepers wake as their own deadlines pass."""
    clock = ManualClock()
    woke: list[int] = []

    async def nap(seconds: int) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    tasks = [asyncio.ensure_future(nap(s)) for s in (3, 1, 2)]
    await asyncio.sleep(0)
    for _ in range(3):
        clock.advance(1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
    assert woke == [1, 2, 3]


async def test_non_positive_sleep_returns_at_once() -> None:
    """sleep(0) does not wait for advance()."""
    await asyncio.wait_for(ManualClock().sleep(0), 1.0)


async def test_cancelled_sleeper_does_not_break_advance() -> None:
    """advance() skips sleepers that were cancelled."""
    clock = ManualClock()
    sleeper = asyncio.ensure_future(clock.sleep(1))
    await asyncio.sleep(0)
    sleeper.cancel()
    clock.advance(5)
    await asyncio.wait({sleeper}, timeout=1.0)
    assert sleeper.cancelled()


async def test_eventually_returns_the_first_truthy_value() -> None:
    """eventually polls until the check returns something truthy."""
    calls = 0

    async def check() -> int | None:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else None

    assert await eventually(check, timeout=2.0, interval=0.001) == 3


async def test_eventually_gives_up_after_its_timeout() -> None:
    """A condition that never holds raises TimeoutError."""

    async def never() -> bool:
        return False

    with pytest.raises(TimeoutError):
        await eventually(never, timeout=0.05, interval=0.01)


async def test_a_sleep_is_registered_when_called_not_when_its_task_first_runs() -> None:
    """advance() between clock.sleep(...) and the sleeping task's first step still wakes it."""
    clock = ManualClock()
    sleeper = asyncio.ensure_future(clock.sleep(1))
    clock.advance(1)  # the task has not run yet
    await asyncio.wait_for(sleeper, 5.0)


def test_a_timer_that_reads_the_time_then_sleeps_cannot_miss_an_advance() -> None:
    """A loop that reads now, then sleeps until a deadline, wakes whenever advance() lands."""

    async def scenario(yields: int) -> None:
        clock = ManualClock()
        deadline = clock.monotonic() + 10
        fired = asyncio.Event()

        async def timer() -> None:
            while clock.monotonic() < deadline:
                sleeper = asyncio.ensure_future(clock.sleep(deadline - clock.monotonic()))
                await asyncio.wait({sleeper})
            fired.set()

        task = asyncio.ensure_future(timer())
        for _ in range(yields):
            await asyncio.sleep(0)
        clock.advance(9)
        for _ in range(yields):
            await asyncio.sleep(0)
        clock.advance(1)
        await asyncio.wait_for(fired.wait(), 5.0)
        await task

    for yields in range(6):
        asyncio.run(scenario(yields))


async def test_sleepers_lists_the_time_left_of_pending_sleeps() -> None:
    """sleepers() shows each pending sleep's seconds left, soonest first, and forgets woken ones."""
    clock = ManualClock()
    long = asyncio.ensure_future(clock.sleep(5))
    short = asyncio.ensure_future(clock.sleep(2))
    assert clock.sleepers() == [2.0, 5.0]
    clock.advance(3)
    assert clock.sleepers() == [2.0]
    await asyncio.wait_for(short, 5.0)
    long.cancel()
    await asyncio.wait({long}, timeout=5.0)
    assert clock.sleepers() == []


async def test_eventually_accepts_a_plain_predicate() -> None:
    """A sync callable is polled like an async one; its first truthy value is returned."""
    values = iter([0, None, "", "done"])
    assert await eventually(lambda: next(values), interval=0.001) == "done"


async def test_eventually_accepts_an_assertion_style_check() -> None:
    """A check annotated -> None holds once it stops raising AssertionError."""
    calls: list[int] = []

    def grows() -> None:
        calls.append(1)
        assert len(calls) >= 3, f"only {len(calls)} calls"

    async def grows_async() -> None:
        grows()

    assert await eventually(grows, interval=0.001) is None
    calls.clear()
    assert await eventually(grows_async, interval=0.001) is None
    assert len(calls) == 3


async def test_eventually_names_what_it_waited_for_and_the_last_error() -> None:
    """The time-out message names the check and its last value or AssertionError."""

    def never_true() -> None:
        raise AssertionError("still 2 pending")

    with pytest.raises(TimeoutError, match=r"never_true.*AssertionError: still 2 pending"):
        await eventually(never_true, timeout=0.02, interval=0.005)
    pending = {"a": 2}
    with pytest.raises(TimeoutError, match=r"lambda: not pending.*last value: False"):
        await eventually(lambda: not pending, timeout=0.02, interval=0.005)
    with pytest.raises(TimeoutError, match=r"^the answer: .*last value: 0"):
        await eventually(lambda: 0, timeout=0.02, interval=0.005, what="the answer")


async def test_eventually_lets_unexpected_errors_through_and_retries_listed_ones() -> None:
    """Only AssertionError, and the types in ignoring, mean "not yet"."""
    attempts: list[int] = []

    def flaky() -> bool:
        attempts.append(1)
        if len(attempts) < 3:
            raise KeyError("not yet")
        return True

    with pytest.raises(KeyError):
        await eventually(flaky, interval=0.001)
    assert await eventually(flaky, interval=0.001, ignoring=(KeyError,)) is True


def test_eventually_has_a_generous_default_bound() -> None:
    """Without a timeout a wait lasts long enough for a loaded machine (30 s)."""
    import inspect

    assert inspect.signature(eventually).parameters["timeout"].default >= 30.0


async def _stream_with_consumer(bus: Bus) -> object:
    await bus.js.add_stream(name="WAITS", subjects=["waits.>"])
    return await bus.js.pull_subscribe("waits.>", durable="worker", stream="WAITS")


@pytest.mark.integration
async def test_consumer_idle_waits_until_every_message_is_acked(bus: Bus) -> None:
    """consumer_idle holds only once nothing is pending or unacknowledged."""
    sub = await _stream_with_consumer(bus)
    for i in range(3):
        await bus.js.publish(f"waits.{i}", b"x")
    with pytest.raises(TimeoutError, match="'worker' of stream 'WAITS' idle"):
        await consumer_idle(bus.js, "WAITS", "worker", timeout=0.3)
    msgs = await sub.fetch(3, timeout=10)  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError):
        await consumer_idle(bus.js, "WAITS", "worker", timeout=0.3)
    for msg in msgs:
        await msg.ack()
    info = await consumer_idle(bus.js, "WAITS", "worker")
    assert (info.num_pending, info.num_ack_pending, info.ack_floor.stream_seq) == (0, 0, 3)


@pytest.mark.integration
async def test_consumer_acked_waits_for_the_ack_floor_to_reach_a_sequence(bus: Bus) -> None:
    """consumer_acked holds once the message at seq and all before it are acked."""
    sub = await _stream_with_consumer(bus)
    seqs = [(await bus.js.publish(f"waits.{i}", b"x")).seq for i in range(3)]
    first, second, third = await sub.fetch(3, timeout=10)  # type: ignore[attr-defined]
    await first.ack()
    await second.ack()
    await consumer_acked(bus.js, "WAITS", "worker", seqs[1])
    with pytest.raises(TimeoutError, match=f"acked up to {seqs[2]}"):
        await consumer_acked(bus.js, "WAITS", "worker", seqs[2], timeout=0.3)
    await third.ack()
    info = await consumer_acked(bus.js, "WAITS", "worker", seqs[2])
    assert info.ack_floor.stream_seq == seqs[2]
