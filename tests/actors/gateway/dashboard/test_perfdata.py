"""The performance page's views: the gateway's live copy of the newest, and the tracker's slices."""

from __future__ import annotations

import time

import msgspec
import pytest

from actors.gateway.actor import Gateway
from actors.gateway.config import GatewayConfig
from actors.gateway.dashboard import ops
from actors.gateway.dashboard.perfdata import PerfView, RecentViews, read_views
from actors.gateway.services import Services
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.topology import STATUS_EVENTS, WORKFLOWS
from protocols.status import StepView, WorkflowView


def _light(i: int, created: float, state: str = "succeeded") -> PerfView:
    return PerfView(workflow_id=f"wf-{i:03d}", state=state, created_at=created)


def _view(i: int, created: float) -> WorkflowView:
    return msgspec.convert(
        {
            "workflow_id": f"wf-{i:03d}",
            "state": "succeeded",
            "created_at": created,
            "updated_at": created + 1,
            "finished_at": created + 1,
            "template": "hello",
            "labels": {"n": str(i)},
            "plan": ["greet"],
            "steps": [StepView(name="greet", state="succeeded", duration_s=0.5, cache_hit=True)],
        },
        WorkflowView,
    )


def test_recent_views_keep_the_newest_by_creation_and_say_when_older_were_let_go() -> None:
    """Past ``keep``, the oldest is let go (or a late older one never taken); reads say so."""
    recent = RecentViews(keep=3)
    for i, created in enumerate((10.0, 30.0, 20.0, 40.0)):
        recent.apply(f"wf-{i:03d}", _light(i, created))
    recent.apply("wf-009", _light(9, 5.0))
    assert len(recent) == 3
    views, cut = recent.read(0.0, 10)
    assert [v.workflow_id for v in views] == ["wf-003", "wf-001", "wf-002"]
    assert cut
    assert recent.read(15.0, 10) == (views, False)


def test_recent_views_follow_updates_and_deletes_of_a_workflow() -> None:
    """A new revision replaces the old one (even with another creation time); a delete drops it."""
    recent = RecentViews(keep=5)
    recent.apply("wf-001", _light(1, 10.0, "running"))
    recent.apply("wf-002", _light(2, 20.0))
    recent.apply("wf-001", _light(1, 30.0, "failed"))
    views, _ = recent.read(0.0, 10)
    assert [(v.workflow_id, v.state) for v in views] == [
        ("wf-001", "failed"),
        ("wf-002", "succeeded"),
    ]
    recent.apply("wf-002", None)
    recent.apply("wf-404", None)
    assert [v.workflow_id for v in recent.read(0.0, 10)[0]] == ["wf-001"]


def test_recent_views_read_at_most_the_newest_asked_for() -> None:
    """``most`` smaller than the range: the newest of it, and the range is reported cut."""
    recent = RecentViews(keep=10)
    for i in range(6):
        recent.apply(f"wf-{i:03d}", _light(i, float(i)))
    views, cut = recent.read(2.0, 2)
    assert [v.workflow_id for v in views] == ["wf-005", "wf-004"]
    assert cut
    assert recent.read(2.0, 4) == (recent.read(2.0, 10)[0], False)


def test_recent_views_refuse_to_keep_nothing() -> None:
    """A ``keep`` below 1 is a configuration error, named."""
    with pytest.raises(ValueError, match="keep"):
        RecentViews(keep=0)


@pytest.mark.integration
async def test_a_watch_of_the_bucket_holds_what_the_tracker_lists(bus: Bus) -> None:
    """The light views a bucket watch keeps are the tracker's answer, newest first, to the field."""
    now = time.time()
    async with StatusTracker().running(bus):
        views = await TypedBucket.bind(bus, WORKFLOWS, WorkflowView)
        for i in range(30):
            await views.put(f"wf-{i:03d}", _view(i, now - 100 + i))
        recent = RecentViews(keep=20)
        light = await TypedBucket.bind(bus, WORKFLOWS, PerfView)
        taken = 0
        async with await light.watch() as watch:
            async for entry in watch:
                recent.apply(entry.key, entry.value)
                taken += 1
                if taken == 30:  # every key's current value, the oldest ten let go
                    break
        services = Services(bus=bus, verifier=None, tokens=None, hub=None, submissions=None)  # type: ignore[arg-type]

        async def listed() -> tuple[list[PerfView], bool] | None:
            found = await read_views(services, now - 200, now, 20)
            return found if len(found[0]) == 20 else None

        asked = await eventually(listed, what="the tracker's index of the seeded views")
    kept = recent.read(now - 200, 20)
    assert kept == asked
    assert kept[0][0].steps[0].cache_hit
    assert kept[1]


@pytest.mark.integration
async def test_the_gateway_draws_the_performance_page_from_its_watch_without_the_tracker(
    bus: Bus,
) -> None:
    """No status tracker runs: the first load of the page starts the gateway's watch of the
    bucket (and says the tracker's views are not available); later loads draw from the watch."""
    await bus.ensure_stream(STATUS_EVENTS)
    now = time.time()
    gateway = Gateway(GatewayConfig(port=0))
    async with gateway.running(bus):
        assert gateway.services is not None
        services = gateway.services
        assert services.recent is not None
        recent = services.recent
        views = await TypedBucket.bind(bus, WORKFLOWS, WorkflowView)
        for i in range(7):
            await views.put(f"wf-{i:03d}", _view(i, now - 60 + i))
        await views.delete("wf-006")
        assert not recent.watching

        first = await ops.performance_page(services, "1h", ops.PerfCache())
        assert "Workflow views not available" in first
        assert recent.watching

        def watched() -> bool:
            kept = recent.views
            return kept is not None and kept.ready and len(kept) == 6

        await eventually(watched, what="the gateway's copy of the bucket")
        page = await ops.performance_page(services, "1h", ops.PerfCache())
    assert "Computed from the 6 workflow views" in page
    assert "hello/greet" in page
