"""Fixtures of the status tracker tests: a settable clock and an in-process tracker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from actors.runtime.bus import Bus
from actors.runtime.testing import ManualClock
from actors.status_tracker import StatusTracker, TrackerConfig


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting now."""
    return ManualClock(start=time.time())


@pytest.fixture
async def tracker(bus: Bus, clock: ManualClock) -> AsyncIterator[StatusTracker]:
    """A status tracker running in this process on the test's server."""
    actor = StatusTracker(clock=clock, config=TrackerConfig(eta_cache_s=0.0))
    async with actor.running(bus):
        yield actor
