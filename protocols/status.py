"""Workflow status: transition events, the stored view, and queries.

Producers (task manager, pipeline runner, breaker supervisor) publish
:data:`StatusEvent` messages on :func:`event_subject`; the stream
:data:`STATUS_STREAM` keeps them as each workflow's history. The status
tracker folds them into a :class:`WorkflowView` stored in
:data:`WORKFLOWS_BUCKET` and answers :class:`GetWorkflow` and
:class:`ListWorkflows`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal, get_args

import msgspec

from protocols.base import Message
from protocols.errors import ErrorClass
from protocols.pipelines import StepAttemptReason

__all__ = [
    "DURATIONS_BUCKET",
    "EVENTS_SUBJECTS",
    "GET_SUBJECT",
    "LIST_SUBJECT",
    "STATUS_STREAM",
    "TERMINAL_STATES",
    "UPDATES_SUBJECTS",
    "WORKFLOWS_BUCKET",
    "WORKFLOW_STATES",
    "GetWorkflow",
    "ListWorkflows",
    "Percent",
    "StatusEvent",
    "StepProgress",
    "StepState",
    "StepTransition",
    "StepView",
    "TemplateDurations",
    "WorkflowList",
    "WorkflowState",
    "WorkflowTransition",
    "WorkflowView",
    "deadline_msg_id",
    "durations_key",
    "event_subject",
    "transition_msg_id",
    "update_subject",
]

WorkflowState = Literal[
    "submitted",
    "queued",
    "preparing",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "rejected",
]
"""Lifecycle state of a workflow."""

WORKFLOW_STATES: tuple[WorkflowState, ...] = get_args(WorkflowState)
"""Every :data:`WorkflowState`, in lifecycle order."""

TERMINAL_STATES: frozenset[WorkflowState] = frozenset(
    {"succeeded", "failed", "cancelled", "timed_out", "rejected"}
)
"""States a workflow never leaves."""

StepState = Literal[
    "pending", "running", "retrying", "succeeded", "failed", "skipped", "cancelled", "timed_out"
]
"""Lifecycle state of one step."""

STATUS_STREAM = "TROUPE_STATUS"
"""Stream of every status event: the workflows' transition history."""

EVENTS_SUBJECTS = "troupe.status.events.>"
"""Subjects captured by :data:`STATUS_STREAM`."""

UPDATES_SUBJECTS = "troupe.status.updates.>"
"""Core-NATS fan-out of :class:`WorkflowView` after each applied change."""

GET_SUBJECT = "troupe.status.get"
"""Request subject of :class:`GetWorkflow`."""

LIST_SUBJECT = "troupe.status.list"
"""Request subject of :class:`ListWorkflows`."""

WORKFLOWS_BUCKET = "troupe-workflows"
"""KV bucket: workflow id -> :class:`WorkflowView`."""

DURATIONS_BUCKET = "troupe-history"
"""KV bucket: template -> :class:`TemplateDurations` of its earlier runs (for ETAs)."""


def event_subject(workflow_id: str) -> str:
    """Return the subject status events of ``workflow_id`` are published on."""
    return f"troupe.status.events.{workflow_id}"


def update_subject(workflow_id: str) -> str:
    """Return the subject view updates of ``workflow_id`` are announced on."""
    return f"troupe.status.updates.{workflow_id}"


def transition_msg_id(workflow_id: str, state: str) -> str:
    """Return the dedup id (``Nats-Msg-Id``) of a producer's transition of ``workflow_id``.

    One id per workflow and state: a producer retrying the same transition
    publishes it once.
    """
    return f"{workflow_id}.{state}"


def deadline_msg_id(workflow_id: str) -> str:
    """Return the dedup id of the ``timed_out`` event a deadline sweep publishes.

    One id per workflow: tracker replicas sweeping at once publish it once.
    """
    return f"{workflow_id}.deadline"


_DURATIONS_KEY_OK = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def durations_key(template: str) -> str:
    """Return the :data:`DURATIONS_BUCKET` key under which ``template``'s durations are stored.

    Template names that are not valid KV keys are hashed.
    """
    if _DURATIONS_KEY_OK.match(template):
        return template
    return "h." + hashlib.sha256(template.encode()).hexdigest()[:40]


Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class WorkflowTransition(Message, frozen=True, tag="troupe.status.v1.transition"):
    """A workflow moved to ``state``."""

    workflow_id: str
    """Workflow id."""
    state: WorkflowState
    """New state."""
    at: float
    """Unix time of the transition at its source."""
    source: str
    """Actor that observed it (e.g. ``task_manager``)."""
    attempt: int = 1
    """Run attempt the transition belongs to."""
    round: int = 0
    """Delivery of the run that announced it (0: not announced by a run). Each retry of
    a run is a new delivery, so each retry's ``running`` and ``retrying`` are new."""
    reason: str = ""
    """Why (rejections, failures, cancellations)."""
    error_class: ErrorClass | None = None
    """Classification of a failure."""
    template: str | None = None
    """Template name, set by the task manager."""
    steps: list[str] = msgspec.field(default_factory=list)
    """Every step of the planned pipeline, set when known."""
    trace_id: str | None = None
    """W3C trace id of the workflow."""
    next_attempt_at: float | None = None
    """When ``retrying``: Unix time of the next attempt."""
    deadline: float | None = None
    """Unix time after which the workflow is ``timed_out``."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """The task's labels, set by the task manager."""


class StepTransition(Message, frozen=True, tag="troupe.status.v1.step"):
    """A step moved to ``state``."""

    workflow_id: str
    """Workflow id."""
    step: str
    """Step name."""
    state: StepState
    """New step state."""
    at: float
    """Unix time of the transition."""
    attempt: int = 1
    """Run attempt."""
    step_attempt: int = 1
    """Attempt of this step within the run attempt, from 1."""
    attempt_reason: StepAttemptReason = "first"
    """Why that step attempt runs (``runner_lost``: again after its runner died mid-step)."""
    exit_code: int | None = None
    """Exit code when finished."""
    duration_s: float | None = None
    """Wall time when finished."""
    cache_hit: bool = False
    """Whether the step was served from the step cache."""
    reason: str = ""
    """Why it failed or was skipped."""
    error_class: ErrorClass | None = None
    """Classification of a failure."""


class StepProgress(Message, frozen=True, tag="troupe.status.v1.progress"):
    """A running step reported progress (``::progress N``) or a message."""

    workflow_id: str
    """Workflow id."""
    step: str
    """Step name."""
    at: float
    """Unix time of the report."""
    percent: Percent | None = None
    """Progress of the step, 0-100."""
    message: dict[str, Any] | None = None
    """Structured message (``::message <json>``)."""
    attempt: int = 1
    """Run attempt."""


StatusEvent = WorkflowTransition | StepTransition | StepProgress
"""Any event on :data:`EVENTS_SUBJECTS`."""


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    """Current state of one step as the tracker knows it."""

    name: str
    """Step name."""
    state: StepState = "pending"
    """Current state."""
    attempt: int = 1
    """Attempt the state belongs to."""
    started_at: float | None = None
    """Unix time it started running."""
    finished_at: float | None = None
    """Unix time it finished."""
    exit_code: int | None = None
    """Exit code when finished."""
    percent: float | None = None
    """Last reported progress, 0-100."""
    cache_hit: bool = False
    """Served from the step cache."""
    reason: str = ""
    """Why it failed or was skipped."""
    duration_s: float | None = None
    """Wall time reported when it finished."""
    error_class: ErrorClass | None = None
    """Classification of a failure."""
    state_at: float | None = None
    """Source time of the transition that set :attr:`state`."""
    progress_at: float | None = None
    """Source time of the report that set :attr:`percent`."""
    progress_attempt: int = 1
    """Attempt :attr:`percent` was reported for."""
    step_attempt: int = 1
    """Step attempt :attr:`state` belongs to."""
    attempt_reason: StepAttemptReason = "first"
    """Why that step attempt runs."""


class WorkflowView(Message, frozen=True, tag="troupe.status.v1.workflow"):
    """The tracker's current knowledge of a workflow."""

    workflow_id: str
    """Workflow id."""
    state: WorkflowState
    """Current state."""
    created_at: float
    """Unix time of the first event."""
    updated_at: float
    """Unix time of the last applied event."""
    template: str | None = None
    """Template name."""
    attempt: int = 1
    """Current run attempt."""
    round: int = 0
    """Delivery of the run the current state was announced by (see ``WorkflowTransition``)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels given with the task (``troupe submit --label``)."""
    steps: list[StepView] = msgspec.field(default_factory=list)
    """Per-step state, in planned order."""
    progress: float = 0.0
    """Fraction of the workflow done, 0-1."""
    current_step: str | None = None
    """A step running now, if any."""
    eta_s: float | None = None
    """Estimated seconds until the workflow finishes."""
    reason: str = ""
    """Why it was rejected, failed, cancelled or timed out."""
    error_class: ErrorClass | None = None
    """Classification of the failure."""
    trace_id: str | None = None
    """W3C trace id."""
    finished_at: float | None = None
    """Unix time it reached a terminal state."""
    next_attempt_at: float | None = None
    """When ``retrying``: time of the next attempt."""
    deadline: float | None = None
    """Unix time after which the workflow is ``timed_out``."""
    messages: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """Last structured messages reported by steps, oldest first; each is
    ``{"step": name, "at": unix_time, "message": {...}}``."""
    events: int = 0
    """Number of events that changed the view (duplicates and stale events not counted)."""
    plan: list[str] = msgspec.field(default_factory=list)
    """Step names of the planned pipeline, in order, once known."""


class TemplateDurations(Message, frozen=True, tag="troupe.status.v1.durations"):
    """Durations of the latest successful runs of one template, oldest first."""

    template: str
    """Template name."""
    samples: list[float] = msgspec.field(default_factory=list)
    """Seconds from submission to success of each recorded run."""


class GetWorkflow(Message, frozen=True, tag="troupe.status.v1.get"):
    """Request one workflow's :class:`WorkflowView`."""

    workflow_id: str
    """Workflow id."""


class ListWorkflows(Message, frozen=True, tag="troupe.status.v1.list"):
    """Request workflows matching filters, newest first."""

    states: list[WorkflowState] = msgspec.field(default_factory=list)
    """Only these states (all if empty)."""
    template: str | None = None
    """Only this template."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Only workflows carrying every one of these labels."""
    since: float | None = None
    """Only workflows created at or after this Unix time."""
    until: float | None = None
    """Only workflows created before this Unix time."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    """Page size."""
    cursor: str | None = None
    """Opaque cursor from a previous :class:`WorkflowList`."""


class WorkflowList(Message, frozen=True, tag="troupe.status.v1.workflow_list"):
    """A page of workflows."""

    items: list[WorkflowView]
    """Matching workflows."""
    next_cursor: str | None = None
    """Cursor of the next page, if any."""
