"""Runners' local breaker views: watched state, exclusive probes, reporting."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.breaker_supervisor.config import SupervisorConfig
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.testing import ManualClock, eventually
from actors.topology import BREAKER_REPORTS, BREAKERS
from protocols.breakers import (
    MAX_BATCH_REPORTS,
    REPORTS_STREAM,
    BreakerStatus,
    OutcomeReport,
    OutcomeReports,
    Outcomes,
    breaker_kv_key,
)

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


async def _stored_messages(bus: Bus) -> list[Outcomes]:
    """Every message the reports stream holds, decoded as the supervisor decodes them."""
    info = await bus.js.stream_info(REPORTS_STREAM)
    codec = Codec.of(Outcomes)
    found: list[Outcomes] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.js.get_msg(REPORTS_STREAM, seq)
        assert raw.data is not None
        found.append(codec.decode(raw.data, encoding_of(raw.headers or {})))
    return found


async def test_reports_queued_together_travel_as_one_message_of_at_most_batch_max(
    bus: Bus,
) -> None:
    """Five reports queued at once with batch_max 2: three messages, in the order reported."""
    async with OutcomeReporter(bus, batch_max=2) as reporter:
        sent = [reporter.report(f"image:{i}", ok=True, duration_s=0.1) for i in range(5)]
        await reporter.flush()
        assert (reporter.sent, reporter.messages) == (5, 3)
    messages = await _stored_messages(bus)
    assert [type(m) for m in messages] == [OutcomeReports, OutcomeReports, OutcomeReport]
    flat = [r for m in messages for r in (m.reports if isinstance(m, OutcomeReports) else [m])]
    assert flat == sent


async def test_a_message_lingers_batch_s_for_later_reports(bus: Bus) -> None:
    """A report arriving while the first one lingers joins its message; the window then sends it."""
    runtime = ManualClock()
    async with OutcomeReporter(bus, batch_max=256, batch_s=30.0, runtime_clock=runtime) as r:
        r.report("image:a", ok=True, duration_s=0.1)
        await eventually(lambda: runtime.sleepers() == [30.0])  # lingering with the first
        r.report("image:b", ok=False, duration_s=0.2, error_class="timeout")
        await eventually(lambda: runtime.sleepers() == [30.0])  # took it, lingers on
        assert r.messages == 0
        runtime.advance(30.0)
        await eventually(lambda: r.messages == 1)
        assert r.sent == 2
    [message] = await _stored_messages(bus)
    assert isinstance(message, OutcomeReports)
    assert [x.key for x in message.reports] == ["image:a", "image:b"]


async def test_flush_sends_a_lingering_message_at_once(bus: Bus) -> None:
    """flush() does not wait out the window: the queued reports go out as one message now."""
    runtime = ManualClock()  # the window ends only if advanced, which this test never does
    async with OutcomeReporter(bus, batch_max=256, batch_s=30.0, runtime_clock=runtime) as r:
        r.report("image:a", ok=True, duration_s=0.1)
        await eventually(lambda: runtime.sleepers() == [30.0])
        r.report("image:b", ok=True, duration_s=0.1)
        await r.flush()
        assert (r.sent, r.messages) == (2, 1)
        r.report("image:c", ok=True, duration_s=0.1)
    # stop() flushes what is still queued, lingering or not.
    assert (r.sent, r.messages) == (3, 2)


async def test_a_message_the_stream_did_not_take_is_resent_whole_under_the_same_id(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """With the stream gone the batch is retried as it was; once back, it is stored once."""
    async with OutcomeReporter(bus, batch_max=256) as reporter:
        await bus.js.delete_stream(REPORTS_STREAM)
        sent = [reporter.report("image:a", ok=True, duration_s=0.1) for _ in range(3)]
        await eventually(lambda: "not stored" in caplog.text)
        reporter.report("image:a", ok=False, duration_s=0.1)  # queued behind the retried batch
        await bus.ensure_stream(BREAKER_REPORTS)
        await reporter.flush(timeout=30.0)
        assert (reporter.sent, reporter.messages) == (4, 2)
    first, second = await _stored_messages(bus)
    assert isinstance(first, OutcomeReports)
    assert first.reports == sent
    assert isinstance(second, OutcomeReport)


def test_reporter_refuses_batch_sizes_and_windows_out_of_range() -> None:
    """batch_max is 1 to MAX_BATCH_REPORTS and batch_s not negative, checked at construction."""
    bus: Bus = None  # type: ignore[assignment]  # never used: construction fails first
    for bad in ({"batch_max": 0}, {"batch_max": MAX_BATCH_REPORTS + 1}, {"batch_s": -0.1}):
        with pytest.raises(ValueError, match="batch_"):
            OutcomeReporter(bus, **bad)  # type: ignore[arg-type]
