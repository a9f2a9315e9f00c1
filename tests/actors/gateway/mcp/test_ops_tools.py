"""Catalogue tools against the session's ``troupe up``: templates come from the task manager."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client

from actors.gateway.mcp import TroupeMcp, build_server, local_principal
from actors.gateway.mcp.stdio import local_services
from actors.runtime.bus import Bus

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def _ok(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


@pytest.fixture
async def viewer_mcp_with_own_template(
    gateway_bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TroupeMcp]:
    """The MCP server for a local viewer whose process has ``gateway-only`` in its
    ``TROUPE_TEMPLATES`` (the task manager's does not)."""
    (tmp_path / "gateway-only.toml").write_text(
        'name = "gateway-only"\n[[steps]]\nname = "s"\nrun = "true"\n'
    )
    monkeypatch.setenv("TROUPE_TEMPLATES", str(tmp_path))
    async with local_services(gateway_bus) as services:
        mcp = build_server(services, local=local_principal("viewer"))
        async with mcp.running():
            yield mcp


async def test_templates_are_the_task_managers_not_files_the_gateway_reads(
    viewer_mcp_with_own_template: TroupeMcp,
) -> None:
    """A template only in a directory of the gateway's is not listed; the task manager's are."""
    async with Client(viewer_mcp_with_own_template.server) as client:
        listed = _ok(await client.call_tool("list_templates", {}))["items"]
        resource = await client.read_resource("troupe://templates")
        with pytest.raises(Exception, match="not_found"):
            await client.read_resource("troupe://templates/gateway-only")
    content = resource.contents[0]
    assert isinstance(content, types.TextResourceContents)
    names = [t["name"] for t in listed]
    assert "hello" in names
    assert "gateway-only" not in names
    assert [t["name"] for t in json.loads(content.text)["items"]] == names


async def test_validation_is_the_task_managers_not_files_the_gateway_reads(
    viewer_mcp_with_own_template: TroupeMcp,
) -> None:
    """A template only the gateway could read is unknown to validate_workflow."""
    async with Client(viewer_mcp_with_own_template.server) as client:
        unknown = _ok(await client.call_tool("validate_workflow", {"template": "gateway-only"}))
        known = _ok(await client.call_tool("validate_workflow", {"template": "hello"}))
    assert unknown["valid"] is False
    assert unknown["problems"][0]["code"] == "unknown_template"
    assert known["valid"] is True
    assert [s["name"] for s in known["steps"]] == ["greet", "shout"]
