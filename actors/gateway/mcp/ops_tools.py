"""MCP tools over troupe's catalogue and operations: templates, agents, executions, breakers.

Reads need ``workflows:read``; ``stop_execution`` needs ``executions:stop``
and ``control_breaker`` ``breakers:control`` (admins only). What the back end
cannot do is a tool error with code ``unavailable``, never a made-up answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from actors.gateway.mcp import models
from actors.gateway.mcp.errors import Unsupported
from actors.gateway.mcp.tools import ToolKit
from actors.gateway.services import Services

__all__ = ["add_ops_tools", "executions"]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


async def executions(services: Services) -> models.ExecutionsOut:
    """Return the steps running now.

    Raises:
        Unsupported: the runners' lease bucket is not there to read.
    """
    if services.leases is None:
        raise Unsupported(
            "no executions registry: the runners' step-lease bucket does not exist "
            "(no pipeline runner topology on this NATS)"
        )
    found = await services.executions()
    return models.ExecutionsOut(items=[models.from_execution(e) for e in found.items])


def add_ops_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    """Register the catalogue and operations tools on ``server``."""
    services = kit.services

    @server.tool(annotations=READ_ONLY)
    async def list_templates() -> Annotated[CallToolResult, models.TemplatesOut]:
        """List the pipeline templates with their parameters (name, type, default) and steps."""

        async def body() -> models.TemplatesOut:
            found = await services.templates()
            return models.TemplatesOut(items=[models.from_template(t) for t in found.items])

        return await kit.run("list_templates", "workflows:read", body)

    @server.tool(annotations=READ_ONLY)
    async def find_agents(
        capability: Annotated[
            str | None, Field(description="only agents with this capability (e.g. gpu, lang=fr)")
        ] = None,
    ) -> Annotated[CallToolResult, models.AgentsOut]:
        """List live agents; with a capability, those offering it, least loaded first."""

        async def body() -> models.AgentsOut:
            found = await services.agents(capability)
            return models.AgentsOut(items=[models.from_agent(a) for a in found.agents])

        return await kit.run("find_agents", "workflows:read", body)

    @server.tool(annotations=READ_ONLY)
    async def list_executions() -> Annotated[CallToolResult, models.ExecutionsOut]:
        """List the steps running now: workflow, step, runner, attempt and start time."""
        return await kit.run("list_executions", "workflows:read", lambda: executions(services))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def stop_execution(
        workflow_id: Annotated[str, Field(min_length=1, max_length=128)],
        step: Annotated[str, Field(min_length=1)],
    ) -> Annotated[CallToolResult, models.ExecutionsOut]:
        """Stop one running step (operators); its workflow then ends cancelled."""

        async def body() -> models.ExecutionsOut:
            found = await services.stop_execution(workflow_id, step)
            return models.ExecutionsOut(items=[models.from_execution(e) for e in found.items])

        return await kit.run("stop_execution", "executions:stop", body, target=workflow_id)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def control_breaker(
        key: Annotated[str, Field(min_length=1, max_length=256, description="breaker key")],
        action: Annotated[
            Literal["force_open", "disable", "reset"],
            Field(description="hold it open, let everything through unrecorded, or close it"),
        ],
    ) -> Annotated[CallToolResult, models.BreakersOut]:
        """Force open, disable or reset a circuit breaker (admins only); return its new state."""

        async def body() -> models.BreakersOut:
            found = await services.control_breaker(key, action)
            return models.BreakersOut(items=[models.from_breaker(b) for b in found.items])

        return await kit.run("control_breaker", "breakers:control", body, target=key)
