"""The catalog of every message type and the subject it travels on.

``troupe schema`` prints it with each message's JSON Schema, so clients in any
language can take part.
"""

from __future__ import annotations

import msgspec

from protocols import agents, breakers, errors, pipelines, status, tasks
from protocols.base import Message

__all__ = ["CATALOG", "Route"]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where a message type travels and how."""

    message: type[Message]
    """The message class."""
    subject: str
    """Subject (or subject pattern) it is published on."""
    pattern: str
    """``stream`` (captured by a JetStream stream), ``request`` (request/reply),
    ``reply`` (answer to a request), ``event`` (core fan-out) or ``kv`` (stored value)."""
    stream: str | None = None
    """Stream capturing the subject, if any."""


CATALOG: tuple[Route, ...] = (
    Route(
        message=tasks.TaskSubmitted,
        subject=tasks.SUBMIT_SUBJECT,
        pattern="stream",
        stream=tasks.TASKS_STREAM,
    ),
    Route(message=tasks.CancelTask, subject=tasks.CANCEL_SUBJECT, pattern="request"),
    Route(message=tasks.CancelAccepted, subject=tasks.CANCEL_SUBJECT, pattern="reply"),
    Route(message=tasks.TaskRecord, subject=tasks.TASKS_BUCKET, pattern="kv"),
    Route(
        message=pipelines.PipelineRun,
        subject=pipelines.RUN_SUBJECT,
        pattern="stream",
        stream=pipelines.PIPELINES_STREAM,
    ),
    Route(message=pipelines.CancelRun, subject=pipelines.CANCEL_SUBJECT, pattern="event"),
    Route(message=pipelines.GetResult, subject=pipelines.RESULT_SUBJECT, pattern="request"),
    Route(message=pipelines.PipelineResult, subject=pipelines.RESULTS_BUCKET, pattern="kv"),
    Route(
        message=status.WorkflowTransition,
        subject=status.EVENTS_SUBJECTS,
        pattern="stream",
        stream=status.STATUS_STREAM,
    ),
    Route(
        message=status.StepTransition,
        subject=status.EVENTS_SUBJECTS,
        pattern="stream",
        stream=status.STATUS_STREAM,
    ),
    Route(
        message=status.StepProgress,
        subject=status.EVENTS_SUBJECTS,
        pattern="stream",
        stream=status.STATUS_STREAM,
    ),
    Route(message=status.WorkflowView, subject=status.WORKFLOWS_BUCKET, pattern="kv"),
    Route(message=status.TemplateDurations, subject=status.DURATIONS_BUCKET, pattern="kv"),
    Route(message=status.GetWorkflow, subject=status.GET_SUBJECT, pattern="request"),
    Route(message=status.ListWorkflows, subject=status.LIST_SUBJECT, pattern="request"),
    Route(message=status.WorkflowList, subject=status.LIST_SUBJECT, pattern="reply"),
    Route(
        message=breakers.OutcomeReport,
        subject=breakers.REPORT_SUBJECT,
        pattern="stream",
        stream=breakers.REPORTS_STREAM,
    ),
    Route(message=breakers.BreakerStatus, subject=breakers.BREAKERS_BUCKET, pattern="kv"),
    Route(
        message=breakers.BreakerTransitionEvent, subject=breakers.EVENTS_SUBJECTS, pattern="event"
    ),
    Route(message=breakers.BreakerControl, subject=breakers.CONTROL_SUBJECT, pattern="request"),
    Route(message=breakers.ListBreakers, subject=breakers.LIST_SUBJECT, pattern="request"),
    Route(message=breakers.BreakerList, subject=breakers.LIST_SUBJECT, pattern="reply"),
    Route(message=agents.AgentInfo, subject=agents.AGENTS_BUCKET, pattern="kv"),
    Route(message=agents.FindAgents, subject=agents.FIND_SUBJECT, pattern="request"),
    Route(message=agents.ListAgents, subject=agents.LIST_SUBJECT, pattern="request"),
    Route(message=agents.AgentList, subject=agents.FIND_SUBJECT, pattern="reply"),
    Route(message=agents.AgentJoined, subject=agents.JOINED_SUBJECT, pattern="event"),
    Route(message=agents.AgentLeft, subject=agents.LEFT_SUBJECT, pattern="event"),
    Route(
        message=agents.AgentEnvelope,
        subject=agents.INBOX_SUBJECTS,
        pattern="stream",
        stream=agents.INBOX_STREAM,
    ),
    Route(
        message=agents.TaskResult,
        subject=agents.RESULTS_SUBJECTS,
        pattern="stream",
        stream=agents.RESULTS_STREAM,
    ),
    Route(message=agents.AgentAssignment, subject=agents.ASSIGNMENTS_BUCKET, pattern="kv"),
    Route(message=pipelines.ClearCache, subject=pipelines.CACHE_CLEAR_SUBJECT, pattern="request"),
    Route(message=pipelines.CacheCleared, subject=pipelines.CACHE_CLEARED_SUBJECT, pattern="event"),
    Route(message=pipelines.CachedStep, subject=pipelines.CACHE_BUCKET, pattern="kv"),
    Route(message=pipelines.RunCheckpoint, subject=pipelines.CHECKPOINTS_BUCKET, pattern="kv"),
    Route(message=breakers.BreakerSnapshot, subject=breakers.SNAPSHOTS_BUCKET, pattern="kv"),
    Route(message=errors.ErrorReply, subject="(any request subject)", pattern="reply"),
)
"""Every message type troupe puts on the wire."""
