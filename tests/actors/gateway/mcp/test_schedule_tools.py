"""Schedule tools against the session's ``troupe up``: the same schedules as the HTTP API."""

from __future__ import annotations

import secrets
from typing import Any

import mcp.types as types
import pytest
from mcp import Client

from actors.gateway.mcp import TroupeMcp

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def _code(result: types.CallToolResult) -> str:
    assert result.is_error
    assert result.structured_content is not None
    return str(result.structured_content["code"])


async def test_schedule_tools_add_pause_resume_run_and_remove(operator_mcp: TroupeMcp) -> None:
    """Every schedule tool answers the schedule; run_schedule_now's workflow succeeds."""
    name = f"mcp-{secrets.token_hex(4)}"
    async with Client(operator_mcp.server) as client:
        added = _ok(
            await client.call_tool(
                "add_schedule",
                {"name": name, "template": "hello", "params": {"who": "tick"}, "cron": "@daily"},
            )
        )
        listed = _ok(await client.call_tool("list_schedules", {}))["items"]
        paused = _ok(await client.call_tool("pause_schedule", {"name": name}))
        resumed = _ok(await client.call_tool("resume_schedule", {"name": name}))
        run = _ok(await client.call_tool("run_schedule_now", {"name": name}))
        final = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": run["workflow_id"], "timeout_s": 60}
            )
        )
        removed = _ok(await client.call_tool("remove_schedule", {"name": name}))
        again = await client.call_tool("remove_schedule", {"name": name})
        bad = await client.call_tool(
            "add_schedule", {"name": name, "template": "hello", "every": "soon"}
        )
    assert (added["expression"], added["params"], added["paused"]) == (
        "@daily",
        {"who": "tick"},
        False,
    )
    assert added["updated_by"].endswith("(mcp)")
    assert name in [s["name"] for s in listed]
    assert (paused["paused"], resumed["paused"]) == (True, False)
    assert run["uri"] == f"troupe://workflows/{run['workflow_id']}"
    assert final["state"] == "succeeded", final
    assert removed["name"] == name
    assert _code(again) == "not_found"
    assert _code(bad) == "bad_request"


async def test_a_viewer_lists_schedules_but_may_not_change_them(viewer_mcp: TroupeMcp) -> None:
    """list_schedules is a read; add_schedule and run_schedule_now need workflows:submit."""
    async with Client(viewer_mcp.server) as client:
        listed = await client.call_tool("list_schedules", {})
        add = await client.call_tool(
            "add_schedule", {"name": "viewer-made", "template": "hello", "every": "1h"}
        )
        run = await client.call_tool("run_schedule_now", {"name": "viewer-made"})
    assert not listed.is_error
    assert _code(add) == "forbidden"
    assert _code(run) == "forbidden"
