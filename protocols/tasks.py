"""Tasks: what clients submit. The task manager's wire contract.

A client publishes :class:`TaskSubmitted` on :data:`SUBMIT_SUBJECT` with the
``Nats-Msg-Id`` header set to ``task_id``; the work-queue stream
:data:`TASKS_STREAM` drops a re-send inside its de-duplication window and the
task manager drops one after it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocols.base import Message
from protocols.pipelines import ParamValue, PipelineSpec

__all__ = [
    "CANCEL_SUBJECT",
    "SUBMIT_SUBJECT",
    "TASKS_BUCKET",
    "TASKS_STREAM",
    "TASK_ID_PATTERN",
    "CancelAccepted",
    "CancelTask",
    "TaskSubmitted",
]

SUBMIT_SUBJECT = "troupe.tasks.submit"
"""Subject clients publish :class:`TaskSubmitted` on."""

TASKS_STREAM = "TROUPE_TASKS"
"""Work-queue stream capturing :data:`SUBMIT_SUBJECT`."""

TASKS_BUCKET = "troupe-tasks"
"""KV bucket of accepted task ids (idempotency beyond the stream's window)."""

CANCEL_SUBJECT = "troupe.tasks.cancel"
"""Request subject answering :class:`CancelTask` with :class:`CancelAccepted`."""

TASK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Task ids double as KV keys and subject tokens."""

TaskId = Annotated[str, msgspec.Meta(pattern=TASK_ID_PATTERN)]


class TaskSubmitted(Message, tag="troupe.tasks.v1.submit"):
    """A request to run a pipeline, from a template or an inline definition."""

    task_id: TaskId
    """Idempotency key chosen by the client; also the workflow id."""
    template: str | None = None
    """Name of a registered template; exclusive with ``pipeline``."""
    pipeline: PipelineSpec | None = None
    """Inline pipeline definition; exclusive with ``template``."""
    params: dict[str, ParamValue] = msgspec.field(default_factory=dict)
    """Parameter values for the template."""
    requires: str | None = None
    """Capability an agent must have to take this task (routes it to an agent)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Free-form labels recorded with the workflow."""
    submitted_at: float | None = None
    """Client's Unix time of submission."""


class CancelTask(Message, tag="troupe.tasks.v1.cancel"):
    """Ask to stop a workflow."""

    workflow_id: TaskId
    """Workflow to cancel."""
    reason: str = "cancelled by user"
    """Recorded in the status history."""


class CancelAccepted(Message, tag="troupe.tasks.v1.cancel_accepted"):
    """Answer to :class:`CancelTask`: the cancellation was recorded."""

    workflow_id: str
    """Workflow being cancelled."""
