"""Access to the task ids bucket: claim a task once, move its record with revision checks."""

from __future__ import annotations

from dataclasses import dataclass

from actors.runtime import Bus, Conflict, TypedBucket
from actors.topology import TASK_IDS
from protocols.tasks import TaskRecord

__all__ = ["StoredRecord", "TaskStore"]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A task record and the revision it was read at."""

    record: TaskRecord
    revision: int


class TaskStore:
    """The :data:`protocols.tasks.TASKS_BUCKET` bucket seen as task records.

    Args:
        bucket: the bucket, typed.
    """

    def __init__(self, bucket: TypedBucket[TaskRecord]) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, bus: Bus) -> TaskStore:
        """Open (creating if needed) the task ids bucket."""
        return cls(await TypedBucket.bind(bus, TASK_IDS, TaskRecord))

    async def get(self, task_id: str) -> StoredRecord | None:
        """Return the record of ``task_id``, or ``None`` if the task is unknown."""
        entry = await self._bucket.get_or_none(task_id)
        if entry is None:
            return None
        return StoredRecord(entry.value, entry.revision)

    async def claim(self, record: TaskRecord) -> tuple[StoredRecord, bool]:
        """Store ``record`` unless its task id is already known.

        Returns:
            The stored record (the existing one if there was one) and whether
            this call created it.

        Raises:
            Conflict: the key kept appearing and vanishing.
        """
        for _ in range(3):
            try:
                revision = await self._bucket.create(record.task_id, record)
            except Conflict:
                existing = await self.get(record.task_id)
                if existing is not None:
                    return existing, False
                # Deleted between our create and get: try to create again.
                continue
            return StoredRecord(record, revision), True
        existing = await self.get(record.task_id)
        if existing is None:
            raise Conflict(f"task {record.task_id} kept changing")
        return existing, False

    async def replace(self, current: StoredRecord, record: TaskRecord) -> StoredRecord | None:
        """Replace ``current`` with ``record`` if nobody changed it since it was read.

        Returns:
            The new stored record, or ``None`` when the revision moved on.
        """
        try:
            revision = await self._bucket.update(record.task_id, record, current.revision)
        except Conflict:
            return None
        return StoredRecord(record, revision)
