"""Schedules: recurring and one-shot workflows on JetStream message schedules.

A schedule is a :class:`Schedule` in :data:`SCHEDULES_BUCKET` (the definition,
for ``ls``, ``pause`` and ``resume``) plus, while active, one *schedule
message* on :func:`definition_subject` in :data:`SCHEDULES_STREAM`: a
:class:`~protocols.tasks.TaskSubmitted` carrying the ``Nats-Schedule`` header
(``@every 10m``, a six-field cron expression, or ``@at <RFC 3339 time>``) and
``Nats-Schedule-Target`` = :func:`firing_subject`. The server itself publishes
a copy on the target at each firing, so schedules survive restarts and fail
over with the cluster. The task manager consumes the firings and submits each
as a task whose id, :func:`firing_task_id`, is derived from the schedule and
the firing time, so a redelivered firing never makes a second workflow.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec

from protocols.base import Message

__all__ = [
    "DEFINITION_SUBJECTS",
    "FIRING_SUBJECTS",
    "SCHEDULES_BUCKET",
    "SCHEDULES_STREAM",
    "SCHEDULE_NAME_PATTERN",
    "Schedule",
    "definition_subject",
    "firing_subject",
    "firing_task_id",
]

SCHEDULES_STREAM = "TROUPE_SCHEDULES"
"""Stream holding the schedule messages and their firings (``allow_msg_schedules``)."""

DEFINITION_SUBJECTS = "troupe.schedules.def.>"
"""Schedule messages, one per active schedule."""

FIRING_SUBJECTS = "troupe.schedules.fire.>"
"""Where the server publishes each firing."""

SCHEDULES_BUCKET = "troupe-schedules"
"""KV bucket of every schedule definition, paused ones included."""

SCHEDULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""What a schedule name may be."""


def definition_subject(name: str) -> str:
    """Return the subject of ``name``'s schedule message."""
    return f"troupe.schedules.def.{name}"


def firing_subject(name: str) -> str:
    """Return the subject ``name``'s firings are published on."""
    return f"troupe.schedules.fire.{name}"


def firing_task_id(name: str, fired_at: float) -> str:
    """Return the task id of ``name``'s firing at Unix time ``fired_at`` (to the second)."""
    return f"sched-{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(fired_at))}"


class Schedule(Message, frozen=True, tag="troupe.schedules.v1.schedule"):
    """One schedule definition."""

    name: Annotated[str, msgspec.Meta(pattern=SCHEDULE_NAME_PATTERN)]
    """Schedule name (the bucket key)."""
    expression: str
    """``Nats-Schedule`` value: ``@every 10m``, a cron expression, or ``@at <time>``."""
    template: str
    """Template each firing submits."""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    """Template parameters of each firing."""
    time_zone: str = ""
    """IANA time zone of a cron expression (empty: UTC)."""
    paused: bool = False
    """Paused: no schedule message, no firings."""
    updated_by: str = ""
    """Who made this version."""
    updated_at: float = 0.0
    """Unix time of this version."""
