"""The detail page's step graph: its edges come from the plan the task manager gives.

The gateway here has no template directory at all: ``diamond`` and ``chain``
exist only in the task manager's own directory (see ``conftest.py``).
"""

from __future__ import annotations

import time

import msgspec
import pytest

from actors.gateway.dashboard import detail
from actors.gateway.schemas import SubmitRequest
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from protocols import tasks
from protocols.status import WORKFLOWS_BUCKET, WorkflowView
from tests.actors.gateway.dashboard.conftest import InProcess

pytestmark = pytest.mark.integration


async def _seed(bus: Bus, workflow_id: str, template: str, plan: list[str]) -> None:
    """Store a tracker view of a workflow the task manager never took."""
    view = msgspec.convert(
        {
            "workflow_id": workflow_id,
            "state": "queued",
            "created_at": time.time(),
            "updated_at": time.time(),
            "template": template,
            "plan": plan,
        },
        WorkflowView,
    )
    kv = await bus.js.key_value(WORKFLOWS_BUCKET)
    await kv.put(workflow_id, msgspec.msgpack.encode(view))


async def _page(served: InProcess, workflow_id: str) -> str:
    async with served.client() as client:
        answer = await client.get(f"/workflows/{workflow_id}")
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_a_template_only_the_task_manager_knows_is_drawn_with_its_edges(
    in_process: InProcess,
) -> None:
    """The plan of the submitted task (template and parameters) gives the graph its four edges."""
    services = in_process.services
    submitted = await services.submit(SubmitRequest(template="diamond", params={"who": "x"}))
    workflow_id = submitted.workflow_id

    async def planned() -> WorkflowView | None:
        view = await services.get(workflow_id)
        return view if view.plan else None

    await eventually(planned, ignoring=(NotFound,), what="the tracker's view of the plan")
    page = await _page(in_process, workflow_id)
    assert page.count('class="edge"') == 4
    for step in ("split", "left", "right", "join"):
        assert f'data-step="{step}"' in page
    assert "Dependencies unknown" not in page


async def test_a_workflow_without_a_kept_submission_is_planned_from_its_template(
    in_process: InProcess, bus: Bus
) -> None:
    """No task record: the task manager plans the view's template with its defaults."""
    await _seed(bus, "wf-chain", "chain", ["a", "b", "c"])
    page = await eventually(
        lambda: _page(in_process, "wf-chain"), ignoring=(AssertionError,), what="the page"
    )
    assert page.count('class="edge"') == 2
    assert "Dependencies unknown" not in page


async def test_a_plan_the_task_manager_rejects_draws_the_steps_unconnected(
    in_process: InProcess, bus: Bus
) -> None:
    """``diamond`` needs a parameter the view cannot supply: no edges, and the page says so."""
    await _seed(bus, "wf-diamond", "diamond", ["split", "left", "right", "join"])
    page = await eventually(
        lambda: _page(in_process, "wf-diamond"), ignoring=(AssertionError,), what="the page"
    )
    assert 'class="edge"' not in page
    assert 'data-step="join"' in page
    assert "Dependencies unknown" in page


@pytest.mark.parametrize("in_process", [False], indirect=True)
async def test_a_task_manager_that_never_answers_delays_the_page_only_briefly(
    in_process: InProcess, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests to the task manager go unanswered: the page renders unconnected once the
    plan's time budget runs out, not after the task manager's usual request timeouts."""
    monkeypatch.setattr(detail, "PLAN_TIMEOUT", 0.2)
    asked: list[str] = []

    async def swallow(msg: object) -> None:
        asked.append(getattr(msg, "subject", ""))

    for subject in (tasks.GET_SUBJECT, tasks.VALIDATE_SUBJECT):
        await bus.nc.subscribe(subject, cb=swallow)
    await _seed(bus, "wf-stuck", "chain", ["a", "b", "c"])
    await eventually(lambda: in_process.services.get("wf-stuck"), ignoring=(NotFound,))
    started = time.monotonic()
    page = await _page(in_process, "wf-stuck")
    # Far below the 5 s a single unanswered task manager request would take.
    assert time.monotonic() - started < 4.0
    assert asked
    assert 'data-step="c"' in page
    assert "Dependencies unknown" in page
