"""Schedules: recurring and one-shot workflows fired by JetStream message schedules.

:mod:`~actors.schedules.client` keeps the definitions and the schedule
messages; the task manager submits each firing.
"""

from actors.schedules.client import (
    ScheduleError,
    ScheduleStore,
    UnknownSchedule,
    schedule_expression,
)

__all__ = ["ScheduleError", "ScheduleStore", "UnknownSchedule", "schedule_expression"]
