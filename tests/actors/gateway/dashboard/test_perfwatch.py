"""The performance page's watch of the workflows bucket: held only while the page is read."""

from __future__ import annotations

import msgspec
import pytest

from actors.gateway.config import GatewayConfig
from actors.gateway.dashboard.perfwatch import WATCH_NAME, PerfWatch
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.errors import ConfigError
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import ManualClock, eventually
from actors.topology import WORKFLOWS
from protocols.status import WorkflowView

IDLE_S = 600.0


class _Host(Actor):
    """Runs the watch, as the gateway does."""

    name = "perf-host"


def _view(i: int, created: float) -> WorkflowView:
    return msgspec.convert(
        {
            "workflow_id": f"wf-{i:03d}",
            "state": "succeeded",
            "created_at": created,
            "updated_at": created + 1,
            "finished_at": created + 1,
            "template": "hello",
        },
        WorkflowView,
    )


async def _seed(bus: Bus, n: int) -> TypedBucket[WorkflowView]:
    views = await TypedBucket.bind(bus, WORKFLOWS, WorkflowView)
    for i in range(n):
        await views.put(f"wf-{i:03d}", _view(i, 1_000.0 + i))
    return views


async def _readers(bus: Bus) -> int:
    """Consumers on the workflows bucket's stream that the server delivers to."""
    consumers = await bus.js.consumers_info(f"KV_{WORKFLOWS.name}")
    return sum(1 for c in consumers if c.push_bound)


async def _read_by(bus: Bus, count: int) -> bool:
    """The server marks a consumer unbound once it has handled the unsubscribe, which may be
    after it answers the next request: callers wait for this rather than assert it at once."""
    return await _readers(bus) == count


def _watches(host: Actor) -> list[str]:
    return [r.spec.name for r in host.handlers if r.spec.name == WATCH_NAME]


@pytest.mark.integration
async def test_nobody_reading_the_page_leaves_the_bucket_unwatched(bus: Bus) -> None:
    """Views written while nobody reads the page reach no consumer of the gateway's."""
    host = _Host()
    async with host.running(bus):
        watch = PerfWatch(host, WORKFLOWS, clock=ManualClock(), idle_s=IDLE_S)
        await _seed(bus, 3)
        assert not watch.watching
        assert watch.views is None
        assert _watches(host) == []
        assert await _readers(bus) == 0


@pytest.mark.integration
async def test_the_first_read_starts_the_watch_and_the_tracker_answers_until_it_caught_up(
    bus: Bus,
) -> None:
    """The first read finds no live views (the caller asks the tracker); once the watch has
    taken the bucket's values, reads are answered from them and follow later writes."""
    host = _Host()
    async with host.running(bus):
        views = await _seed(bus, 5)
        watch = PerfWatch(host, WORKFLOWS, clock=ManualClock(), idle_s=IDLE_S)
        assert await watch.live() is None
        assert watch.watching
        assert _watches(host) == [WATCH_NAME]
        assert await _readers(bus) == 1

        async def caught_up() -> int | None:
            live = await watch.live()
            return len(live) if live is not None else None

        assert await eventually(caught_up, what="the watch's copy of the bucket") == 5
        await views.put("wf-009", _view(9, 2_000.0))
        await eventually(lambda: _newest(watch), what="a later write")
        assert await _readers(bus) == 1


async def _newest(watch: PerfWatch) -> bool | None:
    live = await watch.live()
    if live is None:
        return None
    found, _ = live.read(0.0, 1)
    return True if found and found[0].workflow_id == "wf-009" else None


@pytest.mark.integration
async def test_the_watch_stops_after_the_idle_period_without_reads_and_the_next_read_restarts_it(
    bus: Bus,
) -> None:
    """Each read pushes the stop back to ``idle_s`` after it; once that passes with no read the
    consumer goes and the views are dropped; a later read starts a fresh watch."""
    clock = ManualClock()
    host = _Host()
    async with host.running(bus):
        await _seed(bus, 4)
        watch = PerfWatch(host, WORKFLOWS, clock=clock, idle_s=IDLE_S)
        await watch.live()
        await eventually(lambda: clock.sleepers() == [IDLE_S])

        clock.advance(IDLE_S - 1)
        await watch.live()
        clock.advance(1)
        await eventually(lambda: clock.sleepers() == [IDLE_S - 1])
        assert watch.watching
        assert await _readers(bus) == 1

        clock.advance(IDLE_S - 1)
        await eventually(lambda: not watch.watching, what="the idle stop")
        assert watch.views is None
        assert _watches(host) == []
        await eventually(lambda: _read_by(bus, 0), what="the server unbinding the consumer")
        assert clock.sleepers() == []

        assert await watch.live() is None
        assert await _readers(bus) == 1
        live = await eventually(watch.live, what="the restarted watch caught up")
        assert len(live) == 4


@pytest.mark.integration
async def test_a_host_that_does_not_run_gets_no_watch(bus: Bus) -> None:
    """Before the actor starts (or once it stops) reads go to the tracker; nothing is watched."""
    host = _Host()
    watch = PerfWatch(host, WORKFLOWS, clock=ManualClock(), idle_s=IDLE_S)
    assert await watch.live() is None
    assert not watch.watching


def test_a_perf_watch_refuses_a_period_or_size_that_keeps_nothing() -> None:
    """A non-positive idle period or a ``keep`` below 1 is refused, named."""
    host = _Host()
    with pytest.raises(ValueError, match="idle_s"):
        PerfWatch(host, WORKFLOWS, idle_s=0.0)
    with pytest.raises(ValueError, match="keep"):
        PerfWatch(host, WORKFLOWS, keep=0)


def test_the_gateway_config_reads_the_idle_period_and_refuses_a_non_positive_one() -> None:
    """``TROUPE_GATEWAY_PERF_IDLE`` sets it (ten minutes by default); zero fails, named."""
    assert GatewayConfig.from_env({}).perf_idle_s == IDLE_S
    assert GatewayConfig.from_env({"TROUPE_GATEWAY_PERF_IDLE": "30"}).perf_idle_s == 30.0
    with pytest.raises(ConfigError, match="perf_idle_s"):
        GatewayConfig(perf_idle_s=0.0)
    with pytest.raises(ConfigError, match="perf_idle_s"):
        GatewayConfig.from_env({"TROUPE_GATEWAY_PERF_IDLE": "-1"})
