"""Clocks: the one source of time for anything time-dependent.

Breakers, heartbeats, ETAs, retries and deadlines take a :class:`Clock`, so
tests drive time with :class:`actors.runtime.testing.ManualClock` instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "system_clock"]


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
