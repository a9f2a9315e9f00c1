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

from protocols.base import Message
from protocols.ids import ID_PATTERN, Identifier
from protocols.pipelines import ParamSpec, ParamValue, PipelineSpec

__all__ = [
    "CANCEL_SUBJECT",
    "GET_SUBJECT",
    "REJECTION_CODES",
    "SUBMIT_SUBJECT",
    "TASKS_BUCKET",
    "TASKS_STREAM",
    "TASK_ID_PATTERN",
    "TEMPLATES_SUBJECTS",
    "TEMPLATE_GET_SUBJECT",
    "TEMPLATE_LIST_SUBJECT",
    "VALIDATE_SUBJECT",
    "CancelAccepted",
    "CancelTask",
    "GetTask",
    "GetTemplate",
    "ListTemplates",
    "RejectionCode",
    "TaskId",
    "TaskPlan",
    "TaskRecord",
    "TaskState",
    "TaskSubmitted",
    "TemplateInfo",
    "TemplateList",
    "ValidateTask",
    "submit_msg_id",
]

SUBMIT_SUBJECT = "troupe.tasks.submit"
"""Subject clients publish :class:`TaskSubmitted` on."""

TASKS_STREAM = "TROUPE_TASKS"
"""Work-queue stream capturing :data:`SUBMIT_SUBJECT`."""

TASKS_BUCKET = "troupe-tasks"
"""KV bucket of accepted task ids (idempotency beyond the stream's window)."""

CANCEL_SUBJECT = "troupe.tasks.cancel"
"""Request subject answering :class:`CancelTask` with :class:`CancelAccepted`."""

GET_SUBJECT = "troupe.tasks.get"
"""Request subject answering :class:`GetTask` with the :class:`TaskRecord`."""

TEMPLATE_LIST_SUBJECT = "troupe.tasks.templates.list"
"""Request subject answering :class:`ListTemplates` with :class:`TemplateList`."""

TEMPLATE_GET_SUBJECT = "troupe.tasks.templates.get"
"""Request subject answering :class:`GetTemplate` with :class:`TemplateInfo`."""

TEMPLATES_SUBJECTS = "troupe.tasks.templates.*"
"""Both template request subjects."""

VALIDATE_SUBJECT = "troupe.tasks.validate"
"""Request subject answering :class:`ValidateTask` with :class:`TaskPlan`; nothing runs."""

TASK_ID_PATTERN = ID_PATTERN
"""Task ids double as KV keys and subject tokens."""

TaskId = Identifier


def submit_msg_id(task_id: str) -> str:
    """Return the dedup id (``Nats-Msg-Id``) of a submission: the task id itself.

    A client re-sending the same task inside the stream's window stores it once.
    """
    return task_id


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
    "unknown_retry_policy",
    "no_capable_agent",
]
"""Why a task was rejected; the first word of the workflow's ``reason``."""

REJECTION_CODES: tuple[RejectionCode, ...] = get_args(RejectionCode)
"""Every :data:`RejectionCode`."""

TaskState = Literal["accepted", "queued", "dispatched", "rejected", "cancelled"]
"""How far the task manager got with a task: ``accepted`` (claimed, not planned: a
task for an agent before its hand-off, or one being rejected), ``queued`` (planned:
its run is published once its ``submitted`` and ``queued`` transitions are stored),
``dispatched`` (handed to an agent), ``rejected`` or ``cancelled``."""


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
    submission: TaskSubmitted | None = None
    """The submission as received, so it can be run again (absent on records
    written before submissions were kept)."""


class GetTask(Message, frozen=True, tag="troupe.tasks.v1.get"):
    """Ask the task manager for a task's record (its state and its submission)."""

    task_id: TaskId
    """Task (and workflow) id."""


class ListTemplates(Message, frozen=True, tag="troupe.tasks.v1.list_templates"):
    """Ask the task manager for every template it knows."""


class GetTemplate(Message, frozen=True, tag="troupe.tasks.v1.get_template"):
    """Ask the task manager for one template."""

    name: str
    """Template name."""


class TemplateInfo(Message, frozen=True, tag="troupe.tasks.v1.template"):
    """A template as the task manager knows it: what a task may name and pass."""

    name: str
    """Template name, what a task's ``template`` refers to."""
    description: str = ""
    """What it does."""
    params: list[ParamSpec] = msgspec.field(default_factory=list)
    """Its parameters, with types and defaults."""
    steps: list[str] = msgspec.field(default_factory=list)
    """Its step names, in definition order."""


class TemplateList(Message, frozen=True, tag="troupe.tasks.v1.template_list"):
    """Answer to :class:`ListTemplates`: every template, sorted by name."""

    items: list[TemplateInfo] = msgspec.field(default_factory=list)
    """The templates."""


class ValidateTask(Message, frozen=True, tag="troupe.tasks.v1.validate"):
    """Ask the task manager to render and plan a task as it would, without running it."""

    task: TaskSubmitted
    """The task (its id is not used)."""


class TaskPlan(Message, frozen=True, tag="troupe.tasks.v1.plan"):
    """Answer to :class:`ValidateTask`: the plan, or why the task would be rejected."""

    valid: bool
    """Whether the task would be accepted."""
    pipeline: PipelineSpec | None = None
    """The rendered pipeline, when valid."""
    stages: list[list[str]] = msgspec.field(default_factory=list)
    """Step names by stage; the steps of one stage may run at once."""
    code: RejectionCode | None = None
    """Why it would be rejected."""
    problem: str = ""
    """What exactly is wrong, in words."""
