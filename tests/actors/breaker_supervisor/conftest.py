"""Fixtures of the breaker supervisor tests: a supervisor, a view and a reporter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.breaker_supervisor.config import BreakerConfig, SupervisorConfig
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.runtime.bus import Bus
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.testing import ManualClock

FAST = BreakerConfig(
    window_size=4,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    slow_call_duration=1.0,
    slow_rate_threshold=0.5,
    wait_open=10.0,
    wait_multiplier=2.0,
    max_wait_open=40.0,
    half_open_permits=2,
    half_open_max_wait=0.0,
)
"""Opens after 2 of 4 calls fail (or are slower than 1 s); 10 s, then 20 s, ... open."""


@pytest.fixture(autouse=True)
def quick_consumer_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter fetches, so stopping a supervisor does not wait a full second."""
    monkeypatch.setattr(ConsumerRuntime, "fetch_timeout", 0.2)


@pytest.fixture
def clock() -> ManualClock:
    """A settable clock shared by the supervisor, the view and the reporter."""
    return ManualClock()


@pytest.fixture
def config() -> SupervisorConfig:
    """Every key judged by :data:`FAST`."""
    return SupervisorConfig(default=FAST, prefixes={})


@pytest.fixture
async def supervisor(
    bus: Bus, clock: ManualClock, config: SupervisorConfig
) -> AsyncIterator[BreakerSupervisor]:
    """A breaker supervisor running in this process."""
    actor = BreakerSupervisor(clock=clock, config=config)
    actor.grace = 2.0
    async with actor.running(bus):
        yield actor


@pytest.fixture
async def view(bus: Bus, clock: ManualClock) -> AsyncIterator[BreakerView]:
    """A runner's local view of the breakers."""
    async with BreakerView(bus, clock, owner="test-runner") as v:
        yield v


@pytest.fixture
async def reporter(bus: Bus, clock: ManualClock) -> AsyncIterator[OutcomeReporter]:
    """An outcome reporter."""
    async with OutcomeReporter(bus, clock) as r:
        yield r
