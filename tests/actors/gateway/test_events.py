"""The event hub: one consumer on the status stream, held only while someone follows."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.api import DeliverPolicy

from actors.gateway.events import EventHub, StreamedEvent
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.topology import STATUS_EVENTS
from protocols.status import (
    EVENTS_SUBJECTS,
    STATUS_STREAM,
    StatusEvent,
    WorkflowTransition,
    event_subject,
)

pytestmark = pytest.mark.integration


def _transition(workflow_id: str, state: str) -> WorkflowTransition:
    return WorkflowTransition(workflow_id=workflow_id, state=state, at=1.0, source="test")  # type: ignore[arg-type]


async def _send(bus: Bus, events: list[StatusEvent]) -> None:
    for event in events:
        await bus.send(event_subject(event.workflow_id), event)


async def _live_readers(bus: Bus) -> int:
    """Consumers on the status stream reading every workflow from "now" (the hub's kind;
    a follower's replay reads one workflow from a sequence)."""
    consumers = await bus.js.consumers_info(STATUS_STREAM)
    return sum(
        1
        for c in consumers
        if c.config.deliver_policy == DeliverPolicy.NEW
        and c.config.filter_subject == EVENTS_SUBJECTS
        and c.push_bound
    )


async def test_a_hub_nobody_follows_holds_no_consumer_and_followers_miss_nothing(
    bus: Bus,
) -> None:
    """Idle: no consumer, no event delivered to the gateway. A follower that arrives
    mid-workflow gets the history and every later event once, in order; when the last
    follower has gone the consumer goes too (after ``idle_s``)."""
    await bus.ensure_stream(STATUS_EVENTS)
    hub = EventHub(bus.js, idle_s=0.2)
    await hub.start()
    try:
        await _send(bus, [_transition("wf-a", "submitted"), _transition("wf-b", "submitted")])
        assert await _live_readers(bus) == 0
        assert not hub.reading

        seen: list[StreamedEvent] = []
        attached = asyncio.Event()

        async def follow() -> None:
            async for event in hub.follow("wf-a"):
                seen.append(event)
                attached.set()

        follower = asyncio.ensure_future(follow())
        await asyncio.wait_for(attached.wait(), 30)
        assert hub.reading
        assert await _live_readers(bus) == 1
        await _send(bus, [_transition("wf-a", "running"), _transition("wf-b", "running")])
        await _send(bus, [_transition("wf-a", "succeeded")])
        await asyncio.wait_for(follower, 30)
        states = [getattr(e.event, "state", None) for e in seen]
        assert states == ["submitted", "running", "succeeded"]
        assert [e.seq for e in seen] == sorted({e.seq for e in seen})

        async def released() -> bool:
            return not hub.reading and await _live_readers(bus) == 0

        await eventually(released, timeout=30)
    finally:
        await hub.stop()


async def test_a_follower_back_within_the_idle_time_reuses_the_consumer(bus: Bus) -> None:
    """Reconnecting clients (SSE retries) do not recreate the consumer each time."""
    await bus.ensure_stream(STATUS_EVENTS)
    hub = EventHub(bus.js, idle_s=60.0)
    await hub.start()
    try:
        await _send(bus, [_transition("wf-c", "submitted"), _transition("wf-c", "succeeded")])
        for _ in range(3):
            events = [e async for e in hub.follow("wf-c")]
            assert [getattr(e.event, "state", None) for e in events] == ["submitted", "succeeded"]
        assert hub.reading
        assert await _live_readers(bus) == 1
    finally:
        await hub.stop()
    assert not hub.reading


async def test_a_firehose_opened_by_a_door_holds_what_followed_its_answer(
    bus: Bus,
) -> None:
    """A door makes the hub read and fixes the firehose's start (``now``) before it
    answers: what is published once the client's stream is open is in the stream, though
    the follower registers later; with no follower the consumer still goes."""
    await bus.ensure_stream(STATUS_EVENTS)
    hub = EventHub(bus.js, idle_s=0.2)
    await hub.start()
    try:
        await _send(bus, [_transition("wf-old", "submitted")])
        await hub.ensure_reading()
        assert hub.reading
        stream = hub.follow(None, after=await hub.now())
        first = asyncio.ensure_future(anext(aiter(stream)))
        await _send(bus, [_transition("wf-d", "submitted")])
        event = await asyncio.wait_for(first, 30)
        assert (event.workflow_id, getattr(event.event, "state", None)) == ("wf-d", "submitted")
        await stream.aclose()  # type: ignore[attr-defined]

        async def released() -> bool:
            return not hub.reading and await _live_readers(bus) == 0

        await eventually(released, timeout=30)
        await hub.ensure_reading()
        await eventually(released, timeout=30)  # nobody followed: it goes again
    finally:
        await hub.stop()
