"""ManualClock and eventually: test affordances shipped with the runtime."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime.clock import Clock, system_clock
from actors.runtime.testing import ManualClock, eventually


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
