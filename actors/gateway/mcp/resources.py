"""MCP resources: workflows, their results and histories, templates, agents, breakers, executions.

Every resource is JSON (``application/json``) read from an actor on each
request, through :class:`~actors.gateway.services.Services`. Parametrised ones
are resource templates (``troupe://workflows/{workflow_id}``); the list of
workflows also takes filters (``troupe://workflows{?state,template,limit}``).
Reading needs the ``workflows:read`` scope, which the HTTP transport checks
for every MCP request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel

from actors.gateway.mcp import models
from actors.gateway.mcp.errors import docs_anchor, failure_of
from actors.gateway.mcp.ops_tools import executions
from actors.gateway.services import Services
from actors.runtime.errors import NotFound
from protocols.status import WORKFLOW_STATES, ListWorkflows

__all__ = ["RECENT", "add_resources", "workflow_query"]

JSON = "application/json"

RECENT = 50
"""Workflows listed by ``troupe://workflows`` without a limit."""


def _json(value: BaseModel | msgspec.Struct) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return msgspec.json.encode(value).decode()


async def _read(what: str, produce: Callable[[], Awaitable[Any]]) -> str:
    """Return ``produce()`` as JSON; turn failures into the SDK's resource errors."""
    try:
        return _json(await produce())
    except NotFound as exc:
        raise ResourceNotFoundError(f"not_found: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its code
        failure = failure_of(exc)
        raise ResourceError(
            f"{failure.code}: cannot read {what}: {failure.message} "
            f"(see {docs_anchor(failure.code)})"
        ) from None


def workflow_query(state: str = "", template: str = "", limit: int | str = RECENT) -> ListWorkflows:
    """Build the status query of ``troupe://workflows`` filters.

    Args:
        state: comma-separated states (``running,queued``); empty for all.
        template: only this template.
        limit: page size, 1-1000.

    Raises:
        ResourceError: a filter is not valid.
    """
    states = [s.strip() for s in state.split(",") if s.strip()]
    unknown = [s for s in states if s not in WORKFLOW_STATES]
    if unknown:
        raise ResourceError(
            f"bad_request: unknown state {unknown[0]!r}; states are {', '.join(WORKFLOW_STATES)}"
        )
    try:
        return msgspec.convert(
            {"states": states, "template": template or None, "limit": int(limit)}, ListWorkflows
        )
    except (ValueError, msgspec.ValidationError) as exc:
        raise ResourceError(f"bad_request: bad filter: {exc}") from None


def add_resources(server: MCPServer[Any], services: Services) -> None:
    """Register troupe's resources and resource templates on ``server``."""

    async def workflows_page(query: ListWorkflows) -> models.WorkflowsOut:
        page = await services.list(query)
        return models.WorkflowsOut(
            items=[models.from_view(v) for v in page.items], next_cursor=page.next_cursor
        )

    @server.resource(
        "troupe://workflows",
        name="workflows",
        description=f"The {RECENT} most recent workflows, newest first.",
        mime_type=JSON,
    )
    async def recent_workflows() -> str:
        return await _read("workflows", lambda: workflows_page(workflow_query()))

    @server.resource(
        "troupe://workflows{?state,template,limit}",
        name="workflows_filtered",
        description="Workflows filtered by state (comma-separated), template and limit.",
        mime_type=JSON,
    )
    async def filtered_workflows(state: str = "", template: str = "", limit: str = "50") -> str:
        query = workflow_query(state, template, limit)
        return await _read("workflows", lambda: workflows_page(query))

    @server.resource(
        "troupe://workflows/{workflow_id}",
        name="workflow",
        description="A workflow: state, steps, progress and ETA. Subscribe to follow it.",
        mime_type=JSON,
    )
    async def workflow(workflow_id: str) -> str:
        async def produce() -> models.WorkflowOut:
            return models.from_view(await services.get(workflow_id))

        return await _read(f"workflow {workflow_id}", produce)

    @server.resource(
        "troupe://workflows/{workflow_id}/result",
        name="workflow_result",
        description="A finished workflow's result: every step's outcome and artifacts.",
        mime_type=JSON,
    )
    async def workflow_result(workflow_id: str) -> str:
        async def produce() -> models.ResultOut:
            return models.from_result(await services.result(workflow_id))

        return await _read(f"the result of {workflow_id}", produce)

    @server.resource(
        "troupe://workflows/{workflow_id}/history",
        name="workflow_history",
        description="Every status event of a workflow, oldest first.",
        mime_type=JSON,
    )
    async def workflow_history(workflow_id: str) -> str:
        return await _read(f"the history of {workflow_id}", lambda: services.history(workflow_id))

    @server.resource(
        "troupe://templates",
        name="templates",
        description="Pipeline templates with their parameters and types.",
        mime_type=JSON,
    )
    async def templates() -> str:
        async def produce() -> models.TemplatesOut:
            found = await services.templates()
            return models.TemplatesOut(items=[models.from_template(t) for t in found.items])

        return await _read("templates", produce)

    @server.resource(
        "troupe://templates/{name}",
        name="template",
        description="One template: its parameters (name, type, default) and steps.",
        mime_type=JSON,
    )
    async def template(name: str) -> str:
        async def produce() -> models.TemplateOut:
            return models.from_template(await services.template(name))

        return await _read(f"template {name}", produce)

    @server.resource("troupe://agents", name="agents", description="Live agents.", mime_type=JSON)
    async def agents() -> str:
        async def produce() -> models.AgentsOut:
            found = await services.agents()
            return models.AgentsOut(items=[models.from_agent(a) for a in found.agents])

        return await _read("agents", produce)

    @server.resource(
        "troupe://breakers", name="breakers", description="Circuit breakers.", mime_type=JSON
    )
    async def breakers() -> str:
        async def produce() -> models.BreakersOut:
            found = await services.breakers()
            return models.BreakersOut(items=[models.from_breaker(b) for b in found.items])

        return await _read("breakers", produce)

    @server.resource(
        "troupe://executions",
        name="executions",
        description="Steps running now (from the runners' step leases).",
        mime_type=JSON,
    )
    async def running_steps() -> str:
        return await _read("executions", lambda: executions(services))
