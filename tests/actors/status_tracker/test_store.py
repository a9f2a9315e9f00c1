"""KV access: revision-checked writes, per-key retention, durations and history."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import ManualClock, eventually
from actors.status_tracker.store import DurationStore, WorkflowStore, read_history
from actors.topology import DURATIONS, STATUS_EVENTS, WORKFLOWS
from protocols.status import StepProgress, TemplateDurations, WorkflowTransition, WorkflowView
from tests.actors.status_tracker.histories import history, send_all

pytestmark = pytest.mark.integration


async def _store(bus: Bus, retention_s: float = 3600.0) -> WorkflowStore:
    bucket = await TypedBucket.bind(bus, WORKFLOWS, WorkflowView)
    return WorkflowStore(bucket, retention_s=retention_s, messages_kept=100)


async def test_concurrent_writers_on_one_key_lose_no_update(bus: Bus, nats_url: str) -> None:
    """Two stores on two connections applying 60 events to one workflow keep all 60."""
    other = await Bus.connect(ConnectionConfig(url=nats_url))
    try:
        stores = [await _store(bus), await _store(other)]
        now = time.time()
        events = [
            StepProgress(workflow_id="hot", step="a", at=now + i, message={"i": i})
            for i in range(60)
        ]
        await asyncio.gather(*(stores[i % 2].apply(e, now) for i, e in enumerate(events)))
        found = await stores[0].get("hot")
        assert found is not None
        view, revision = found
        assert sorted(m["message"]["i"] for m in view.messages) == list(range(60))
        assert view.events == 60
        assert revision > 0
        assert stores[0].conflicts + stores[1].conflicts > 0
    finally:
        await other.close()


async def test_finished_workflow_expires_after_retention(bus: Bus) -> None:
    """A terminal view's write carries a TTL: the key disappears after retention_s."""
    store = await _store(bus, retention_s=1.0)
    now = time.time()
    for event in history("short", now, steps=("a",)):
        await store.apply(event, now)
    assert await store.get("short") is not None

    async def gone() -> bool:
        return await store.get("short") is None

    await eventually(gone, timeout=10.0, interval=0.2)


async def test_late_event_of_an_expired_workflow_is_ignored(bus: Bus) -> None:
    """An event older than the retention time does not bring a workflow back."""
    store = await _store(bus, retention_s=10.0)
    late = WorkflowTransition(workflow_id="old", state="running", at=100.0, source="t")
    assert await store.apply(late, now=1000.0) is None
    assert await store.get("old") is None


async def test_durations_are_recorded_per_template(bus: Bus) -> None:
    """Samples accumulate up to ``keep`` and read back."""
    bucket = await TypedBucket.bind(bus, DURATIONS, TemplateDurations)
    durations = DurationStore(bucket, ManualClock(), keep=3, cache_s=0.0)
    for d in (1.0, 2.0, 3.0, 4.0):
        await durations.record("build it", d)
    assert await durations.samples("build it") == [2.0, 3.0, 4.0]
    assert await durations.samples("never-ran") == []


async def test_history_is_read_back_from_the_status_stream(bus: Bus) -> None:
    """read_history returns one workflow's events in stream order, others excluded."""
    await bus.ensure_stream(STATUS_EVENTS)
    mine = history("mine", 0.0, steps=("a",))
    await send_all(bus, mine)
    await send_all(bus, history("theirs", 0.0, steps=("a",)))
    assert await read_history(bus.js, "mine") == mine
    assert await read_history(bus.js, "nobody") == []


async def _bucket_writes(bus: Bus) -> int:
    info = await bus.js.stream_info(f"KV_{WORKFLOWS.name}")
    return info.state.last_seq


async def test_events_of_one_workflow_arriving_together_cost_one_write(bus: Bus) -> None:
    """A burst of one workflow's events is folded into one write, announced by its last event."""
    store = await _store(bus)
    store.linger_s = 0.05
    now = time.time()
    events = history("burst", now, steps=("a", "b"))[:-1]  # everything but the terminal event
    before = await _bucket_writes(bus)
    results = await asyncio.gather(*(store.apply(e, now) for e in events))
    assert await _bucket_writes(bus) - before == 1
    assert store.writes == 1
    assert all(r is not None and r.applied.changed for r in results)
    assert [r.announce for r in results if r is not None] == [False] * (len(events) - 1) + [True]
    found = await store.get("burst")
    assert found is not None
    assert found[0].events == len(events)
    assert {r.revision for r in results if r is not None} == {found[1]}


async def test_a_terminal_event_is_written_without_lingering(bus: Bus) -> None:
    """The write holding a workflow's terminal transition is sent at once, not after the linger."""
    store = await _store(bus)
    store.linger_s = 30.0
    now = time.time()
    events = history("quick-end", now, steps=("a",))
    stored = await asyncio.wait_for(
        asyncio.gather(*(store.apply(e, now) for e in events)), timeout=10.0
    )
    last = stored[-1]
    assert last is not None
    assert last.announce
    found = await store.get("quick-end")
    assert found is not None
    assert found[0].state == "succeeded"


async def test_a_terminal_event_arriving_while_a_write_lingers_sends_it_at_once(
    bus: Bus,
) -> None:
    """The events waiting with the lingering write and the terminal one share one write, now."""
    store = await _store(bus)
    store.linger_s = 30.0
    now = time.time()
    *early, last = history("ends-while-lingering", now, steps=("a",))
    before = await _bucket_writes(bus)
    waiting = [asyncio.ensure_future(store.apply(e, now)) for e in early]

    async def lingers() -> bool:
        return store.lingering("ends-while-lingering")

    await eventually(lingers, timeout=10.0)
    stored = await asyncio.wait_for(store.apply(last, now), timeout=10.0)
    assert stored is not None
    assert stored.announce
    assert all(r is not None for r in await asyncio.wait_for(asyncio.gather(*waiting), 10.0))
    assert await _bucket_writes(bus) - before == 1
    assert not store.lingering("ends-while-lingering")


async def test_durations_are_counted_at_once_and_written_in_one_batch(bus: Bus) -> None:
    """Added durations show in samples before the flush; the flush writes them once per template."""
    bucket = await TypedBucket.bind(bus, DURATIONS, TemplateDurations)
    durations = DurationStore(bucket, ManualClock(), keep=10, cache_s=0.0)
    for d in (1.0, 2.0, 3.0):
        durations.add("batched", d)
    assert await durations.samples("batched") == [1.0, 2.0, 3.0]
    assert durations.unwritten == 3
    info = await bus.js.stream_info(f"KV_{DURATIONS.name}")
    await durations.flush()
    after = await bus.js.stream_info(f"KV_{DURATIONS.name}")
    assert after.state.last_seq - info.state.last_seq == 1
    assert durations.unwritten == 0
    assert await durations.samples("batched") == [1.0, 2.0, 3.0]
