"""The status tracker actor in-process: queries, updates, deadlines, ETA, replicas."""

from __future__ import annotations

import json
import random

import pytest

from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import ManualClock, consumer_idle, eventually
from actors.status_tracker import StatusTracker, TrackerConfig
from actors.status_tracker import state as sm
from actors.status_tracker.store import read_history
from actors.topology import WORKFLOWS
from protocols.headers import EVENT_ENCODING
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    TERMINAL_STATES,
    GetWorkflow,
    ListWorkflows,
    WorkflowList,
    WorkflowTransition,
    WorkflowView,
    event_subject,
    update_subject,
)
from tests.actors.status_tracker.histories import history, project, send_all

pytestmark = pytest.mark.integration


async def get(bus: Bus, workflow_id: str) -> WorkflowView:
    return await bus.request(GET_SUBJECT, GetWorkflow(workflow_id=workflow_id), WorkflowView)


async def wait_state(bus: Bus, workflow_id: str, state: str, timeout: float = 30.0) -> WorkflowView:
    async def check() -> WorkflowView | None:
        try:
            view = await get(bus, workflow_id)
        except NotFound:
            return None
        return view if view.state == state else None

    return await eventually(check, timeout=timeout, what=f"{workflow_id} {state}")


async def events_applied(bus: Bus) -> None:
    """Wait until the tracker has handled every event sent so far."""
    await consumer_idle(bus.js, "TROUPE_STATUS", "status-tracker")


async def swept(clock: ManualClock, tracker: StatusTracker) -> None:
    """Wait until the deadline sweep sleeps again: it has handled the clock's present."""
    interval = tracker.config.sweep_interval_s
    await eventually(lambda: interval in clock.sleepers(), what="the sweep asleep")


async def test_get_returns_the_folded_view(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """After a full run, get answers the view the events fold to."""
    events = history("wf-get", clock.time(), attempts=2)
    await send_all(bus, events)
    view = await wait_state(bus, "wf-get", "succeeded")
    assert project(view) == project(sm.fold(events))
    assert view.progress == 1.0


async def test_get_unknown_workflow_is_not_found(bus: Bus, tracker: StatusTracker) -> None:
    """An unknown id is a typed not_found error; an impossible one a bad request."""
    with pytest.raises(NotFound):
        await get(bus, "nope")
    with pytest.raises(BadRequest):
        await get(bus, "a.b")


async def test_list_filters_by_state_and_template(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """list answers from the index mirrored from the bucket, newest first."""
    t = clock.time()
    await send_all(bus, history("l-ok", t, template="a"))
    await send_all(bus, history("l-bad", t + 100, template="a", outcome="failed"))
    await send_all(bus, history("l-other", t + 200, template="b"))
    await wait_state(bus, "l-other", "succeeded")
    await wait_state(bus, "l-bad", "failed")
    await wait_state(bus, "l-ok", "succeeded")

    async def listed() -> WorkflowList | None:
        page = await bus.request(LIST_SUBJECT, ListWorkflows(template="a"), WorkflowList)
        return page if len(page.items) == 2 else None

    page = await eventually(listed)
    assert [v.workflow_id for v in page.items] == ["l-bad", "l-ok"]
    page = await bus.request(LIST_SUBJECT, ListWorkflows(states=["failed"]), WorkflowList)
    assert [v.workflow_id for v in page.items] == ["l-bad"]
    with pytest.raises(BadRequest):
        await bus.request(LIST_SUBJECT, ListWorkflows(cursor="garbage"), WorkflowList)


async def test_each_change_is_announced_on_the_update_subject(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """Watchers get a WorkflowView, in JSON, on troupe.status.updates.<id> after every change."""
    seen: list[WorkflowView] = []
    codec: Codec[WorkflowView] = Codec.of(WorkflowView)

    async def on_msg(msg: object) -> None:
        seen.append(codec.decode(msg.data, EVENT_ENCODING))  # type: ignore[attr-defined]

    sub = await bus.nc.subscribe(update_subject("wf-upd"), cb=on_msg)
    events = history("wf-upd", clock.time(), steps=("a",))
    await send_all(bus, events)
    await send_all(bus, events[:3])  # redelivered duplicates announce nothing new
    await eventually(lambda: any(v.state == "succeeded" for v in seen))
    await events_applied(bus)  # the duplicates too
    await bus.nc.flush()
    await sub.unsubscribe()
    assert max(v.events for v in seen) == len(events)
    assert len({v.events for v in seen}) == len(seen)


async def test_endpoints_are_listed_in_srv_info(bus: Bus, tracker: StatusTracker) -> None:
    """$SRV.INFO shows the get and list endpoints."""
    reply = await bus.nc.request("$SRV.INFO.status_tracker", b"", timeout=10.0)
    info = json.loads(reply.data)
    subjects = {e["subject"] for e in info["endpoints"]}
    assert {GET_SUBJECT, LIST_SUBJECT} <= subjects


async def test_deadline_times_out_a_workflow_whose_runner_died(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """Past its deadline a running workflow ends timed_out; the runner's late success is refused."""
    t = clock.time()
    events = history("wf-dl", t, steps=("a", "b"), deadline=t + 60)
    running = [e for e in events if e.at <= t + 5]  # the runner dies after starting step a
    await send_all(bus, running)
    await wait_state(bus, "wf-dl", "running")
    await swept(clock, tracker)
    clock.advance(30)
    await swept(clock, tracker)
    await events_applied(bus)
    assert (await get(bus, "wf-dl")).state == "running"
    clock.advance(31)
    view = await wait_state(bus, "wf-dl", "timed_out")
    assert view.reason == sm.DEADLINE_REASON
    refused = tracker.refused
    await send_all(bus, events[len(running) :])  # a zombie runner finishes after all
    await events_applied(bus)
    assert tracker.refused > refused
    assert (await get(bus, "wf-dl")).state == "timed_out"
    logged = [e for e in await read_history(bus.js, "wf-dl") if isinstance(e, WorkflowTransition)]
    assert [e.state for e in logged].count("timed_out") == 1


async def test_eta_from_earlier_runs_falls_within_the_observed_range(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """With runs of 10, 14 and 30 s recorded, a new run's estimate lies in [10, 30] s."""
    t = clock.time() - 1000
    for i, total in enumerate((10.0, 14.0, 30.0)):
        wid = f"eta-{i}"
        events = [
            WorkflowTransition(workflow_id=wid, state=s, at=t + dt, source="t", template="etl")
            for s, dt in (("submitted", 0.0), ("running", 1.0), ("succeeded", total))
        ]
        await send_all(bus, events)
        await wait_state(bus, wid, "succeeded")
    now = clock.time()
    await send_all(
        bus,
        [
            WorkflowTransition(
                workflow_id="eta-new", state="submitted", at=now, source="t", template="etl"
            )
        ],
    )
    view = await wait_state(bus, "eta-new", "submitted")
    assert view.eta_s is not None
    assert 10.0 <= (clock.time() - view.created_at) + view.eta_s <= 30.0
    assert view.eta_s == 14.0
    clock.advance(5)
    assert (await get(bus, "eta-new")).eta_s == 9.0


async def test_two_replicas_lose_no_update(bus: Bus, nats_url: str, clock: ManualClock) -> None:
    """Two trackers sharing the consumer end every workflow as its event log folds."""
    buses = [bus, await Bus.connect(ConnectionConfig(url=nats_url))]
    config = TrackerConfig(messages_kept=100)
    trackers = [StatusTracker(clock=clock, config=config) for _ in buses]
    rng = random.Random(7)
    t = clock.time()
    outcomes = ["succeeded", "failed", "cancelled"]
    ids = [f"rep-{i}" for i in range(30)]
    events = [
        e
        for i, wid in enumerate(ids)
        for e in history(wid, t, outcome=outcomes[i % 3], attempts=1 + i % 2)
    ]
    rng.shuffle(events)
    events += rng.sample(events, 60)  # redeliveries
    try:
        async with trackers[0].running(buses[0]), trackers[1].running(buses[1]):
            await send_all(bus, events)

            async def all_done() -> bool:
                page = await bus.request(LIST_SUBJECT, ListWorkflows(limit=100), WorkflowList)
                return len(page.items) == len(ids) and all(
                    v.state in TERMINAL_STATES for v in page.items
                )

            await eventually(all_done, timeout=30.0)
            for wid in ids:
                logged = await read_history(bus.js, wid)
                stored = await get(bus, wid)
                assert project(stored) == project(sm.fold(logged)), wid
            assert trackers[0].applied > 0
            assert trackers[1].applied > 0
    finally:
        await buses[1].close()


async def test_timed_out_event_goes_through_the_stream_once_per_workflow(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """Sweeping twice before the event is applied publishes it once (de-duplicated)."""
    t = clock.time()
    await send_all(bus, history("wf-twice", t, steps=(), deadline=t + 1)[:3])
    await wait_state(bus, "wf-twice", "preparing")
    clock.advance(2)
    await tracker.sweep()
    await tracker.sweep()
    await wait_state(bus, "wf-twice", "timed_out")
    info = await bus.js.stream_info("TROUPE_STATUS", subjects_filter=event_subject("wf-twice"))
    assert (info.state.subjects or {})[event_subject("wf-twice")] == 4


async def test_index_loads_the_bucket_at_start_and_follows_deletes(
    bus: Bus, clock: ManualClock
) -> None:
    """A tracker started over a filled bucket lists its views at once; a deleted key leaves."""
    bucket = await TypedBucket.bind(bus, WORKFLOWS, WorkflowView)
    for i in range(3):
        view = sm.fold(history(f"pre-{i}", clock.time() + i, steps=("a",)))
        assert view is not None
        await bucket.put(view.workflow_id, view)
    actor = StatusTracker(clock=clock, config=TrackerConfig(eta_cache_s=0.0))
    async with actor.running(bus):
        page = await bus.request(LIST_SUBJECT, ListWorkflows(), WorkflowList)
        assert [v.workflow_id for v in page.items] == ["pre-2", "pre-1", "pre-0"]
        assert actor.index_loaded.is_set()
        await bucket.delete("pre-1")
        await eventually(lambda: actor.index.get("pre-1") is None or None, what="pre-1 gone")
