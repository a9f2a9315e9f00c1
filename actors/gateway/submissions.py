"""What a workflow was submitted with, as the task manager recorded it.

The task manager keeps each submission in its task record, whichever way it
came (CLI, gateway, raw NATS, a schedule firing), so the gateway keeps no copy
of its own and writes nothing more than the submission itself on the hot path
of a submit. Copies the gateway kept before (its submissions bucket, 30 days)
are still read for records that lack the submission.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.runtime.bus import Bus
from actors.runtime.errors import RequestError
from actors.runtime.kv import TypedBucket
from actors.task_manager.client import get_task
from protocols.tasks import TaskSubmitted

__all__ = ["Submission", "Submissions"]


@dataclass(frozen=True, slots=True)
class Submission:
    """One workflow's submission.

    Attributes:
        value: the submission as sent.
    """

    value: TaskSubmitted


class Submissions:
    """Submissions by workflow id, asked of the task manager.

    Args:
        bus: the connection.
        kept: the gateway's earlier copies (``None``: none to read).
    """

    def __init__(self, bus: Bus, kept: TypedBucket[TaskSubmitted] | None = None) -> None:
        self._bus = bus
        self._kept = kept

    async def get_or_none(self, workflow_id: str) -> Submission | None:
        """Return the submission of ``workflow_id``, or ``None`` when none is known.

        A task manager that cannot answer (not running, a malformed id) counts
        as not knowing it.
        """
        try:
            record = await get_task(self._bus, workflow_id)
        except RequestError:
            record = None
        if record is not None and record.submission is not None:
            return Submission(record.submission)
        if self._kept is None:
            return None
        try:
            entry = await self._kept.get_or_none(workflow_id)
        except Exception:  # noqa: BLE001 - an unreadable copy is no copy
            return None
        return Submission(entry.value) if entry is not None else None
