"""Schedule firings: each one the server publishes becomes one submitted task.

The task id comes from the schedule's name and the firing's stream time (set
once when the server stored it), so a redelivered firing is the same
submission and the task stream's de-duplication (then the task ids bucket)
keeps it to one workflow.
"""

from __future__ import annotations

import logging

import msgspec

from actors.runtime.bus import Bus
from actors.runtime.handlers import MessageContext
from protocols.schedules import firing_task_id
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted, submit_msg_id

__all__ = ["ScheduleFirings"]

log = logging.getLogger(__name__)


class ScheduleFirings:
    """Submits the task of each schedule firing.

    Args:
        bus: the task manager's connection.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.fired = 0

    async def fire(self, task: TaskSubmitted, ctx: MessageContext) -> None:
        """Submit the firing on ``ctx.subject`` as a task with its derived id."""
        name = ctx.subject.rsplit(".", 1)[-1]
        fired_at = ctx.msg.metadata.timestamp.timestamp()
        task_id = firing_task_id(name, fired_at)
        submitted = msgspec.structs.replace(task, task_id=task_id, submitted_at=fired_at)
        await self._bus.send(SUBMIT_SUBJECT, submitted, msg_id=submit_msg_id(task_id))
        self.fired += 1
        log.info("schedule %s fired: task %s", name, task_id)
