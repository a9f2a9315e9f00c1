"""Schedule definitions and their schedule messages: add, list, pause, resume, remove, run now.

The definition goes in the schedules bucket; an active schedule also has one
schedule message in the schedules stream, which the server fires. Pausing
replaces that message with a plain one (nothing fires), resuming publishes it
again.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import msgspec
import nats.js.errors

from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from actors.runtime.kv import TypedBucket
from actors.topology import SCHEDULE_DEFINITIONS
from protocols.schedules import (
    Schedule,
    definition_subject,
    firing_subject,
    firing_task_id,
)
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted, submit_msg_id

__all__ = ["ScheduleError", "ScheduleStore", "UnknownSchedule", "schedule_expression"]

_EVERY = re.compile(r"^\d+(ms|s|m|h)(\d+(ms|s|m|h))*$")


class ScheduleError(TroupeError, ValueError):
    """A schedule that cannot be made (bad expression, unknown schedule)."""


class UnknownSchedule(ScheduleError, LookupError):
    """No schedule has this name."""


def schedule_expression(
    *, cron: str | None = None, every: str | None = None, at: str | None = None
) -> str:
    """Return the ``Nats-Schedule`` value for exactly one of ``cron``, ``every`` or ``at``.

    Args:
        cron: six-field cron expression (seconds first) or ``@hourly`` and the like.
        every: interval such as ``10m``, ``2s`` or ``1h30m``.
        at: ISO 8601 time of a one-shot firing (UTC when it names no offset).

    Raises:
        ScheduleError: none or several given, or one is malformed.
    """
    given = [v for v in (cron, every, at) if v]
    if len(given) != 1:
        raise ScheduleError("give exactly one of --cron, --every, --at")
    if every:
        if not _EVERY.match(every):
            raise ScheduleError(f"--every {every!r} is not an interval such as 10m or 2s")
        return f"@every {every}"
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise ScheduleError(f"--at {at!r} is not an ISO 8601 time") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return "@at " + when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cron is not None
    if not cron.startswith("@") and len(cron.split()) != 6:
        raise ScheduleError(f"--cron {cron!r} needs six fields (seconds first)")
    return cron


class ScheduleStore:
    """Read and change schedules.

    Args:
        bus: the connection.
        bucket: the schedules bucket.
    """

    def __init__(self, bus: Bus, bucket: TypedBucket[Schedule]) -> None:
        self._bus = bus
        self._bucket = bucket

    @classmethod
    async def bind(cls, bus: Bus) -> ScheduleStore:
        """Bind to the schedules bucket (created by ``troupe init``)."""
        return cls(bus, await TypedBucket.bind(bus, SCHEDULE_DEFINITIONS, Schedule))

    async def list(self) -> list[Schedule]:
        """Return every schedule, sorted by name."""
        found = []
        for key in sorted(await self._bucket.keys()):
            entry = await self._bucket.get_or_none(key)
            if entry is not None:
                found.append(entry.value)
        return found

    async def get(self, name: str) -> Schedule:
        """Return the schedule named ``name``.

        Raises:
            ScheduleError: no such schedule.
        """
        entry = await self._bucket.get_or_none(name)
        if entry is None:
            raise UnknownSchedule(f"no schedule {name}")
        return entry.value

    async def add(self, schedule: Schedule, *, by: str) -> Schedule:
        """Store ``schedule`` (replacing one of the same name) and arm it unless paused.

        The schedule message goes first: one the server refuses (a malformed
        expression or time zone) leaves the previous schedule as it was.

        Raises:
            ScheduleError: the server refused the expression or the time zone.
        """
        stored = msgspec.structs.replace(schedule, updated_by=by, updated_at=time.time())
        if stored.paused:
            await self._disarm(stored.name)
        else:
            await self._arm(stored)
        await self._bucket.put(stored.name, stored)
        return stored

    async def pause(self, name: str, *, by: str) -> Schedule:
        """Stop ``name`` firing, keeping its definition."""
        return await self.add(msgspec.structs.replace(await self.get(name), paused=True), by=by)

    async def resume(self, name: str, *, by: str) -> Schedule:
        """Let a paused schedule fire again."""
        return await self.add(msgspec.structs.replace(await self.get(name), paused=False), by=by)

    async def remove(self, name: str) -> None:
        """Delete ``name`` and its schedule message."""
        await self.get(name)
        await self._disarm(name)
        await self._bucket.delete(name)

    async def run_now(self, name: str) -> str:
        """Submit one workflow of ``name`` at once; return its id."""
        schedule = await self.get(name)
        now = time.time()
        task = _task(schedule, firing_task_id(f"{name}-now", now), now)
        await self._bus.send(SUBMIT_SUBJECT, task, msg_id=submit_msg_id(task.task_id))
        return task.task_id

    async def _arm(self, schedule: Schedule) -> None:
        headers = {
            "Nats-Schedule": schedule.expression,
            "Nats-Schedule-Target": firing_subject(schedule.name),
        }
        if schedule.time_zone:
            headers["Nats-Schedule-Time-Zone"] = schedule.time_zone
        # The task id is replaced at each firing; this one only satisfies the type.
        task = _task(schedule, "schedule", None)
        try:
            # The stream keeps one message per subject: this replaces the previous one.
            await self._bus.send(definition_subject(schedule.name), task, headers=headers)
        except nats.js.errors.BadRequestError as exc:
            raise ScheduleError(f"schedule {schedule.name}: {exc.description}") from None

    async def _disarm(self, name: str) -> None:
        # The stream keeps one message per subject: a plain message replaces the
        # schedule message, and the server stops firing it.
        await self._bus.js.publish(
            definition_subject(name), b"", headers={"Troupe-Schedule": "disarmed"}
        )


def _task(schedule: Schedule, task_id: str, at: float | None) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id,
        template=schedule.template,
        params=schedule.params,
        labels={"schedule": schedule.name},
        submitted_at=at,
    )
