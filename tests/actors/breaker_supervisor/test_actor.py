"""The breaker supervisor on a real NATS server: the self-healing scenarios."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors.breaker_supervisor.actor import DURABLE, BreakerSupervisor
from actors.breaker_supervisor.client import control_breaker, list_breakers
from actors.breaker_supervisor.config import SupervisorConfig
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.errors import BadRequest, NotFound, RetryLater
from actors.runtime.handlers import MessageContext
from actors.runtime.testing import ManualClock, eventually
from actors.topology import BREAKER_REPORTS, BREAKER_SNAPSHOTS
from protocols.breakers import (
    CONTROL_SUBJECT,
    EVENTS_SUBJECTS,
    LIST_SUBJECT,
    REPORT_SUBJECT,
    BreakerControl,
    BreakerList,
    BreakerState,
    BreakerTransitionEvent,
    ListBreakers,
    OutcomeReport,
    Outcomes,
    breaker_kv_key,
)
from protocols.headers import EVENT_ENCODING
from tests.actors.behaviour import ActorBehaviour
from tests.actors.breaker_supervisor.conftest import FAST

pytestmark = pytest.mark.integration


async def until_state(view: BreakerView, key: str, state: BreakerState) -> None:
    """Wait until the view has received ``state`` for ``key`` from the supervisor."""

    async def check() -> bool:
        status = view.status(key)
        return status is not None and status.state == state

    await eventually(check, what=f"{key} {state} in the view")


async def guarded(view: BreakerView, key: str, executed: list[str]) -> bool:
    """Run a unit of work through the breaker gate, as a runner does."""
    if not await view.admit(key):
        return False
    executed.append(key)
    return True


async def fail_n(
    reporter: OutcomeReporter, key: str, n: int, *, duration: float = 0.1, ok: bool = False
) -> None:
    for _ in range(n):
        reporter.report(key, ok=ok, duration_s=duration, error_class=None if ok else "transient")
    await reporter.flush()


async def test_repeated_failures_open_the_breaker_and_calls_fail_fast(
    supervisor: BreakerSupervisor, view: BreakerView, reporter: OutcomeReporter
) -> None:
    """After repeated failures of one image its calls fail fast; other images run."""
    executed: list[str] = []
    await fail_n(reporter, "image:broken", 4)
    await until_state(view, "image:broken", "open")
    assert not view.allows("image:broken")
    assert [await guarded(view, "image:broken", executed) for _ in range(5)] == [False] * 5
    assert await guarded(view, "image:fine", executed)
    assert executed == ["image:fine"]
    assert view.retry_at("image:broken") == supervisor.clock.time() + 10.0


async def test_open_breaker_half_opens_on_time_without_traffic(
    supervisor: BreakerSupervisor,
    view: BreakerView,
    reporter: OutcomeReporter,
    clock: ManualClock,
    bus: Bus,
) -> None:
    """The clock-driven timer publishes half-open when the wait is over, with no reports."""
    events: list[BreakerTransitionEvent] = []
    codec = Codec.of(BreakerTransitionEvent)

    async def on_event(msg: object) -> None:
        events.append(codec.decode(msg.data, EVENT_ENCODING))  # type: ignore[attr-defined]

    sub = await bus.nc.subscribe(EVENTS_SUBJECTS, cb=on_event)
    await fail_n(reporter, "image:a", 4)
    await until_state(view, "image:a", "open")
    clock.advance(9.0)
    # The timer has handled t+9 once it sleeps again, for the one second left.
    await eventually(lambda: pytest.approx(1.0) in clock.sleepers())
    listed = await bus.request(LIST_SUBJECT, ListBreakers(), BreakerList)
    assert [s.state for s in listed.items] == ["open"]
    assert view.status("image:a").state == "open"  # type: ignore[union-attr]
    clock.advance(1.0)
    await until_state(view, "image:a", "half_open")
    await eventually(lambda: len(events) >= 2)
    await sub.unsubscribe()
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
    ]


async def test_probe_success_closes_and_probe_failure_reopens_with_longer_wait(
    supervisor: BreakerSupervisor,
    view: BreakerView,
    reporter: OutcomeReporter,
    clock: ManualClock,
) -> None:
    """Half-open lets exactly the permitted probes run; their outcome decides."""
    executed: list[str] = []
    await fail_n(reporter, "image:a", 4)
    await until_state(view, "image:a", "open")
    clock.advance(10.0)
    await until_state(view, "image:a", "half_open")
    assert [await guarded(view, "image:a", executed) for _ in range(3)] == [True, True, False]
    await fail_n(reporter, "image:a", 2)
    await until_state(view, "image:a", "open")
    status = view.status("image:a")
    assert status is not None
    assert status.open_until == clock.time() + 20.0
    assert status.open_streak == 2
    clock.advance(20.0)
    await until_state(view, "image:a", "half_open")
    assert await guarded(view, "image:a", executed)
    assert await guarded(view, "image:a", executed)
    await fail_n(reporter, "image:a", 2, ok=True)
    await until_state(view, "image:a", "closed")
    assert view.allows("image:a")
    assert len(executed) == 4
    await eventually(lambda: not view._claims)


async def test_slow_calls_above_the_threshold_open_the_breaker(
    supervisor: BreakerSupervisor, view: BreakerView, reporter: OutcomeReporter
) -> None:
    """Successful calls slower than the slow-call duration open it by slow rate."""
    await fail_n(reporter, "backend:dagger", 2, ok=True, duration=0.2)
    await fail_n(reporter, "backend:dagger", 2, ok=True, duration=3.0)
    await until_state(view, "backend:dagger", "open")


async def test_control_and_list_endpoints_force_open_disable_and_reset(
    supervisor: BreakerSupervisor, view: BreakerView, reporter: OutcomeReporter, bus: Bus
) -> None:
    """Operators force open, disable and reset breakers and list them by prefix."""

    async def control(key: str, action: str) -> BreakerList:
        return await bus.request(
            CONTROL_SUBJECT,
            BreakerControl(key=key, action=action),  # type: ignore[arg-type]
            BreakerList,
        )

    assert (await control("agent:x", "force_open")).items[0].state == "forced_open"
    await until_state(view, "agent:x", "forced_open")
    assert not view.allows("agent:x")
    assert not await view.admit("agent:x")
    assert (await control("agent:x", "disable")).items[0].state == "disabled"
    await fail_n(reporter, "agent:x", 6)
    await until_state(view, "agent:x", "disabled")
    assert view.allows("agent:x")
    assert (await control("agent:x", "reset")).items[0].state == "closed"
    await fail_n(reporter, "image:y", 1)
    await eventually(lambda: view.status("image:y"))
    listed = await bus.request(LIST_SUBJECT, ListBreakers(), BreakerList)
    assert [s.key for s in listed.items] == ["agent:x", "image:y"]
    only = await bus.request(LIST_SUBJECT, ListBreakers(prefix="image:"), BreakerList)
    assert [(s.key, s.calls) for s in only.items] == [("image:y", 1)]


async def test_state_and_windows_survive_a_restart(
    bus: Bus,
    clock: ManualClock,
    config: SupervisorConfig,
    view: BreakerView,
    reporter: OutcomeReporter,
) -> None:
    """A restarted supervisor reloads windows: failures before and after add up."""
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as first:
        await fail_n(reporter, "image:a", 3)
        await fail_n(reporter, "image:b", 4)
        await until_state(view, "image:b", "open")
        await eventually(lambda: first.metrics.reports == 7)
    clock.advance(10.0)  # image:b's wait passes while no supervisor runs
    assert view.state("image:b") == "half_open"
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as second:
        await until_state(view, "image:b", "half_open")
        assert second.breakers["image:a"].status(clock.time()).calls == 3
        await fail_n(reporter, "image:a", 1)
        await until_state(view, "image:a", "open")


async def test_metrics_appear_in_srv_stats_and_opentelemetry(
    bus: Bus,
    clock: ManualClock,
    config: SupervisorConfig,
    view: BreakerView,
    reporter: OutcomeReporter,
) -> None:
    """Calls, failure rate, slow rate and state are in $SRV.STATS and OTel metrics."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    actor = BreakerSupervisor(clock=clock, config=config, meter_provider=provider)
    async with actor.running(bus):
        reporter.report("image:a", ok=False, duration_s=0.1, error_class="transient")
        reporter.report("image:a", ok=False, duration_s=0.1, error_class="cancelled")
        reporter.report("image:a", ok=True, duration_s=2.0)
        await reporter.flush()
        await eventually(lambda: actor.metrics.reports == 3)
        msg = await bus.nc.request("$SRV.STATS.breaker_supervisor", b"", timeout=5.0)
        stats = json.loads(msg.data)
        [consumer] = [e for e in stats["endpoints"] if e["name"] == DURABLE]
        data = consumer["data"]
        assert (data["reports"], data["failures"], data["ignored"], data["slow_calls"]) == (
            3,
            1,
            1,
            1,
        )
        assert data["by_key"]["image:a"] == {
            "state": "closed",
            "calls": 2,
            "failure_rate": 0.5,
            "slow_rate": 0.5,
        }
    metrics_data = reader.get_metrics_data()
    points: dict[str, list[tuple[dict[str, object], float]]] = {}
    for rm in metrics_data.resource_metrics:  # type: ignore[union-attr]
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = [
                    (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                    for p in metric.data.data_points
                ]
    provider.shutdown()
    assert sum(v for _, v in points["troupe.breaker.calls"]) == 3
    assert points["troupe.breaker.failure_rate"] == [({"breaker.key": "image:a"}, 0.5)]
    assert points["troupe.breaker.state"] == [({"breaker.key": "image:a"}, 0)]


CHAOS_CONFIG = """
default: {window_size: 1000, minimum_calls: 1000, failure_rate_threshold: 1.0}
"""


def _spawn(nats_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "breaker_supervisor", "--nats-url", nats_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.processes
@pytest.mark.chaos
async def test_sigkilled_supervisor_restarts_consistent_without_losing_reports(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """SIGKILL while reports flow: after restart every report counts exactly once."""
    config_file = tmp_path / "breakers.yaml"
    config_file.write_text(CHAOS_CONFIG)
    env = {**os.environ, "TROUPE_BREAKERS_CONFIG": str(config_file)}
    keys = [f"op:k{i}" for i in range(4)]
    per_key = 60
    proc = _spawn(nats_url, env)
    try:
        async with BreakerView(bus) as view, OutcomeReporter(bus) as reporter:

            async def progressed() -> bool:
                return sum(s.calls for s in view.statuses()) >= 20

            for n in range(per_key):
                for key in keys:
                    reporter.report(key, ok=n % 2 == 0, duration_s=0.01, error_class="transient")
                if n == 40:
                    # 164 reports stored; kill as soon as the supervisor is into them.
                    await reporter.flush(10.0)
                    await eventually(progressed, timeout=20.0, interval=0.005)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    killed_at = sum(s.calls for s in view.statuses())
            await reporter.flush(10.0)
            proc = _spawn(nats_url, env)

            async def drained() -> bool:
                return all((s := view.status(k)) is not None and s.calls == per_key for k in keys)

            await eventually(drained, timeout=30.0)
            info = await bus.js.consumer_info(BREAKER_REPORTS.name, DURABLE)
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            for key in keys:
                status = view.status(key)
                assert status is not None
                assert (status.state, status.calls, status.failure_rate) == ("closed", 60, 0.5)
            listed = await bus.request(LIST_SUBJECT, ListBreakers(), BreakerList)
            assert [s.calls for s in listed.items] == [per_key] * 4
            assert killed_at < len(keys) * per_key  # the kill did interrupt the flow
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


class TestBreakerSupervisorBehaviour(ActorBehaviour):
    """The behaviour every actor must have, for the breaker supervisor."""

    @pytest.fixture
    def actor_factory(self) -> Callable[[], Actor]:
        return lambda: BreakerSupervisor(config=SupervisorConfig())


async def test_control_refuses_unknown_kinds_and_resetting_a_breaker_that_does_not_exist(
    bus: Bus, supervisor: BreakerSupervisor
) -> None:
    """'breakers reset nosuch:key' errors instead of creating a phantom breaker."""
    with pytest.raises(BadRequest, match="KIND:NAME"):
        await control_breaker(bus, "nosuch:key", "reset")
    with pytest.raises(NotFound, match="backend:ghost"):
        await control_breaker(bus, "backend:ghost", "reset")
    assert (await list_breakers(bus, "backend:ghost")).items == []


async def _last_seq(bus: Bus, stream: str) -> int:
    return (await bus.js.stream_info(stream)).state.last_seq


SNAPSHOTS = "KV_troupe-breaker-snapshots"
STATUSES = "KV_troupe-breakers"


async def _all_acked(bus: Bus) -> bool:
    info = await bus.js.consumer_info(BREAKER_REPORTS.name, DURABLE)
    return (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_reports_arriving_together_share_one_snapshot_write_acknowledged_after_it(
    bus: Bus, clock: ManualClock, reporter: OutcomeReporter
) -> None:
    """Ten reports of one key within the batch window: one snapshot write, then ten acks."""
    # A window far longer than folding ten reports takes, even on a busy machine.
    config = SupervisorConfig(default=FAST, prefixes={}, ack_wait_s=30.0, snapshot_batch_s=5.0)
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as actor:
        snapshots = await _last_seq(bus, SNAPSHOTS)
        await fail_n(reporter, "image:steady", 10, ok=True)
        await eventually(lambda: actor.metrics.reports == 10)
        # All ten are folded in; none is acknowledged before its snapshot is stored.
        info = await bus.js.consumer_info(BREAKER_REPORTS.name, DURABLE)
        assert await _last_seq(bus, SNAPSHOTS) == snapshots
        assert info.num_ack_pending + info.num_pending == 10
        await eventually(lambda: _all_acked(bus), timeout=30.0)
        assert await _last_seq(bus, SNAPSHOTS) == snapshots + 1
        listed = await list_breakers(bus, "image:steady")
        assert [(s.state, s.calls) for s in listed.items] == [("closed", 4)]


async def test_a_transition_is_stored_and_published_at_once_with_the_reports_gathered_so_far(
    bus: Bus, clock: ManualClock, view: BreakerView, reporter: OutcomeReporter
) -> None:
    """The report that opens a breaker does not wait for the (here 14 s) batch window."""
    config = SupervisorConfig(
        default=FAST, prefixes={}, ack_wait_s=60.0, snapshot_batch_s=14.0, status_refresh_s=30.0
    )
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as actor:
        snapshots = await _last_seq(bus, SNAPSHOTS)
        statuses = await _last_seq(bus, STATUSES)
        await fail_n(reporter, "image:a", 3, ok=True)
        await eventually(lambda: actor.metrics.reports == 3)
        await fail_n(reporter, "image:a", 2)  # the 2nd failure opens it (2 of 4)
        await until_state(view, "image:a", "open")
        await eventually(lambda: _all_acked(bus), timeout=8.0)  # well inside 14 s
        # One snapshot write holds the four gathered reports and the opening one.
        assert await _last_seq(bus, SNAPSHOTS) == snapshots + 1
        assert await _last_seq(bus, STATUSES) == statuses + 1
        status = view.status("image:a")
        assert status is not None
        assert (status.state, status.opened_count, status.open_until) == (
            "open",
            1,
            clock.time() + 10.0,
        )


async def test_window_counters_are_published_within_the_refresh_interval_not_per_report(
    bus: Bus, clock: ManualClock, view: BreakerView, reporter: OutcomeReporter
) -> None:
    """Counter-only changes lag by status_refresh_s; list_breakers answers them at once."""
    judged_late = replace(FAST, window_size=10, minimum_calls=10)
    # Far longer than three batches take, even on a busy machine.
    config = SupervisorConfig(default=judged_late, prefixes={}, status_refresh_s=10.0)
    async with BreakerSupervisor(clock=clock, config=config).running(bus):
        await fail_n(reporter, "image:steady", 4, ok=True)
        await eventually(lambda: view.status("image:steady"))  # a new key is published at once
        await eventually(lambda: _all_acked(bus))

        def published(calls: int) -> bool:
            status = view.status("image:steady")
            return status is not None and status.calls == calls

        await eventually(lambda: published(4), timeout=30.0)  # stale counters included
        statuses = await _last_seq(bus, STATUSES)
        snapshots = await _last_seq(bus, SNAPSHOTS)
        for _ in range(3):  # steady traffic: three batches, each stored and acknowledged
            await fail_n(reporter, "image:steady", 1)
            await eventually(lambda: _all_acked(bus))
        assert await _last_seq(bus, SNAPSHOTS) == snapshots + 3
        listed = await list_breakers(bus, "image:steady")
        assert [(s.calls, s.failure_rate) for s in listed.items] == [(7, 3 / 7)]
        assert await _last_seq(bus, STATUSES) == statuses  # counters not published yet
        await eventually(lambda: published(7), timeout=30.0)
        assert await _last_seq(bus, STATUSES) == statuses + 1  # one write for three reports
        await control_breaker(bus, "image:steady", "force_open")
        # The transition is published before control answers: exactly one write more.
        assert await _last_seq(bus, STATUSES) == statuses + 2
        assert view.status("image:steady") is not None


async def test_a_failed_snapshot_write_acknowledges_none_of_the_batch_and_counts_each_once(
    bus: Bus, clock: ManualClock, reporter: OutcomeReporter
) -> None:
    """Without the snapshot bucket nothing is acked; once it is back, each report counts once."""
    config = SupervisorConfig(default=FAST, prefixes={}, snapshot_batch_s=0.2)
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as actor:
        await fail_n(reporter, "image:lost", 1, ok=True)
        await eventually(lambda: _all_acked(bus))
        await bus.js.delete_stream(SNAPSHOTS)
        await fail_n(reporter, "image:lost", 2, ok=True)
        await eventually(lambda: actor.metrics.reports >= 5)  # folded, failed, redelivered
        info = await bus.js.consumer_info(BREAKER_REPORTS.name, DURABLE)
        assert info.num_ack_pending + info.num_pending == 2
        await bus.key_value(BREAKER_SNAPSHOTS)
        await eventually(lambda: _all_acked(bus))
        listed = await list_breakers(bus, "image:lost")
        assert [s.calls for s in listed.items] == [3]
        snapshot = await actor._store.snapshots.get(breaker_kv_key("image:lost"))  # type: ignore[union-attr]
        assert snapshot is not None
        assert len(snapshot.value.window) == 3


WIDE = replace(FAST, window_size=100, minimum_calls=100)
"""Never judges within these tests, so a breaker's ``calls`` counts every report."""


async def _calls(bus: Bus, prefix: str) -> dict[str, int]:
    return {s.key: s.calls for s in (await list_breakers(bus, prefix)).items}


async def test_a_batch_of_reports_is_one_stream_message_and_every_report_counts(
    bus: Bus, clock: ManualClock
) -> None:
    """Thirty reports for three keys from one runner: one stream write, thirty calls counted."""
    config = SupervisorConfig(default=WIDE, prefixes={})
    async with (
        BreakerSupervisor(clock=clock, config=config).running(bus) as actor,
        OutcomeReporter(bus, clock, batch_max=256) as reporter,
    ):
        reports = await _last_seq(bus, BREAKER_REPORTS.name)
        snapshots = await _last_seq(bus, SNAPSHOTS)
        for i in range(30):
            reporter.report(f"image:{i % 3}", ok=i % 5 != 0, duration_s=0.1, error_class="timeout")
        await reporter.flush()
        assert await _last_seq(bus, BREAKER_REPORTS.name) == reports + 1
        await eventually(lambda: _all_acked(bus), timeout=30.0)
        assert actor.metrics.reports == 30
        assert await _calls(bus, "image:") == {"image:0": 10, "image:1": 10, "image:2": 10}
        # The message's reports of one key share that key's snapshot write.
        assert await _last_seq(bus, SNAPSHOTS) == snapshots + 3
        stored = await actor._store.snapshots.get(breaker_kv_key("image:0"))  # type: ignore[union-attr]
        assert stored is not None
        assert [e.failed for e in stored.value.window] == [i % 5 == 0 for i in range(0, 30, 3)]


class _AckLost(BreakerSupervisor):
    """Stores every message's reports, then hands the message back: as if its ack were lost."""

    async def apply(self, message: Outcomes, ctx: MessageContext) -> None:
        await super().apply(message, ctx)
        raise RetryLater(0.5, "acknowledgement lost")


async def test_a_redelivered_batch_counts_nothing_twice_before_or_after_a_restart(
    bus: Bus, clock: ManualClock
) -> None:
    """Delivered again and again, then to a restarted supervisor: each report counts once."""
    config = SupervisorConfig(default=WIDE, prefixes={}, max_deliver=1_000)
    async with OutcomeReporter(bus, clock, batch_max=256) as reporter:
        for i in range(6):
            reporter.report(f"image:{i % 2}", ok=True, duration_s=0.1)
        await reporter.flush()
    async with _AckLost(clock=clock, config=config).running(bus) as first:
        await eventually(lambda: first.metrics.reports >= 18, timeout=60.0)  # three deliveries
        assert first.metrics.ignored >= 12
        assert await _calls(bus, "image:") == {"image:0": 3, "image:1": 3}
    async with BreakerSupervisor(clock=clock, config=config).running(bus) as second:
        await eventually(lambda: _all_acked(bus), timeout=30.0)
        # The restored snapshots remember the message: every report of it is ignored.
        assert (second.metrics.reports, second.metrics.ignored) == (6, 6)
        assert await _calls(bus, "image:") == {"image:0": 3, "image:1": 3}


async def test_single_reports_of_a_runner_that_does_not_batch_still_count(
    bus: Bus, clock: ManualClock, reporter: OutcomeReporter
) -> None:
    """Plain OutcomeReport messages (older runners, batch_max 1) and batches count alike."""
    config = SupervisorConfig(default=WIDE, prefixes={})
    async with (
        BreakerSupervisor(clock=clock, config=config).running(bus) as actor,
        OutcomeReporter(bus, clock, batch_max=256) as batching,
    ):
        reports = await _last_seq(bus, BREAKER_REPORTS.name)
        old = OutcomeReport(key="image:mixed", ok=False, duration_s=0.1, at=clock.time())
        await bus.send(REPORT_SUBJECT, old)  # no report_id, as another reporter may send it
        await fail_n(reporter, "image:mixed", 2, ok=True)  # the fixture's: one message each
        for _ in range(3):
            batching.report("image:mixed", ok=True, duration_s=0.1)
        await batching.flush()
        assert await _last_seq(bus, BREAKER_REPORTS.name) == reports + 4
        await eventually(lambda: _all_acked(bus), timeout=30.0)
        assert actor.metrics.reports == 6
        listed = await list_breakers(bus, "image:mixed")
        assert [(s.calls, s.failure_rate) for s in listed.items] == [(6, 1 / 6)]


async def test_a_failed_snapshot_write_acknowledges_none_of_a_batch_and_counts_each_report_once(
    bus: Bus, clock: ManualClock
) -> None:
    """A batch over two keys whose snapshots fail is not acked; once stored, each counts once."""
    config = SupervisorConfig(default=FAST, prefixes={}, snapshot_batch_s=0.2)
    async with (
        BreakerSupervisor(clock=clock, config=config).running(bus) as actor,
        OutcomeReporter(bus, clock, batch_max=256) as reporter,
    ):
        await fail_n(reporter, "image:lost", 1, ok=True)
        await eventually(lambda: _all_acked(bus))
        await bus.js.delete_stream(SNAPSHOTS)
        for key in ("image:lost", "image:other", "image:lost"):
            reporter.report(key, ok=True, duration_s=0.1)
        await reporter.flush()
        await eventually(lambda: actor.metrics.reports >= 7)  # folded, failed, redelivered
        info = await bus.js.consumer_info(BREAKER_REPORTS.name, DURABLE)
        assert info.num_ack_pending + info.num_pending == 1
        await bus.key_value(BREAKER_SNAPSHOTS)
        await eventually(lambda: _all_acked(bus))
        assert await _calls(bus, "image:") == {"image:lost": 3, "image:other": 1}
        for key, calls in (("image:lost", 3), ("image:other", 1)):
            snapshot = await actor._store.snapshots.get(breaker_kv_key(key))  # type: ignore[union-attr]
            assert snapshot is not None
            assert len(snapshot.value.window) == calls
