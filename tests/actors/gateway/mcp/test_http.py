"""MCP over Streamable HTTP at ``/mcp``: the gateway of ``troupe up``, and one in process."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import mcp.types as types
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette

from actors.gateway.mcp import http_extension
from actors.gateway.mcp.stdio import local_services
from actors.runtime.bus import Bus
from actors.runtime.testing import capture_spans
from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]


@contextlib.asynccontextmanager
async def _client(url: str, token: str | None, **headers: str) -> AsyncIterator[Client]:
    """An MCP client over Streamable HTTP with ``token`` as its bearer token."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers={**auth, **headers}) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client,
    ):
        yield client


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def test_mcp_without_a_valid_token_is_401(gateway: Gateway) -> None:
    """No token or a bad one: 401 with a Bearer challenge, before any MCP message is read."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=gateway.url, timeout=30.0) as http:
        missing = http.post("/mcp", json=body, headers=headers)
        bad = http.post(
            "/mcp", json=body, headers={**headers, "Authorization": "Bearer troupe_nope"}
        )
    for answer in (missing, bad):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_viewer_reads_resources_but_submit_is_forbidden(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A viewer token lists resources and tools; submit_workflow fails with ``forbidden``."""
    async with _client(f"{gateway.url}/mcp", tokens["viewer"]) as client:
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        refused = await client.call_tool("submit_workflow", {"template": "hello"})
        breaker = await client.call_tool("control_breaker", {"key": "k", "action": "reset"})
    assert "troupe://workflows" in resources
    assert refused.is_error
    assert refused.structured_content is not None
    assert refused.structured_content["code"] == "forbidden"
    assert breaker.structured_content is not None
    assert breaker.structured_content["code"] == "forbidden"


async def test_a_workflow_submitted_over_http_succeeds_in_the_callers_trace(
    gateway: Gateway,
) -> None:
    """Submitted with a ``traceparent``: notified when it finishes, succeeded, same trace id."""
    trace_id = secrets.token_hex(16)
    workflow_id = f"http-{secrets.token_hex(6)}"
    uri = f"troupe://workflows/{workflow_id}"
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    states: list[str] = []
    async with (
        _client(f"{gateway.url}/mcp", gateway.operator, traceparent=traceparent) as client,
        client.listen(resource_subscriptions=[uri]) as subscription,
    ):
        submitted = _ok(
            await client.call_tool(
                "submit_workflow", {"template": "hello", "idempotency_key": workflow_id}
            )
        )
        with anyio.fail_after(60):
            async for _event in subscription:
                status = _ok(await client.call_tool("get_status", {"workflow_id": workflow_id}))
                states.append(status["state"])
                if status["finished"]:
                    break
    assert submitted["trace_id"] == trace_id
    assert states[-1] == "succeeded"
    assert status["trace_id"] == trace_id


async def test_progress_of_wait_for_workflow_reaches_an_http_client(gateway: Gateway) -> None:
    """Over Streamable HTTP, wait_for_workflow streams progress; submit answers at once."""
    reported: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, message))

    async with _client(f"{gateway.url}/mcp", gateway.operator) as client:
        submitted = _ok(await client.call_tool("submit_workflow", {"template": "hello"}))
        final = _ok(
            await client.call_tool(
                "wait_for_workflow",
                {"workflow_id": submitted["workflow_id"], "timeout_s": 60},
                progress_callback=on_progress,
            )
        )
    assert final["state"] == "succeeded"
    assert reported, "no progress notification over HTTP"
    assert reported[-1] == (100, "succeeded")


@contextlib.asynccontextmanager
async def _serving(app: Starlette) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.025)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_the_gateways_span_and_the_workflow_share_one_trace(
    gateway: Gateway, gateway_bus: Bus
) -> None:
    """With tracing on, the gateway's MCP spans and the workflow carry one trace id."""
    with capture_spans() as spans:
        async with local_services(gateway_bus) as services:
            routes, lifespans = http_extension(services)
            app = Starlette(routes=list(routes), lifespan=lifespans[0])
            async with _serving(app) as url, _client(f"{url}/mcp", gateway.operator) as client:
                submitted = _ok(await client.call_tool("submit_workflow", {"template": "hello"}))
                final = _ok(
                    await client.call_tool(
                        "wait_for_workflow", {"workflow_id": submitted["workflow_id"]}
                    )
                )
    trace_of: Callable[[Any], str] = lambda s: format(s.context.trace_id, "032x")  # noqa: E731
    ours = [s for s in spans if trace_of(s) == submitted["trace_id"]]
    names = {getattr(s, "name", "") for s in ours}
    assert final["state"] == "succeeded"
    assert final["trace_id"] == submitted["trace_id"]
    assert {"tools/call submit_workflow", "mcp submit_workflow"} <= names
    assert any(n.endswith(" troupe.tasks.submit") for n in names), names
