"""The status tracker's client module: get, list and the live feed of one workflow."""

from __future__ import annotations

import pytest

from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.testing import ManualClock, eventually
from actors.status_tracker import StatusTracker
from actors.status_tracker.client import get_workflow, list_workflows, watch_workflow
from protocols.headers import EVENT_ENCODING
from protocols.status import ListWorkflows, WorkflowList, WorkflowView, update_subject
from tests.actors.status_tracker.histories import history, send_all

pytestmark = pytest.mark.integration


async def test_get_and_list_answer_typed_views(
    bus: Bus, tracker: StatusTracker, clock: ManualClock
) -> None:
    """get_workflow returns the view, list_workflows a filtered page; errors are typed."""
    await send_all(bus, history("c-1", clock.time(), template="t"))

    async def done() -> WorkflowView | None:
        try:
            view = await get_workflow(bus, "c-1")
        except NotFound:
            return None
        return view if view.state == "succeeded" else None

    await eventually(done)

    async def listed() -> WorkflowList | None:
        page = await list_workflows(bus, ListWorkflows(template="t"))
        return page if page.items else None

    page = await eventually(listed)
    assert [v.workflow_id for v in page.items] == ["c-1"]
    assert (await list_workflows(bus)).items
    with pytest.raises(NotFound):
        await get_workflow(bus, "c-none")
    with pytest.raises(BadRequest):
        await get_workflow(bus, "a.b")


async def test_watch_yields_announced_views_and_skips_garbage(bus: Bus) -> None:
    """The live feed decodes each announcement of its workflow and ignores undecodable ones."""
    view = WorkflowView(workflow_id="c-2", state="running", created_at=1.0, updated_at=2.0)
    async with watch_workflow(bus, "c-2") as updates:
        await bus.nc.publish(update_subject("c-2"), b"\xc1 not msgpack")
        await bus.publish(update_subject("c-other"), view, encoding=EVENT_ENCODING)
        await bus.publish(update_subject("c-2"), view, encoding=EVENT_ENCODING)
        assert await updates.get() == view
        await bus.publish(update_subject("c-2"), view, encoding=EVENT_ENCODING)
        async for again in updates:
            assert again == view
            break
    await updates.close()
