"""Schedules over HTTP (``/api/v1/schedules``): list, add, pause, resume, remove, run now.

Reading needs ``workflows:read``; changing, and running a schedule now, need
``workflows:submit`` (operators). The answers come from the schedules bucket
and stream through :class:`~actors.schedules.client.ScheduleStore`, as for
``troupe schedule``; a new schedule's template is checked with the task
manager first, so one that names no template is refused rather than fired.
The MCP tools (:mod:`actors.gateway.mcp.schedule_tools`) call the same
functions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from actors.gateway.operation import API, Operation
from actors.gateway.schemas import ScheduleList, ScheduleRequest, ScheduleRun
from actors.runtime.errors import BadRequest, NotFound, Unavailable
from actors.schedules.client import (
    ScheduleError,
    ScheduleStore,
    UnknownSchedule,
    schedule_expression,
)
from protocols.schedules import SCHEDULE_NAME_PATTERN, Schedule

if TYPE_CHECKING:
    from actors.gateway.handlers import Call
    from actors.gateway.services import Services

__all__ = [
    "SCHEDULE_OPERATIONS",
    "add_schedule",
    "list_schedules",
    "pause_schedule",
    "remove_schedule",
    "resume_schedule",
    "run_schedule_now",
]


def _store(services: Services) -> ScheduleStore:
    if services.schedules is None:
        raise Unavailable("no schedules here: the schedules bucket does not exist (troupe init)")
    return services.schedules


def _unknown(exc: UnknownSchedule) -> NotFound:
    return NotFound(str(exc))


def _named(call: Call) -> str:
    """Return the path's schedule name; one no schedule could have is not found."""
    name = call.path("schedule")
    if not re.fullmatch(SCHEDULE_NAME_PATTERN, name):
        raise NotFound(f"no schedule {name}")
    return name


async def list_schedules(services: Services) -> ScheduleList:
    """Return every schedule, sorted by name."""
    return ScheduleList(items=await _store(services).list())


async def get_schedule(services: Services, name: str) -> Schedule:
    """Return one schedule.

    Raises:
        NotFound: no such schedule.
    """
    try:
        return await _store(services).get(name)
    except UnknownSchedule as exc:
        raise _unknown(exc) from None


async def add_schedule(services: Services, request: ScheduleRequest, *, by: str) -> Schedule:
    """Add or replace a schedule and arm it unless it is paused.

    Raises:
        BadRequest: not exactly one of cron, every and at, a malformed one, a
            time zone the server does not know, or a template the task manager
            does not know.
    """
    try:
        expression = schedule_expression(cron=request.cron, every=request.every, at=request.at)
    except ScheduleError as exc:
        raise BadRequest(str(exc).replace("--", "")) from None
    try:
        await services.template(request.template)
    except NotFound:
        raise BadRequest(f"no template {request.template!r}") from None
    schedule = Schedule(
        name=request.name,
        expression=expression,
        template=request.template,
        params=dict(request.params),
        time_zone=request.time_zone,
        paused=request.paused,
    )
    try:
        return await _store(services).add(schedule, by=by)
    except ScheduleError as exc:
        raise BadRequest(str(exc)) from None


async def pause_schedule(services: Services, name: str, *, by: str) -> Schedule:
    """Stop a schedule firing, keeping its definition.

    Raises:
        NotFound: no such schedule.
    """
    try:
        return await _store(services).pause(name, by=by)
    except UnknownSchedule as exc:
        raise _unknown(exc) from None


async def resume_schedule(services: Services, name: str, *, by: str) -> Schedule:
    """Let a paused schedule fire again.

    Raises:
        NotFound: no such schedule.
    """
    try:
        return await _store(services).resume(name, by=by)
    except UnknownSchedule as exc:
        raise _unknown(exc) from None


async def remove_schedule(services: Services, name: str) -> Schedule:
    """Delete a schedule; return what it was.

    Raises:
        NotFound: no such schedule.
    """
    store = _store(services)
    try:
        schedule = await store.get(name)
        await store.remove(name)
    except UnknownSchedule as exc:
        raise _unknown(exc) from None
    return schedule


async def run_schedule_now(services: Services, name: str) -> ScheduleRun:
    """Submit one workflow of a schedule at once.

    Raises:
        NotFound: no such schedule.
    """
    try:
        workflow_id = await _store(services).run_now(name)
    except UnknownSchedule as exc:
        raise _unknown(exc) from None
    return ScheduleRun(schedule=name, workflow_id=workflow_id)


# -- HTTP handlers -------------------------------------------------------------------


async def _list(call: Call) -> ScheduleList:
    return await list_schedules(call.services)


async def _get(call: Call) -> Schedule:
    return await get_schedule(call.services, _named(call))


async def _add(call: Call) -> Schedule:
    return await add_schedule(call.services, call.body, by=call.principal.name)


async def _pause(call: Call) -> Schedule:
    return await pause_schedule(call.services, _named(call), by=call.principal.name)


async def _resume(call: Call) -> Schedule:
    return await resume_schedule(call.services, _named(call), by=call.principal.name)


async def _remove(call: Call) -> Schedule:
    return await remove_schedule(call.services, _named(call))


async def _run(call: Call) -> ScheduleRun:
    return await run_schedule_now(call.services, _named(call))


_ONE = f"{API}/schedules/{{schedule}}"
_TAGS = ("schedules",)

SCHEDULE_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        f"{API}/schedules",
        "listSchedules",
        "Schedules, paused ones included",
        "workflows:read",
        _list,
        None,
        ScheduleList,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{API}/schedules",
        "addSchedule",
        "Add or replace a schedule (cron, every or at)",
        "workflows:submit",
        _add,
        ScheduleRequest,
        Schedule,
        201,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _ONE,
        "getSchedule",
        "One schedule",
        "workflows:read",
        _get,
        None,
        Schedule,
        tags=_TAGS,
    ),
    Operation(
        "DELETE",
        _ONE,
        "removeSchedule",
        "Remove a schedule (answers what it was)",
        "workflows:submit",
        _remove,
        None,
        Schedule,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ONE}/pause",
        "pauseSchedule",
        "Stop a schedule firing, keeping it",
        "workflows:submit",
        _pause,
        None,
        Schedule,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ONE}/resume",
        "resumeSchedule",
        "Let a paused schedule fire again",
        "workflows:submit",
        _resume,
        None,
        Schedule,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ONE}/run",
        "runScheduleNow",
        "Submit one workflow of a schedule now",
        "workflows:submit",
        _run,
        None,
        ScheduleRun,
        202,
        tags=_TAGS,
    ),
)
"""The schedule operations of the API."""
