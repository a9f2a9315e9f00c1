"""Runners' local breaker views: watched state, exclusive probes, reporting."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.breaker_supervisor.config import SupervisorConfig
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.runtime.bus import Bus
from actors.runtime.testing import ManualClock, eventually
from actors.topology import BREAKERS
from protocols.breakers import BreakerStatus, breaker_kv_key

pytestmark = pytest.mark.integration


async def put_status(bus: Bus, status: BreakerStatus) -> None:
    """Write a status as the supervisor would."""
    kv = await bus.key_value(BREAKERS)
    await kv.put(breaker_kv_key(status.key), msgspec.msgpack.encode(status))


async def test_view_loads_current_state_on_start_and_follows_updates(
    bus: Bus, clock: ManualClock
) -> None:
    """start() returns with the bucket's contents loaded; later writes arrive."""
    now = clock.time()
    await put_status(
        bus,
        BreakerStatus(
            key="image:a", state="open", since=now, open_until=now + 30, half_open_permits=1
        ),
    )
    seen: list[str] = []
    async with BreakerView(bus, clock) as view:
        view.add_listener(lambda s: seen.append(s.state))
        assert not view.allows("image:a")
        assert view.state("image:a") == "open"
        assert view.allows("image:unknown")
        assert view.state("image:unknown") == "closed"
        await put_status(bus, BreakerStatus(key="image:a", state="closed", since=now))
        await eventually(lambda: asyncio.sleep(0, view.allows("image:a")))
        assert seen == ["closed"]
        assert [s.key for s in view.statuses()] == ["image:a"]
        kv = await bus.key_value(BREAKERS)
        await kv.delete(breaker_kv_key("image:a"))
        await eventually(lambda: asyncio.sleep(0, view.status("image:a") is None))


async def test_exactly_the_permitted_probes_run_across_three_views(
    bus: Bus, clock: ManualClock
) -> None:
    """Three runners racing for two probe slots get exactly two between them."""
    now = clock.time()
    await put_status(
        bus,
        BreakerStatus(
            key="image:a", state="half_open", since=now, half_open_permits=2, opened_count=3
        ),
    )
    views = [BreakerView(bus, clock, owner=f"r{i}") for i in range(3)]
    for v in views:
        await v.start()
    try:
        admitted = await asyncio.gather(*(v.admit("image:a") for v in views for _ in range(3)))
        assert sum(admitted) == 2
        # Every view learns the slots are gone and stops asking.
        await eventually(lambda: not any(v.allows("image:a") for v in views))
    finally:
        for v in views:
            await v.stop()


async def test_view_admits_a_probe_once_the_wait_is_over_before_the_supervisor_says_so(
    bus: Bus, clock: ManualClock
) -> None:
    """With no supervisor, an open breaker past its wait lets one probe through."""
    now = clock.time()
    await put_status(
        bus,
        BreakerStatus(
            key="image:a",
            state="open",
            since=now,
            open_until=now + 5,
            half_open_permits=1,
            opened_count=1,
        ),
    )
    async with BreakerView(bus, clock) as view:
        assert not await view.admit("image:a")
        clock.advance(5)
        assert view.state("image:a") == "half_open"
        assert view.retry_at("image:a") == now + 5
        assert await view.admit("image:a")
        assert not await view.admit("image:a")


async def test_view_keeps_the_last_known_state_while_the_supervisor_is_down(
    bus: Bus, clock: ManualClock, config: SupervisorConfig, reporter: OutcomeReporter
) -> None:
    """Stopping the supervisor changes nothing a runner sees; reports wait in the stream."""
    async with BreakerView(bus, clock) as view:
        async with BreakerSupervisor(clock=clock, config=config).running(bus):
            for _ in range(4):
                reporter.report("image:a", ok=False, duration_s=0.1, error_class="timeout")
            await reporter.flush()
            await eventually(lambda: asyncio.sleep(0, not view.allows("image:a")))
        reporter.report("image:b", ok=False, duration_s=0.1, error_class="timeout")
        await reporter.flush()
        assert not view.allows("image:a")
        assert view.allows("image:b")
        async with BreakerSupervisor(clock=clock, config=config).running(bus) as again:
            await eventually(lambda: asyncio.sleep(0, view.status("image:b")))
            assert again.metrics.reports == 1


async def test_reporter_drops_the_oldest_report_when_its_queue_is_full(bus: Bus) -> None:
    """A bounded queue keeps the newest outcomes; successes carry no error class."""
    reporter = OutcomeReporter(bus, max_pending=2)
    first = reporter.report("k", ok=True, duration_s=-1.0, error_class="timeout")
    assert (first.duration_s, first.error_class) == (0.0, None)
    reporter.report("k", ok=False, duration_s=1.0)
    reporter.report("k", ok=False, duration_s=2.0)
    assert reporter.dropped == 1
    await reporter.start()
    await reporter.stop()
    assert reporter.sent == 2
