"""Clocks: the one source of time for anything time-dependent.

Breakers, heartbeats, ETAs, retries and deadlines take a :class:`Clock`, so
tests drive time with :class:`actors.runtime.testing.ManualClock` instead of
sleeping. Every sleep and time-out of the runtime goes through one
(:func:`wait_tasks` bounds a wait by a clock's time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "system_clock", "wait_tasks"]


@runtime_checkable
class Clock(Protocol):
    """What troupe needs from a clock."""

    def time(self) -> float:
        """Wall-clock Unix time in seconds (for timestamps on the wire)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (for durations and timeouts)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Return :func:`time.time`."""
        return time.time()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with :func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)


system_clock = SystemClock()
"""The shared real clock, the default everywhere."""


async def wait_tasks(
    tasks: Iterable[asyncio.Future[Any]], timeout: float, clock: Clock = system_clock
) -> set[asyncio.Future[Any]]:
    """Wait until every task is done or ``timeout`` of ``clock``'s time passed.

    Returns:
        The tasks still pending (empty when all finished in time).
    """
    pending: set[asyncio.Future[Any]] = {t for t in tasks if not t.done()}
    if not pending:
        return pending
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        while pending and not timer.done():
            _, pending = await asyncio.wait(pending | {timer}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(timer)
    finally:
        timer.cancel()
    return {t for t in pending if not t.done()}
