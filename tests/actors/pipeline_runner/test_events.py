"""Specification of a run's announcements: some sent in the background, all stored in order."""

from __future__ import annotations

import asyncio
import gc

import pytest

from actors.pipeline_runner.events import RunEvents
from actors.runtime.bus import Bus
from actors.runtime.clock import system_clock
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import Unavailable
from actors.topology import STATUS_EVENTS
from protocols.pipelines import StepSpec
from protocols.status import StatusEvent, StepTransition, WorkflowTransition, event_subject
from tests.actors.pipeline_runner.conftest import make_run

pytestmark = pytest.mark.integration

_codec: Codec[StatusEvent] = Codec.of(StatusEvent)  # type: ignore[arg-type]


async def _stored(bus: Bus, workflow_id: str) -> list[str]:
    """Every transition stored for ``workflow_id``, in stream order, as ``kind:state``."""
    info = await bus.js.stream_info(STATUS_EVENTS.name, subjects_filter=event_subject(workflow_id))
    count = (info.state.subjects or {}).get(event_subject(workflow_id), 0)
    sub = await bus.js.subscribe(event_subject(workflow_id), ordered_consumer=True)
    seen: list[str] = []
    try:
        for _ in range(count):
            msg = await sub.next_msg(timeout=10.0)
            event = _codec.decode(msg.data, encoding_of(msg.headers))
            if isinstance(event, WorkflowTransition):
                seen.append(f"workflow:{event.state}")
            elif isinstance(event, StepTransition):
                seen.append(f"{event.step}:{event.state}")
    finally:
        await sub.unsubscribe()
    return seen


async def test_announcements_made_in_the_background_are_stored_in_the_order_made(
    bus: Bus,
) -> None:
    """Run transitions and a step's start go in the background; the step's end follows them."""
    await bus.ensure_stream(STATUS_EVENTS)
    events = RunEvents(bus, make_run("wf-ordered", [StepSpec(name="s", run="true")]), system_clock)
    await events.workflow("preparing", wait=False)
    await events.workflow("running", wait=False)
    await events.step("s", "running", wait=False)
    await events.step("s", "succeeded", exit_code=0, wait=False)
    await events.settle()
    await events.workflow("succeeded")
    assert await _stored(bus, "wf-ordered") == [
        "workflow:preparing",
        "workflow:running",
        "s:running",
        "s:succeeded",
        "workflow:succeeded",
    ]


async def test_a_background_announcement_that_is_not_stored_fails_the_run_and_stops_the_rest(
    bus: Bus,
) -> None:
    """Without a status stream the failure surfaces at settle and at every later announcement."""
    events = RunEvents(bus, make_run("wf-unstored", [StepSpec(name="s", run="true")]), system_clock)
    await events.workflow("preparing", wait=False)  # returns at once
    await events.step("s", "running", wait=False)
    with pytest.raises(Unavailable):
        await events.settle()
    with pytest.raises(Unavailable):
        await events.workflow("succeeded")


async def test_a_background_failure_of_a_run_that_never_settles_is_not_reported_as_unretrieved(
    bus: Bus,
) -> None:
    """A run cancelled before it settles leaves its failed announcement behind: asyncio must
    not log it as an exception nobody retrieved (the run's own outcome already says why)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        events = RunEvents(bus, make_run("wf-left", [StepSpec(name="s", run="true")]), system_clock)
        await events.workflow("preparing", wait=False)
        behind = events._behind
        assert behind is not None
        await asyncio.wait([behind], timeout=30)  # done, its failure left unread
        assert behind.done()
        del events, behind
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
