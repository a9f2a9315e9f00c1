"""``troupe mcp`` as a subprocess over stdio, with the SDK's client, against ``troupe up``."""

from __future__ import annotations

import sys
import uuid
import warnings
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.actors.conftest import RunningTroupe

pytestmark = [pytest.mark.integration, pytest.mark.processes]

TOOLS = {
    "validate_workflow",
    "submit_workflow",
    "get_status",
    "wait_for_workflow",
    "cancel_workflow",
    "get_result",
    "get_artifact",
    "get_logs",
    "rerun_workflow",
    "list_templates",
    "find_agents",
    "list_executions",
    "stop_execution",
    "control_breaker",
    "list_schedules",
    "add_schedule",
    "pause_schedule",
    "resume_schedule",
    "remove_schedule",
    "run_schedule_now",
}


def _params(troupe: RunningTroupe, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "actors",
            "mcp",
            "--state-dir",
            str(troupe.state_dir),
            "--nats-url",
            troupe.url,
            *extra,
        ],
    )


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_troupe_mcp_serves_every_tool_and_runs_a_workflow(troupe_up: RunningTroupe) -> None:
    """Over stdio as the local operator: the tools are listed, a submitted workflow succeeds."""
    async with Client(_params(troupe_up), read_timeout_seconds=60) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        submitted = _ok(await client.call_tool("submit_workflow", {"template": "hello"}))
        final = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": submitted["workflow_id"], "timeout_s": 60}
            )
        )
        rerun = _ok(
            await client.call_tool("rerun_workflow", {"workflow_id": submitted["workflow_id"]})
        )
    assert set(tools) == TOOLS
    assert all(t.output_schema for t in tools.values())
    assert tools["get_status"].annotations is not None
    assert tools["get_status"].annotations.read_only_hint is True
    assert final["state"] == "succeeded"
    assert rerun["rerun_of"] == submitted["workflow_id"]
    assert rerun["workflow_id"] != submitted["workflow_id"]


async def test_troupe_mcp_as_a_viewer_refuses_to_submit(troupe_up: RunningTroupe) -> None:
    """``--role viewer`` reads but may not submit."""
    async with Client(_params(troupe_up, "--role", "viewer"), read_timeout_seconds=60) as client:
        refused = await client.call_tool("submit_workflow", {"template": "hello"})
        templates = _ok(await client.call_tool("list_templates", {}))
    assert refused.is_error
    assert refused.structured_content is not None
    assert refused.structured_content["code"] == "forbidden"
    assert templates["items"]


async def test_a_client_negotiating_protocol_2025_03_26_works(troupe_up: RunningTroupe) -> None:
    """A 2025-03-26 client (initialize handshake) lists, reads, calls and subscribes."""
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(message.params.uri)

    async with (
        stdio_client(_params(troupe_up)) as (read, write),
        ClientSession(
            dispatcher=JSONRPCDispatcher(read, write),
            message_handler=on_message,
            read_timeout_seconds=60,
        ) as session,
    ):
        init = await session.send_request(
            types.InitializeRequest(
                params=types.InitializeRequestParams(
                    protocol_version="2025-03-26",
                    capabilities=types.ClientCapabilities(),
                    client_info=types.Implementation(name="old-client", version="1.0"),
                )
            ),
            types.InitializeResult,
        )
        session.adopt(init)
        await session.send_notification(types.InitializedNotification())
        assert init.protocol_version == "2025-03-26"
        assert init.capabilities.resources is not None
        assert init.capabilities.resources.subscribe
        tools = (await session.list_tools()).tools
        # Subscribed before it exists: a fast workflow may end before a later subscription.
        workflow_id = f"old-client-{uuid.uuid4().hex[:12]}"
        uri = f"troupe://workflows/{workflow_id}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.subscribe_resource(uri)
        submitted = _ok(
            await session.call_tool(
                "submit_workflow", {"template": "hello", "idempotency_key": workflow_id}
            )
        )
        assert submitted["uri"] == uri
        final = _ok(
            await session.call_tool(
                "wait_for_workflow", {"workflow_id": submitted["workflow_id"], "timeout_s": 60}
            )
        )
        stored = await session.read_resource(uri)
        with anyio.fail_after(30):
            while uri not in updates:
                await anyio.sleep(0.05)
    assert {t.name for t in tools} == TOOLS
    assert final["state"] == "succeeded"
    content = stored.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert '"state":"succeeded"' in content.text
