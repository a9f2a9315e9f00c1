"""MCP tools over schedules: list, add, pause, resume, remove and run one now.

Listing needs ``workflows:read``; every change, and running a schedule now,
``workflows:submit`` (operators), as on ``/api/v1/schedules``, whose
functions (:mod:`actors.gateway.schedules`) these tools call.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from actors.gateway import schedules
from actors.gateway.mcp.access import caller
from actors.gateway.mcp.tools import ToolKit
from actors.gateway.schemas import ScheduleRequest
from actors.runtime.errors import BadRequest
from protocols.schedules import SCHEDULE_NAME_PATTERN, Schedule

__all__ = [
    "ScheduleOut",
    "ScheduleRunOut",
    "SchedulesOut",
    "add_schedule_tools",
    "from_schedule",
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

Name = Annotated[
    str, Field(description="schedule name", pattern=SCHEDULE_NAME_PATTERN, max_length=64)
]


class ScheduleOut(BaseModel):
    """A schedule: what it submits and when."""

    name: str
    expression: str = Field(description="@every <interval>, a cron expression or @at <time>")
    template: str
    params: dict[str, Any] = Field(default_factory=dict)
    time_zone: str = Field(default="", description="IANA zone of a cron expression ('' = UTC)")
    paused: bool = False
    updated_by: str = ""
    updated_at: float = 0.0


class SchedulesOut(BaseModel):
    """Every schedule, sorted by name."""

    items: list[ScheduleOut]


class ScheduleRunOut(BaseModel):
    """The workflow a run-now submitted."""

    schedule: str
    workflow_id: str
    uri: str = Field(description="the workflow's resource URI")


def from_schedule(schedule: Schedule) -> ScheduleOut:
    """Convert a schedule definition."""
    fields = msgspec.to_builtins(schedule)
    assert isinstance(fields, dict)
    return ScheduleOut.model_validate({k: v for k, v in fields.items() if k != "type"})


def add_schedule_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    """Register the schedule tools on ``server``."""
    services = kit.services

    def who() -> str:
        return f"{caller().name} (mcp)"

    @server.tool(annotations=READ_ONLY)
    async def list_schedules() -> Annotated[CallToolResult, SchedulesOut]:
        """List the schedules (paused ones too): name, when, template, parameters."""

        async def body() -> SchedulesOut:
            found = await schedules.list_schedules(services)
            return SchedulesOut(items=[from_schedule(s) for s in found.items])

        return await kit.run("list_schedules", "workflows:read", body)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def add_schedule(
        *,
        name: Name,
        template: Annotated[str, Field(description="template each firing submits")],
        params: Annotated[
            dict[str, str | int | float | bool] | None,
            Field(description="template parameters of each firing"),
        ] = None,
        cron: Annotated[
            str | None, Field(description="six-field cron expression, seconds first")
        ] = None,
        every: Annotated[str | None, Field(description="interval such as 10m, 2s or 1h30m")] = None,
        at: Annotated[str | None, Field(description="one firing at this ISO 8601 time")] = None,
        time_zone: Annotated[str, Field(description="IANA time zone of cron")] = "",
        paused: Annotated[bool, Field(description="store it without firing")] = False,
    ) -> Annotated[CallToolResult, ScheduleOut]:
        """Add (or replace) a schedule firing a template: give exactly one of cron, every, at.

        Each firing submits one workflow, never two for the same firing time.
        """

        async def body() -> ScheduleOut:
            try:
                request = msgspec.convert(
                    {
                        "name": name,
                        "template": template,
                        "params": dict(params or {}),
                        "cron": cron,
                        "every": every,
                        "at": at,
                        "time_zone": time_zone,
                        "paused": paused,
                    },
                    ScheduleRequest,
                )
            except msgspec.ValidationError as exc:
                raise BadRequest(str(exc)) from None
            return from_schedule(await schedules.add_schedule(services, request, by=who()))

        return await kit.run("add_schedule", "workflows:submit", body, target=name)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def pause_schedule(name: Name) -> Annotated[CallToolResult, ScheduleOut]:
        """Stop a schedule firing, keeping it (resume_schedule starts it again)."""

        async def body() -> ScheduleOut:
            return from_schedule(await schedules.pause_schedule(services, name, by=who()))

        return await kit.run("pause_schedule", "workflows:submit", body, target=name)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
    async def resume_schedule(name: Name) -> Annotated[CallToolResult, ScheduleOut]:
        """Let a paused schedule fire again."""

        async def body() -> ScheduleOut:
            return from_schedule(await schedules.resume_schedule(services, name, by=who()))

        return await kit.run("resume_schedule", "workflows:submit", body, target=name)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False))
    async def remove_schedule(name: Name) -> Annotated[CallToolResult, ScheduleOut]:
        """Delete a schedule; return what it was. Workflows it submitted are untouched."""

        async def body() -> ScheduleOut:
            return from_schedule(await schedules.remove_schedule(services, name))

        return await kit.run("remove_schedule", "workflows:submit", body, target=name)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False))
    async def run_schedule_now(name: Name) -> Annotated[CallToolResult, ScheduleRunOut]:
        """Submit one workflow of a schedule at once; follow it with wait_for_workflow."""

        async def body() -> ScheduleRunOut:
            run = await schedules.run_schedule_now(services, name)
            return ScheduleRunOut(
                schedule=run.schedule,
                workflow_id=run.workflow_id,
                uri=f"troupe://workflows/{run.workflow_id}",
            )

        return await kit.run("run_schedule_now", "workflows:submit", body, target=name)
