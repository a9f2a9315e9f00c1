"""Schedules on JetStream message schedules: firings become one workflow each; pause stops them.

A real nats-server fires the schedule messages; a real task manager submits
each firing. The pause test measures against a second schedule as the clock,
never against a fixed sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.kv import TypedBucket
from actors.runtime.server import NatsServer, free_port
from actors.runtime.testing import eventually
from actors.schedules.client import (
    ScheduleError,
    ScheduleStore,
    UnknownSchedule,
    schedule_expression,
)
from actors.task_manager.actor import TaskManager
from actors.topology import SCHEDULE_DEFINITIONS, TASK_IDS
from protocols.schedules import Schedule, firing_task_id
from protocols.tasks import TaskRecord

pytestmark = pytest.mark.integration


@pytest.fixture
async def manager(bus: Bus) -> AsyncIterator[TaskManager]:
    """A task manager running in-process (it consumes the firings)."""
    actor = TaskManager()
    async with actor.running(bus):
        yield actor


@pytest.fixture
async def store(bus: Bus) -> ScheduleStore:
    """The schedule store over a fresh bucket."""
    await bus.key_value(SCHEDULE_DEFINITIONS)
    return await ScheduleStore.bind(bus)


async def _task_ids(bus: Bus, name: str) -> set[str]:
    bucket = await TypedBucket.bind(bus, TASK_IDS, TaskRecord)
    return {k for k in await bucket.keys() if k.startswith(f"sched-{name}-")}


async def test_every_two_seconds_fires_five_workflows_and_stops_when_paused(
    bus: Bus, manager: TaskManager, store: ScheduleStore
) -> None:
    """@every 2s makes >= 5 workflows (one per firing); after pause no more arrive."""
    every = schedule_expression(every="2s")
    await store.add(Schedule(name="every2", expression=every, template="hello"), by="test")

    async def five() -> set[str] | None:
        ids = await _task_ids(bus, "every2")
        return ids if len(ids) >= 5 else None

    ids = await eventually(five, timeout=20.0, interval=0.2, what="five firings")
    # Each submitted firing is one task; one more may be on its way to the bucket.
    assert len(ids) <= manager.schedules.fired <= len(ids) + 1

    paused = await store.pause("every2", by="test")
    assert paused.paused
    before = len(await _task_ids(bus, "every2"))
    await store.add(
        Schedule(name="clock", expression=schedule_expression(every="1s"), template="hello"),
        by="test",
    )

    async def clock_ticked() -> bool | None:
        return True if len(await _task_ids(bus, "clock")) >= 5 else None

    await eventually(clock_ticked, timeout=20.0, interval=0.2, what="the clock schedule")
    # One firing may have been in flight when the pause landed.
    assert len(await _task_ids(bus, "every2")) <= before + 1

    await store.remove("clock")
    with pytest.raises(ScheduleError):
        await store.get("clock")


async def test_run_now_submits_one_workflow(
    bus: Bus, manager: TaskManager, store: ScheduleStore
) -> None:
    """run-now submits the schedule's template at once, without waiting for a firing."""
    at = schedule_expression(at="2999-01-01T00:00:00")
    await store.add(Schedule(name="later", expression=at, template="hello"), by="test")
    task_id = await store.run_now("later")

    async def accepted() -> bool | None:
        return True if task_id in await _task_ids(bus, "later-now") else None

    await eventually(accepted, timeout=10.0, interval=0.1, what="the run-now task")
    assert [s.name for s in await store.list()] == ["later"]


async def test_a_schedule_the_server_refuses_leaves_the_previous_one(
    bus: Bus, manager: TaskManager, store: ScheduleStore
) -> None:
    """A cron pattern or time zone the server rejects raises ScheduleError; nothing changes."""
    await store.add(Schedule(name="kept", expression="@hourly", template="hello"), by="test")
    with pytest.raises(ScheduleError, match="pattern"):
        await store.add(Schedule(name="kept", expression="* * * * * 99", template="x"), by="t")
    with pytest.raises(ScheduleError, match="time zone"):
        await store.add(
            Schedule(name="kept", expression="@hourly", template="x", time_zone="Nowhere/X"),
            by="t",
        )
    with pytest.raises(UnknownSchedule):
        await store.pause("never-added", by="t")
    kept = await store.get("kept")
    assert (kept.expression, kept.template) == ("@hourly", "hello")


def test_schedule_expression_accepts_one_of_cron_every_at() -> None:
    """Each form maps to its Nats-Schedule value; none, two or malformed ones are refused."""
    assert schedule_expression(every="10m") == "@every 10m"
    assert schedule_expression(cron="0 */5 * * * *") == "0 */5 * * * *"
    assert schedule_expression(cron="@hourly") == "@hourly"
    assert schedule_expression(at="2030-01-02T03:04:05+01:00") == "@at 2030-01-02T02:04:05Z"
    for bad in ({}, {"every": "10m", "cron": "@daily"}, {"every": "ten"}, {"cron": "* * *"}):
        with pytest.raises(ScheduleError):
            schedule_expression(**bad)
    with pytest.raises(ScheduleError):
        schedule_expression(at="tomorrow")


def test_firing_task_id_is_stable_per_schedule_and_second() -> None:
    """The same schedule and second give the same id; another second another id."""
    assert firing_task_id("a", 10.2) == firing_task_id("a", 10.9) == "sched-a-19700101T000010Z"
    assert firing_task_id("a", 11.0) != firing_task_id("a", 10.0)


async def test_a_schedule_keeps_firing_across_a_nats_server_restart(tmp_path: Path) -> None:
    """The schedule lives in the server's stream: after a restart it fires again."""
    server = NatsServer(tmp_path / "nats", port=free_port(), use_config=False).start()
    try:
        bus = await Bus.connect(ConnectionConfig(url=server.url, connect_timeout=5.0))
        try:
            await bus.key_value(SCHEDULE_DEFINITIONS)
            store = await ScheduleStore.bind(bus)
            manager = TaskManager()
            async with manager.running(bus):
                every = schedule_expression(every="1s")
                await store.add(Schedule(name="steady", expression=every, template="hello"), by="t")

                async def at_least(n: int) -> set[str] | None:
                    ids = await _task_ids(bus, "steady")
                    return ids if len(ids) >= n else None

                before = await eventually(lambda: at_least(2), timeout=20.0, interval=0.2)
                server.stop()
                server.start()
                after = await eventually(
                    lambda: at_least(len(before) + 2),
                    timeout=30.0,
                    interval=0.3,
                    ignoring=(Exception,),
                    what="firings after the restart",
                )
                assert before < after
        finally:
            await bus.close()
    finally:
        server.stop()
