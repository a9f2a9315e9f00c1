"""The MCP server in memory (the SDK's own client) over the session's ``troupe up``."""

from __future__ import annotations

import json
import secrets
import warnings
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning

from actors.gateway.mcp import TroupeMcp, build_server, local_principal
from actors.gateway.mcp.stdio import local_services
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.processes]

SLEEPER = {"name": "sleeper", "steps": [{"name": "nap", "run": "sleep 30", "backend": "local"}]}


def _text(result: types.ReadResourceResult) -> dict[str, Any]:
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.mime_type == "application/json"
    data: dict[str, Any] = json.loads(content.text)
    return data


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def _error(result: types.CallToolResult) -> dict[str, Any]:
    assert result.is_error
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_resources_and_templates_cover_every_troupe_uri(operator_mcp: TroupeMcp) -> None:
    """Fixed resources are listed; parametrised ones are resource templates."""
    async with Client(operator_mcp.server) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
    assert listed == {
        "troupe://workflows",
        "troupe://templates",
        "troupe://agents",
        "troupe://breakers",
        "troupe://executions",
    }
    assert {
        "troupe://workflows{?state,template,limit}",
        "troupe://workflows/{workflow_id}",
        "troupe://workflows/{workflow_id}/result",
        "troupe://workflows/{workflow_id}/history",
        "troupe://templates/{name}",
    } <= templates


async def test_a_template_resource_gives_each_parameter_with_its_type(
    operator_mcp: TroupeMcp,
) -> None:
    """``troupe://templates/hello`` names the ``who`` parameter, its type and default."""
    async with Client(operator_mcp.server) as client:
        hello = _text(await client.read_resource("troupe://templates/hello"))
        listed = _text(await client.read_resource("troupe://templates"))
    assert hello["params"] == [
        {
            "name": "who",
            "type": "str",
            "required": False,
            "default": "world",
            "description": "Who to greet",
        }
    ]
    assert hello["steps"] == ["greet", "shout"]
    assert "hello" in {t["name"] for t in listed["items"]}


async def test_validate_returns_the_plan_or_the_precise_problem_and_runs_nothing(
    operator_mcp: TroupeMcp,
) -> None:
    """A valid template gives its stages; a cycle and a bad parameter are named; nothing runs."""
    cyclic = {
        "name": "loop",
        "steps": [
            {"name": "a", "run": "true", "needs": ["b"]},
            {"name": "b", "run": "true", "needs": ["a"]},
        ],
    }
    async with Client(operator_mcp.server) as client:
        plan = _ok(await client.call_tool("validate_workflow", {"template": "hello"}))
        cycle = _ok(await client.call_tool("validate_workflow", {"pipeline": cyclic}))
        unknown = _ok(
            await client.call_tool(
                "validate_workflow", {"template": "hello", "params": {"whom": "x"}}
            )
        )
        both = _error(await client.call_tool("validate_workflow", {}))
        listed = _text(await client.read_resource("troupe://workflows?template=loop&limit=5"))[
            "items"
        ]
    assert plan["valid"] is True
    assert plan["stages"] == [["greet"], ["shout"]]
    assert [s["name"] for s in plan["steps"]] == ["greet", "shout"]
    assert cycle["valid"] is False
    assert cycle["problems"][0]["code"] == "cycle"
    assert (
        "a -> b -> a" in cycle["problems"][0]["message"]
        or "b -> a -> b" in (cycle["problems"][0]["message"])
    )
    assert unknown["problems"][0]["code"] == "unknown_parameter"
    assert both["code"] == "bad_request"
    assert listed == [], "validation submitted a workflow"


async def test_submit_then_wait_sends_progress_and_ends_succeeded(operator_mcp: TroupeMcp) -> None:
    """wait_for_workflow reports rising progress while it waits; result and resources agree."""
    reported: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total, message))

    async with Client(operator_mcp.server) as client:
        submitted = _ok(
            await client.call_tool(
                "submit_workflow", {"template": "hello", "params": {"who": "mcp"}}
            )
        )
        workflow_id = submitted["workflow_id"]
        assert submitted["uri"] == f"troupe://workflows/{workflow_id}"
        assert submitted["duplicate"] is False
        assert submitted["trace_id"]
        final = _ok(
            await client.call_tool(
                "wait_for_workflow",
                {"workflow_id": workflow_id, "timeout_s": 60},
                progress_callback=on_progress,
            )
        )
        result = _ok(await client.call_tool("get_result", {"workflow_id": workflow_id}))
        resource = _text(await client.read_resource(f"troupe://workflows/{workflow_id}"))
        stored = _text(await client.read_resource(f"troupe://workflows/{workflow_id}/result"))
        history = _text(await client.read_resource(f"troupe://workflows/{workflow_id}/history"))
        logs = _ok(
            await client.call_tool("get_logs", {"workflow_id": workflow_id, "step": "shout"})
        )
        artifact = _ok(
            await client.call_tool(
                "get_artifact", {"workflow_id": workflow_id, "name": "shout.txt"}
            )
        )
        again = _ok(
            await client.call_tool(
                "submit_workflow", {"template": "hello", "idempotency_key": workflow_id}
            )
        )
    assert final["state"] == "succeeded"
    assert final["finished"] is True
    assert reported, "no progress notification while waiting"
    values = [p[0] for p in reported]
    assert values == sorted(values)
    assert values[-1] == 100
    assert all(total == 100 for _, total, _ in reported)
    assert reported[-1][2] == "succeeded"
    assert result["state"] == "succeeded"
    assert [s["name"] for s in result["steps"]] == ["greet", "shout"]
    assert resource["state"] == "succeeded"
    assert stored == result
    states = [
        e["event"]["state"]
        for e in history["items"]
        if e["event"]["type"] == "troupe.status.v1.transition"
    ]
    assert states[0] == "submitted"
    assert states[-1] == "succeeded"
    assert "HELLO, MCP" in logs["stdout"]
    assert artifact["inline"] is True
    assert artifact["text"].strip() == "HELLO, MCP"
    assert again["duplicate"] is True
    assert again["workflow_id"] == workflow_id


async def test_a_subscribed_client_is_notified_when_its_workflow_finishes(
    operator_mcp: TroupeMcp,
) -> None:
    """``subscriptions/listen`` on a workflow's URI delivers updates up to its final state."""
    workflow_id = f"sub-{secrets.token_hex(6)}"
    uri = f"troupe://workflows/{workflow_id}"
    seen: list[str] = []
    async with (
        Client(operator_mcp.server) as client,
        client.listen(resource_subscriptions=[uri]) as subscription,
    ):
        _ok(
            await client.call_tool(
                "submit_workflow", {"template": "hello", "idempotency_key": workflow_id}
            )
        )
        with anyio.fail_after(60):
            async for event in subscription:
                assert getattr(event, "uri", None) == uri
                state = _text(await client.read_resource(uri))["state"]
                seen.append(state)
                if state == "succeeded":
                    break
    assert seen[-1] == "succeeded"


async def test_a_client_of_an_earlier_protocol_subscribes_with_resources_subscribe(
    operator_mcp: TroupeMcp,
) -> None:
    """A handshake-era client gets ``notifications/resources/updated`` up to the final state."""
    workflow_id = f"legacy-{secrets.token_hex(6)}"
    uri = f"troupe://workflows/{workflow_id}"
    updated: list[str] = []
    done = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
            updated.append(uri)
            done.set()

    async with Client(operator_mcp.server, mode="legacy", message_handler=on_message) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe is True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(uri)
        _ok(
            await client.call_tool(
                "submit_workflow", {"template": "hello", "idempotency_key": workflow_id}
            )
        )

        async def finished() -> bool:
            return bool(updated) and _text(await client.read_resource(uri))["state"] == "succeeded"

        with anyio.fail_after(60):
            await done.wait()
        assert await eventually(finished, timeout=60.0, interval=0.2)


async def test_cancel_stops_a_running_workflow(operator_mcp: TroupeMcp) -> None:
    """A running inline workflow cancelled through MCP ends ``cancelled``; its step is listed."""
    async with Client(operator_mcp.server) as client:
        workflow_id = _ok(await client.call_tool("submit_workflow", {"pipeline": SLEEPER}))[
            "workflow_id"
        ]

        async def running() -> bool:
            result = await client.call_tool("get_status", {"workflow_id": workflow_id})
            return not result.is_error and _ok(result)["state"] == "running"

        assert await eventually(running, timeout=60.0, interval=0.2)

        async def listed() -> bool:
            items = _ok(await client.call_tool("list_executions", {}))["items"]
            return any(i["workflow_id"] == workflow_id and i["step"] == "nap" for i in items)

        assert await eventually(listed, timeout=30.0, interval=0.2)
        logs = _ok(await client.call_tool("get_logs", {"workflow_id": workflow_id, "step": "nap"}))
        cancelled = _ok(await client.call_tool("cancel_workflow", {"workflow_id": workflow_id}))
        final = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": workflow_id, "timeout_s": 60}
            )
        )
    assert (logs["state"], logs["running"], logs["stdout"]) == ("running", True, "")
    assert cancelled == {"workflow_id": workflow_id, "cancelling": True}
    assert final["state"] == "cancelled"


async def test_stop_execution_stops_a_running_step_and_its_workflow_ends_cancelled(
    operator_mcp: TroupeMcp,
) -> None:
    """stop_execution names the stopped step; the workflow ends cancelled, the step unlisted."""
    async with Client(operator_mcp.server) as client:
        workflow_id = _ok(await client.call_tool("submit_workflow", {"pipeline": SLEEPER}))[
            "workflow_id"
        ]

        async def listed() -> bool:
            items = _ok(await client.call_tool("list_executions", {}))["items"]
            return any(i["workflow_id"] == workflow_id and i["step"] == "nap" for i in items)

        assert await eventually(listed, timeout=60.0, interval=0.2)
        stopped = _ok(
            await client.call_tool("stop_execution", {"workflow_id": workflow_id, "step": "nap"})
        )
        final = _ok(
            await client.call_tool(
                "wait_for_workflow", {"workflow_id": workflow_id, "timeout_s": 60}
            )
        )
    assert [(i["workflow_id"], i["step"]) for i in stopped["items"]] == [(workflow_id, "nap")]
    assert final["state"] == "cancelled"


async def test_errors_carry_troupes_code_and_the_docs_section(operator_mcp: TroupeMcp) -> None:
    """Unknown ids, missing capabilities and admin-only tools fail with code and docs anchor."""
    async with Client(operator_mcp.server) as client:
        unknown = _error(await client.call_tool("get_status", {"workflow_id": "no-such-wf"}))
        stop = _error(
            await client.call_tool("stop_execution", {"workflow_id": "no-such-wf", "step": "x"})
        )
        breaker = _error(
            await client.call_tool("control_breaker", {"key": "image:x", "action": "reset"})
        )
        with pytest.raises(Exception, match="not_found"):
            await client.read_resource("troupe://workflows/no-such-wf")
    assert unknown["code"] == "not_found"
    assert unknown["docs"] == "docs/guides/troubleshooting.md#not_found"
    assert stop["code"] == "not_found"
    assert breaker["code"] == "forbidden"


async def test_a_viewer_reads_but_may_not_submit(viewer_mcp: TroupeMcp) -> None:
    """Reading tools work for a viewer; submit, cancel and re-run are forbidden."""
    async with Client(viewer_mcp.server) as client:
        templates = _ok(await client.call_tool("list_templates", {}))
        submit = _error(await client.call_tool("submit_workflow", {"template": "hello"}))
        cancel = _error(await client.call_tool("cancel_workflow", {"workflow_id": "x"}))
    assert "hello" in {t["name"] for t in templates["items"]}
    assert submit["code"] == "forbidden"
    assert cancel["code"] == "forbidden"


async def test_a_large_artifact_comes_back_as_a_link_to_the_http_api(gateway_bus: Bus) -> None:
    """Over the inline limit, get_artifact answers the gateway URL of the artifact."""
    async with local_services(gateway_bus) as services:
        mcp = build_server(
            services,
            local=local_principal("operator"),
            gateway_url="http://127.0.0.1:8765",
            inline_limit=4,
        )
        async with mcp.running(), Client(mcp.server) as client:
            submitted = _ok(await client.call_tool("submit_workflow", {"template": "hello"}))
            workflow_id = submitted["workflow_id"]
            _ok(await client.call_tool("wait_for_workflow", {"workflow_id": workflow_id}))
            link = _ok(
                await client.call_tool(
                    "get_artifact",
                    {"workflow_id": workflow_id, "name": "greeting.txt", "step": "greet"},
                )
            )
    assert link["inline"] is False
    assert link["text"] is None
    assert link["url"] == (
        f"http://127.0.0.1:8765/api/v1/workflows/{workflow_id}/artifacts/greeting.txt?step=greet"
    )
