"""Tasks: what clients submit. The task manager's wire contract.

A client publishes :class:`TaskSubmitted` on :data:`SUBMIT_SUBJECT` with the
``Nats-Msg-Id`` header set to ``task_id``; the work-queue stream
:data:`TASKS_STREAM` drops a re-send inside its de-duplication window and the
task manager drops one after it, using the :class:`TaskRecord` it keeps in
:data:`TASKS_BUCKET`. A task that fails validation ends ``rejected`` with a
reason that starts with one of the :data:`REJECTION_CODES`
(``"<code>: <detail>"``).
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from protocols.base import ID_PATTERN, Identifier, Message
from protocols.pipelines import ParamValue, PipelineSpec

__all__ = [
    "CANCEL_SUBJECT",
    "REJECTION_CODES",
    "SUBMIT_SUBJECT",
    "TASKS_BUCKET",
    "TASKS_STREAM",
    "TASK_ID_PATTERN",
    "CancelAccepted",
    "CancelTask",
    "RejectionCode",
    "TaskId",
    "TaskRecord",
    "TaskState",
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

TASK_ID_PATTERN = ID_PATTERN
"""Task ids double as KV keys and subject tokens."""

TaskId = Identifier

RejectionCode = Literal[
    "invalid_task",
    "unknown_template",
    "invalid_template",
    "invalid_definition",
    "missing_parameter",
    "invalid_parameter",
    "unknown_parameter",
    "undefined_parameter",
    "duplicate_step",
    "unknown_dependency",
    "cycle",
    "missing_input",
    "no_capable_agent",
]
"""Why a task was rejected; the first word of the workflow's ``reason``."""

REJECTION_CODES: tuple[RejectionCode, ...] = get_args(RejectionCode)
"""Every :data:`RejectionCode`."""

TaskState = Literal["accepted", "queued", "dispatched", "rejected", "cancelled"]
"""How far the task manager got with a task: ``accepted`` (being handled),
``queued`` (its run is published), ``dispatched`` (handed to an agent),
``rejected`` or ``cancelled``."""


class TaskSubmitted(Message, frozen=True, tag="troupe.tasks.v1.submit"):
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


class CancelTask(Message, frozen=True, tag="troupe.tasks.v1.cancel"):
    """Ask to stop a workflow."""

    workflow_id: TaskId
    """Workflow to cancel."""
    reason: str = "cancelled by user"
    """Recorded in the status history."""


class CancelAccepted(Message, frozen=True, tag="troupe.tasks.v1.cancel_accepted"):
    """Answer to :class:`CancelTask`: the cancellation was recorded."""

    workflow_id: str
    """Workflow being cancelled."""


class TaskRecord(Message, frozen=True, tag="troupe.tasks.v1.record"):
    """What the task manager stores in :data:`TASKS_BUCKET` under a task id."""

    task_id: str
    """Task (and workflow) id."""
    state: TaskState
    """How far handling got."""
    accepted_at: float
    """Unix time the task manager first saw the task; deadlines count from here."""
    sequence: int
    """Stream sequence of the submission, telling a redelivery (same sequence)
    from a second submission with the same id (another sequence)."""
    template: str | None = None
    """Template (or inline pipeline) name."""
    reason: str = ""
    """Why it was rejected or cancelled."""
