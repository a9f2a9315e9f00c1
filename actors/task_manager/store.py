"""Access to the task ids bucket: claim a task once, move its record with revision checks."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from actors.runtime.codec import Codec, encode
from protocols.tasks import TaskRecord

__all__ = ["StoredRecord", "TaskStore"]

_codec: Codec[TaskRecord] = Codec.of(TaskRecord)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A task record and the revision it was read at."""

    record: TaskRecord
    revision: int


class TaskStore:
    """The :data:`protocols.tasks.TASKS_BUCKET` bucket seen as task records.

    Args:
        kv: the bucket.
    """

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, task_id: str) -> StoredRecord | None:
        """Return the record of ``task_id``, or ``None`` if the task is unknown."""
        try:
            entry = await self._kv.get(task_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return StoredRecord(_codec.decode(entry.value), entry.revision)

    async def claim(self, record: TaskRecord) -> tuple[StoredRecord, bool]:
        """Store ``record`` unless its task id is already known.

        Returns:
            The stored record (the existing one if there was one) and whether
            this call created it.
        """
        for _ in range(3):
            try:
                revision = await self._kv.create(record.task_id, encode(record))
            except KeyWrongLastSequenceError:
                existing = await self.get(record.task_id)
                if existing is not None:
                    return existing, False
                # Deleted between our create and get: try to create again.
                continue
            return StoredRecord(record, revision), True
        existing = await self.get(record.task_id)
        if existing is None:
            raise KeyWrongLastSequenceError
        return existing, False

    async def replace(self, current: StoredRecord, record: TaskRecord) -> StoredRecord | None:
        """Replace ``current`` with ``record`` if nobody changed it since it was read.

        Returns:
            The new stored record, or ``None`` when the revision moved on.
        """
        try:
            revision = await self._kv.update(record.task_id, encode(record), last=current.revision)
        except KeyWrongLastSequenceError:
            return None
        return StoredRecord(record, revision)
