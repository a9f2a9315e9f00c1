"""Which answer mode serves an MCP request at ``/mcp``, and where ``/mcp`` sits among the routes."""

from __future__ import annotations

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.routing import Route
from starlette.types import Scope

from actors.gateway.app import build_app
from actors.gateway.mcp import TroupeMcp, http_extension
from actors.gateway.mcp.routing import AnswerModes, silent_tool
from actors.gateway.mcp.stdio import local_services
from actors.runtime.bus import Bus

pytestmark = [pytest.mark.integration, pytest.mark.processes]

MODERN = "2026-07-28"


def _post(method: str = "tools/call", name: str | None = None, version: str = MODERN) -> Scope:
    headers = [(b"content-type", b"application/json"), (b"mcp-protocol-version", version.encode())]
    headers.append((b"mcp-method", method.encode()))
    if name is not None:
        headers.append((b"mcp-name", name.encode()))
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}


def test_only_tools_without_a_context_are_silent(operator_mcp: TroupeMcp) -> None:
    """submit_workflow cannot notify; wait_for_workflow (progress) and get_artifact can."""
    server = operator_mcp.server
    assert silent_tool(server, "submit_workflow")
    assert silent_tool(server, "get_status")
    assert not silent_tool(server, "wait_for_workflow")
    assert not silent_tool(server, "get_artifact")
    assert not silent_tool(server, "no_such_tool")


def test_a_silent_tool_call_of_the_stateless_protocol_is_answered_directly(
    operator_mcp: TroupeMcp,
) -> None:
    """A 2026-07-28 call of submit_workflow skips the streamed mode; all else keeps it."""
    modes = AnswerModes(operator_mcp.server)
    legacy = sorted(HANDSHAKE_PROTOCOL_VERSIONS)[-1]
    assert modes.answers_directly(_post(name="submit_workflow"))
    assert not modes.answers_directly(_post(name="wait_for_workflow"))
    assert not modes.answers_directly(_post(name="submit_workflow", version=legacy))
    assert not modes.answers_directly(_post(method="resources/read"))
    assert not modes.answers_directly(_post(method="subscriptions/listen"))
    assert not modes.answers_directly(_post(name=None))
    assert not modes.answers_directly({**_post(name="submit_workflow"), "method": "GET"})
    unversioned = _post(name="submit_workflow")
    unversioned["headers"] = [h for h in unversioned["headers"] if h[0] != b"mcp-protocol-version"]
    assert not modes.answers_directly(unversioned)


async def test_mcp_is_matched_before_the_apis_routes(gateway_bus: Bus) -> None:
    """The MCP route is the router's first: a call does not try every API path first."""
    async with local_services(gateway_bus) as services:
        routes, _ = http_extension(services)
        app = build_app(services, mounts=routes)
    first = app.router.routes[0]
    assert isinstance(first, Route)
    assert first.path == "/mcp"
