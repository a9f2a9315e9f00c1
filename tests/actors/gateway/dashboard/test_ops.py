"""The dashboard's app in-process, over a status tracker and nothing else.

The tracker holds seeded workflow views; no agent registry, breaker supervisor
or runner is running, so those pages must say "not available" rather than show
anything made up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from actors.gateway.app import build_app
from actors.gateway.config import GatewayConfig
from actors.gateway.dashboard import ops
from actors.gateway.dashboard.perfdata import read_views
from actors.gateway.services import Services
from actors.runtime.bus import Bus
from actors.status_tracker import StatusTracker
from protocols.status import WORKFLOWS_BUCKET, StepView, WorkflowView
from tests.actors.gateway.dashboard.conftest import in_process_services

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    """The in-process dashboard and tokens to sign in with."""

    app: Starlette
    viewer: str
    operator: str

    def client(self, token: str) -> httpx.AsyncClient:
        """A client of the app carrying the session cookie of ``token``."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://dashboard.test",
            headers={"Origin": "http://dashboard.test"},
            cookies={"troupe_session": token},
            timeout=30,
        )


def _view(i: int, now: float, **kw: object) -> WorkflowView:
    fields: dict[str, object] = {
        "workflow_id": f"wf-{i:03d}",
        "state": "succeeded",
        "created_at": now - 600 + i,
        "updated_at": now - 590 + i,
        "finished_at": now - 590 + i,
        "template": "hello",
        "progress": 1.0,
        "plan": ["greet", "shout"],
        "steps": [
            StepView(name="greet", state="succeeded", started_at=now - 599 + i, duration_s=0.4),
            StepView(name="shout", state="succeeded", duration_s=0.5, finished_at=now - 591 + i),
        ],
        **kw,
    }
    return msgspec.convert(fields, WorkflowView)


@pytest.fixture
async def served(bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """A status tracker in this process and the gateway's app over it (``param``: seed 55 views)."""
    now = time.time()
    views = (
        [_view(i, now) for i in range(53)]
        + [_view(53, now, state="rejected", reason="unknown_template: nope", steps=[], plan=[])]
        + [_view(54, now, state="running", finished_at=None, progress=0.5, labels={"team": "data"})]
        if getattr(request, "param", True)
        else []
    )
    async with StatusTracker().running(bus):
        kv = await bus.js.key_value(WORKFLOWS_BUCKET)
        for view in views:
            await kv.put(view.workflow_id, msgspec.msgpack.encode(view))
        services = await in_process_services(bus)
        app = build_app(services, config=GatewayConfig())
        viewer = await services.tokens.create("viewer", "viewer")
        operator = await services.tokens.create("operator", "operator")
        yield Served(app, viewer.token, operator.token)


async def _eventually_listed(client: httpx.AsyncClient, workflow_id: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        page = (await client.get("/")).text
        if workflow_id in page or time.monotonic() > deadline:
            return page


async def test_the_list_pages_with_a_cursor_and_renders_each_workflow(served: Served) -> None:
    """50 newest first, an "Older" link to the rest, state and labels in each row."""
    async with served.client(served.viewer) as client:
        first = await _eventually_listed(client, "wf-054")
        assert first.count("<tr data-id=") == 50
        assert 'rel="next"' in first
        older = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        rest = (await client.get(older.replace("&amp;", "&"))).text
        running = (await client.get("/", params={"state": "running"})).text
    assert rest.count("<tr data-id=") == 5
    assert "wf-000" in rest
    assert running.count("<tr data-id=") == 1
    assert "wf-054" in running


async def test_the_detail_page_says_what_is_missing(served: Served) -> None:
    """No task manager to plan it, no history, no result: each is said plainly."""
    async with served.client(served.operator) as client:
        await _eventually_listed(client, "wf-054")
        page = (await client.get("/workflows/wf-054")).text
    assert 'class="edge"' not in page
    assert "Dependencies unknown" in page
    assert 'data-step="greet"' in page
    assert "No history in the status stream." in page
    assert "No result yet." in page
    assert 'id="cancel"' in page


async def test_a_rejection_links_to_its_troubleshooting_section(served: Served) -> None:
    """The reason's code picks the heading: ``unknown_template``."""
    async with served.client(served.viewer) as client:
        await _eventually_listed(client, "wf-053")
        page = (await client.get("/workflows/wf-053")).text
    assert 'href="/docs/guides/troubleshooting#unknown_template"' in page
    assert 'id="cancel"' not in page


async def test_pages_of_actors_that_are_not_running_say_not_available(served: Served) -> None:
    """No registry, breaker supervisor or runner lease bucket: "not available", no table."""
    async with served.client(served.viewer) as client:
        agents = (await client.get("/agents")).text
        breakers = (await client.get("/breakers")).text
        executions = (await client.get("/executions")).text
    assert "Agent registry not available" in agents
    assert "Breaker supervisor not available" in breakers
    assert "Running steps not available" in executions
    assert "<table" not in agents + breakers + executions


async def test_the_performance_page_says_what_it_computed_from(served: Served) -> None:
    """Every chart is drawn from the stored views, and the page counts them."""
    async with served.client(served.viewer) as client:
        await _eventually_listed(client, "wf-054")
        page = (await client.get("/performance", params={"range": "1h"})).text
    assert "Computed from the 55 workflow views" in page
    assert page.count('<svg class="chart"') == 6
    assert "hello/greet" in page


@pytest.mark.parametrize("served", [False], indirect=True)
async def test_a_fresh_troupe_shows_clear_empty_states(served: Served) -> None:
    """Nothing stored yet: the list and the charts say so and how to start."""
    async with served.client(served.viewer) as client:
        listed = (await client.get("/")).text
        performance = (await client.get("/performance")).text
    assert "No workflows to show." in listed
    assert "troupe submit hello" in listed
    assert "No workflows in this range." in performance


async def test_sign_in_forms_and_guards_work_in_process(served: Served) -> None:
    """Login sets the cookie, logout clears it, forms check scope and origin, ids are checked."""
    transport = httpx.ASGITransport(app=served.app)
    origin = {"Origin": "http://dashboard.test"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://dashboard.test", headers=origin
    ) as client:
        assert (await client.get("/agents")).headers["location"] == "/login?next=/agents"
        assert (await client.get("/login?next=/agents")).status_code == 200
        signed_in = await client.post("/login", data={"token": served.viewer})
        assert signed_in.status_code == 303
        assert (await client.get("/ui/rows")).status_code == 200
        assert (await client.post("/workflows/wf-054/cancel")).status_code == 403
        assert (await client.post("/workflows/wf-054/rerun")).status_code == 403
        assert (await client.post("/breakers/k", data={"action": "reset"})).status_code == 403
        assert (await client.get("/workflows/a.b")).status_code == 404
        assert (await client.get("/workflows/absent")).status_code == 404
        foreign = await client.post("/logout", headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        signed_out = await client.post("/logout")
        assert signed_out.headers["location"] == "/login"
        assert 'troupe_session=""' in signed_out.headers["set-cookie"]


async def test_an_operator_rerun_without_a_task_manager_says_why(served: Served) -> None:
    """With no task manager to ask for the inputs, a re-run is a 503 page saying so, not a crash."""
    async with served.client(served.operator) as client:
        answer = await client.post("/workflows/wf-001/rerun")
    assert answer.status_code == 503
    assert "Could not do that" in answer.text
    assert "no actor answers" in answer.text


async def test_the_docs_pages_render_search_and_serve_images(served: Served) -> None:
    """Index, a guide with its table of contents, a search, a missing page, a packaged image."""
    async with served.client(served.viewer) as client:
        index = await client.get("/docs")
        guide = await client.get("/docs/guides/troubleshooting")
        hits = await client.get("/docs/search", params={"q": "unknown_template"})
        missing = await client.get("/docs/nope")
        image = await client.get("/docs/images/workflow-list.png")
        escape = await client.get("/docs/..%2F..%2Fpyproject.toml")
    assert 'href="/docs/architecture"' in index.text
    assert 'class="toc"' in guide.text
    assert 'id="unknown_template"' in guide.text
    assert "/docs/guides/troubleshooting#unknown_template" in hits.text
    assert missing.status_code == 404
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert escape.status_code == 404


async def test_the_list_shows_and_filters_the_labels_each_view_carries(served: Served) -> None:
    """Labels come with the tracker's views: shown in the row, filtered by key=value or key."""
    async with served.client(served.viewer) as client:
        await _eventually_listed(client, "wf-054")
        exact = (await client.get("/", params={"label": "team=data"})).text
        key = (await client.get("/", params={"label": "team"})).text
        other = (await client.get("/", params={"label": "team=web"})).text
    for page in (exact, key):
        assert page.count("<tr data-id=") == 1
        assert 'data-id="wf-054"' in page
        assert "team=data" in page
    assert "<tr data-id=" not in other


async def test_the_range_is_read_newest_first_across_its_slices(served: Served) -> None:
    """The newest views of the range, from every time slice; cut says whether older were left."""
    services: Services = served.app.state.services
    now = time.time()
    since, until = now - 610, now - 540  # the 55 views fall into all four slices
    deadline = time.monotonic() + 10
    while len((await read_views(services, since, until, 100))[0]) < 55:
        assert time.monotonic() < deadline, "the tracker did not index the seeded views"
        await asyncio.sleep(0.05)
    every, every_cut = await read_views(services, since, until, 100)
    newest, cut = await read_views(services, since, until, 20)
    assert [v.workflow_id for v in every] == [f"wf-{i:03d}" for i in range(54, -1, -1)]
    assert not every_cut
    assert [v.workflow_id for v in newest] == [f"wf-{i:03d}" for i in range(54, 34, -1)]
    assert cut


async def test_the_performance_page_computes_its_figures_once_per_read(served: Served) -> None:
    """A second load within the views' lifetime reuses the figures instead of recomputing them."""
    services: Services = served.app.state.services
    cache = ops.PerfCache()
    deadline = time.monotonic() + 10
    first = await ops.performance_page(services, "1h", cache)
    while "Computed from the 55 workflow views" not in first:
        assert time.monotonic() < deadline, "the tracker did not index the seeded views"
        await asyncio.sleep(0.05)
        cache = ops.PerfCache()
        first = await ops.performance_page(services, "1h", cache)
    figures = cache.metrics[3600.0]
    again = await ops.performance_page(services, "1h", cache)
    assert cache.metrics[3600.0] is figures
    assert again.split("<h2>Queue depth now</h2>")[0] == first.split("<h2>Queue depth now</h2>")[0]
