"""The breaker supervisor's client module: typed list and control calls, real-time waits."""

from __future__ import annotations

import pytest

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.breaker_supervisor.client import (
    BreakerView,
    OutcomeReporter,
    control_breaker,
    list_breakers,
)
from actors.runtime.bus import Bus
from actors.runtime.testing import ManualClock, eventually

pytestmark = pytest.mark.integration


async def test_control_then_list_shows_the_forced_breaker(
    bus: Bus, supervisor: BreakerSupervisor
) -> None:
    """control_breaker answers the new state; list_breakers filters by prefix."""
    forced = await control_breaker(bus, "image:alpine", "force_open")
    assert [s.state for s in forced.items] == ["forced_open"]
    await control_breaker(bus, "backend:dagger", "disable")
    listed = await list_breakers(bus, "image:")
    assert [(s.key, s.state) for s in listed.items] == [("image:alpine", "forced_open")]
    assert len((await list_breakers(bus)).items) == 2


async def test_view_and_reporter_work_while_the_domain_clock_stands_still(
    bus: Bus, supervisor: BreakerSupervisor, clock: ManualClock
) -> None:
    """Loading, flushing and stopping wait on real time, not on a manual domain clock."""
    await control_breaker(bus, "image:python", "force_open")
    async with BreakerView(bus, clock) as view, OutcomeReporter(bus, clock) as reporter:
        await eventually(lambda: view.state("image:python") == "forced_open" or None)
        reporter.report("image:python", ok=True, duration_s=0.1)
        await reporter.flush(timeout=10.0)
        assert reporter.sent == 1
