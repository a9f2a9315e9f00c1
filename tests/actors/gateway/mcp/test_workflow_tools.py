"""Workflow tools against the session's ``troupe up``: live logs of a running step, re-runs of
workflows submitted without the gateway."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client

from actors.gateway.mcp import TroupeMcp
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.task_manager.client import submit_task
from protocols.tasks import TaskSubmitted

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_get_logs_of_a_running_step_gives_its_output_so_far_then_the_final_output(
    operator_mcp: TroupeMcp,
) -> None:
    """While a step runs get_logs returns the lines printed so far; after, the result's tails."""
    # The step may run as an unprivileged user: the gate is where it can see it.
    shared = Path(tempfile.mkdtemp(prefix="troupe-mcp-logs-"))
    shared.chmod(0o755)
    gate = shared / "gate"
    run = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo bye"
    pipeline = {"name": "gated", "steps": [{"name": "talk", "run": run, "backend": "local"}]}
    args = {"step": "talk"}
    try:
        async with Client(operator_mcp.server) as client:
            submitted = _ok(await client.call_tool("submit_workflow", {"pipeline": pipeline}))
            args["workflow_id"] = submitted["workflow_id"]

            async def printed() -> dict[str, Any] | None:
                result = await client.call_tool("get_logs", args)
                if result.is_error:
                    return None
                logs = _ok(result)
                return logs if "first" in logs["stdout"] else None

            live = await eventually(printed, timeout=60.0, interval=0.1)
            gate.touch()
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": args["workflow_id"], "timeout_s": 60}
            )
            final = _ok(await client.call_tool("get_logs", args))
    finally:
        shutil.rmtree(shared)
    assert (live["state"], live["running"], live["stdout"]) == ("running", True, "first\n")
    assert final["state"] == "succeeded"
    assert final["running"] is False
    assert final["stdout"].split() == ["first", "bye"]


async def test_a_workflow_submitted_over_raw_nats_is_rerun_with_the_same_inputs(
    operator_mcp: TroupeMcp, gateway_bus: Bus
) -> None:
    """rerun_workflow repeats a submission the gateway never saw, as a new linked workflow."""
    workflow_id = f"raw-{secrets.token_hex(6)}"
    task = TaskSubmitted(
        task_id=workflow_id, template="hello", params={"who": "raw"}, labels={"origin": "nats"}
    )
    await submit_task(gateway_bus, task)
    async with Client(operator_mcp.server) as client:
        first = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": workflow_id, "timeout_s": 60}
            )
        )
        rerun = _ok(await client.call_tool("rerun_workflow", {"workflow_id": workflow_id}))
        again = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": rerun["workflow_id"], "timeout_s": 60}
            )
        )
        logs = _ok(
            await client.call_tool(
                "get_logs", {"workflow_id": rerun["workflow_id"], "step": "shout"}
            )
        )
    assert first["state"] == "succeeded"
    assert rerun["rerun_of"] == workflow_id
    assert rerun["workflow_id"] != workflow_id
    assert again["state"] == "succeeded"
    assert "HELLO, RAW" in logs["stdout"]


async def test_rerunning_an_unknown_workflow_is_not_found(operator_mcp: TroupeMcp) -> None:
    """rerun_workflow of an id the task manager never took fails with not_found."""
    async with Client(operator_mcp.server) as client:
        result = await client.call_tool("rerun_workflow", {"workflow_id": "no-such-workflow"})
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["code"] == "not_found"
