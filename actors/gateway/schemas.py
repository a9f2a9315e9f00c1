"""Bodies of the HTTP API (and MCP tools): msgspec Structs, the source of the OpenAPI document.

Wire messages of the actors (:class:`~protocols.status.WorkflowView`,
:class:`~protocols.pipelines.PipelineResult`, ...) are answered as they are;
the types here are what only the gateway speaks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from protocols.gateway import Scope
from protocols.pipelines import ParamSpec, ParamValue, PipelineSpec
from protocols.schedules import SCHEDULE_NAME_PATTERN, Schedule
from protocols.tasks import TaskId

__all__ = [
    "ApiError",
    "BreakerAction",
    "CancelRequest",
    "CreateTokenRequest",
    "Execution",
    "ExecutionList",
    "History",
    "HistoryEntry",
    "RotateTokenRequest",
    "ScheduleList",
    "ScheduleRequest",
    "ScheduleRun",
    "StepLogs",
    "SubmitRequest",
    "Submitted",
    "TemplateInfo",
    "TemplateList",
    "WorkflowEvent",
]


class ApiError(msgspec.Struct, frozen=True, kw_only=True):
    """Every error answer: troupe's error code, a message and whether to retry."""

    code: str
    """``bad_request``, ``not_found``, ``conflict``, ``rejected``, ``unavailable``,
    ``timeout``, ``forbidden``, ``unauthorized``, ``too_large`` or ``internal``."""
    message: str
    """What went wrong, in words."""
    retryable: bool = False
    """Whether the same request may succeed later."""
    details: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra machine-readable context."""


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Submit a workflow: a template by name, or an inline pipeline definition."""

    template: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    """Template name (see ``GET /api/v1/templates``); exclusive with ``pipeline``."""
    pipeline: PipelineSpec | None = None
    """Inline definition; exclusive with ``template``."""
    params: dict[str, ParamValue] = msgspec.field(default_factory=dict)
    """Template parameters."""
    idempotency_key: TaskId | None = None
    """Also the workflow id; submitting the same key again creates nothing new
    (the ``Idempotency-Key`` header works too)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels recorded with the workflow."""
    requires: str | None = None
    """Route the task to a live agent with this capability."""


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to a submission."""

    workflow_id: str
    """The workflow id (the idempotency key)."""
    duplicate: bool
    """Whether this key had been submitted before (nothing new was created)."""
    trace_id: str | None = None
    """W3C trace id of the workflow."""
    rerun_of: str | None = None
    """For a re-run: the workflow it repeats."""


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Cancel a workflow."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = "cancelled by user"
    """Recorded in the history."""


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One status event of a workflow, with its position in the status stream."""

    seq: int
    """Status stream sequence: the SSE event id, usable as ``Last-Event-ID``."""
    event: dict[str, Any]
    """The event (a ``WorkflowTransition``, ``StepTransition`` or ``StepProgress``)."""


class History(msgspec.Struct, frozen=True, kw_only=True):
    """Every status event of a workflow, oldest first."""

    workflow_id: str
    """Workflow id."""
    items: list[HistoryEntry]
    """The events."""


WorkflowEvent = HistoryEntry
"""What SSE and WebSocket streams carry (``type`` is the event's ``type``)."""


class StepLogs(msgspec.Struct, frozen=True, kw_only=True):
    """A step's output: the tails kept in the result, or while it runs its last lines so far."""

    workflow_id: str
    """Workflow id."""
    step: str
    """Step name."""
    state: str
    """How the step ended, or its state now while the workflow runs."""
    exit_code: int | None = None
    """Its exit code."""
    stdout: str = ""
    """Last lines of standard output."""
    stderr: str = ""
    """Last lines of standard error."""
    reason: str = ""
    """Why it failed."""
    running: bool = False
    """The step has not ended: this is its output so far (call again for more)."""
    dropped: int = 0
    """While running: lines printed but not kept here (rate bound, tail size)."""


class TemplateInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A pipeline template and its parameters."""

    name: str
    """Template name."""
    description: str = ""
    """What it does."""
    params: list[ParamSpec] = msgspec.field(default_factory=list)
    """Parameters, with types and defaults."""
    steps: list[str] = msgspec.field(default_factory=list)
    """Step names."""


class TemplateList(msgspec.Struct, frozen=True, kw_only=True):
    """The templates."""

    items: list[TemplateInfo]
    """Templates, by name."""


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    """A step running now, as its runner's lease records it."""

    workflow_id: str
    """Workflow id."""
    step: str
    """Step name."""
    runner: str
    """Runner process executing it."""
    attempt: int
    """Step attempt."""
    started_at: float
    """Unix time its runner took it."""


class ExecutionList(msgspec.Struct, frozen=True, kw_only=True):
    """Running steps."""

    items: list[Execution]
    """Oldest first."""


class BreakerAction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Manual control of a breaker."""

    action: Literal["force_open", "disable", "reset"]
    """Hold it open, let everything through unrecorded, or back to closed."""


class CreateTokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Issue a token."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w.@ -]+$")]
    """Who or what it is for."""
    role: Literal["viewer", "operator", "admin", "custom"] = "viewer"
    """A built-in role, or ``custom`` with ``scopes``."""
    scopes: list[Scope] = msgspec.field(default_factory=list)
    """For ``custom``: the scopes granted."""
    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)] | None = None
    """Seconds until it expires (``None``: never)."""


class RotateTokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replace a token."""

    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)] | None = None
    """Lifetime of the new token (``None``: as long as the old one's)."""


class ScheduleRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Add (or replace) a schedule: a template fired by exactly one of cron, every or at."""

    name: Annotated[str, msgspec.Meta(pattern=SCHEDULE_NAME_PATTERN)]
    """Schedule name."""
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """Template each firing submits (see ``GET /api/v1/templates``)."""
    params: dict[str, ParamValue] = msgspec.field(default_factory=dict)
    """Template parameters of each firing."""
    cron: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """Six-field cron expression, seconds first (or ``@hourly`` and the like)."""
    every: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    """Interval such as ``10m``, ``2s`` or ``1h30m``."""
    at: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    """ISO 8601 time of a single firing (UTC when it names no offset)."""
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """IANA time zone of ``cron`` (empty: UTC)."""
    paused: bool = False
    """Store it without firing (resume it later)."""


class ScheduleList(msgspec.Struct, frozen=True, kw_only=True):
    """Every schedule, sorted by name."""

    items: list[Schedule]
    """The schedules, paused ones included."""


class ScheduleRun(msgspec.Struct, frozen=True, kw_only=True):
    """A firing submitted at once by run-now."""

    schedule: str
    """Schedule name."""
    workflow_id: str
    """Id of the workflow it submitted."""
