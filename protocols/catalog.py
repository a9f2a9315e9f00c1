"""The catalog of every message type, the subject it travels on, and how it is stored.

``troupe schema`` prints it with each message's JSON Schema, so clients in any
language can take part: a request route names its reply type, an event route
the encoding troupe publishes it in, and a stored-value route (``kv``) its key
format. Names of subjects, streams and buckets come from the concern modules.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from protocols import agents, breakers, errors, flags, pipelines, schedules, status, tasks
from protocols.base import Message
from protocols.headers import EVENT_ENCODING, JSON, MSGPACK

__all__ = ["CATALOG", "Pattern", "Route"]

Pattern = Literal["stream", "request", "reply", "event", "kv"]
"""How a message travels: captured by a JetStream ``stream``, sent as a
``request`` or its ``reply``, fanned out as a core-NATS ``event``, or stored
as a value in a KV bucket (``kv``)."""


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where a message type travels and how."""

    message: type[Message]
    """The message class."""
    subject: str
    """Subject (or subject pattern) it is published on; for ``kv``, the bucket."""
    pattern: Pattern
    """How it travels (see :data:`Pattern`)."""
    stream: str | None = None
    """Stream capturing the subject, if any."""
    reply: type[Message] | None = None
    """For a ``request``: the type of a successful answer (an error is an
    :class:`~protocols.errors.ErrorReply` with the micro error headers)."""
    encoding: str = MSGPACK
    """Content type troupe publishes or stores it in (always named in the
    ``Content-Type`` header). Readers accept JSON and MessagePack alike, and
    requests are answered in the encoding they were sent in."""
    key: str | None = None
    """For ``kv``: the key format."""


_BREAKER_KEY = "base64url of the breaker key (e.g. 'image:python:3.12'), without padding"


def _stream(message: type[Message], subject: str, *, stream: str) -> Route:
    """A message captured by ``stream``."""
    return Route(message=message, subject=subject, pattern="stream", stream=stream)


def _request(message: type[Message], subject: str, *, reply: type[Message]) -> tuple[Route, Route]:
    """A request on ``subject`` and its successful answer."""
    return (
        Route(message=message, subject=subject, pattern="request", reply=reply),
        Route(message=reply, subject=subject, pattern="reply"),
    )


def _event(message: type[Message], subject: str, *, encoding: str = MSGPACK) -> Route:
    """A message fanned out on core NATS, published in ``encoding``."""
    return Route(message=message, subject=subject, pattern="event", encoding=encoding)


def _kv(message: type[Message], bucket: str, *, key: str) -> Route:
    """A value stored in the KV bucket ``bucket`` under ``key``."""
    return Route(message=message, subject=bucket, pattern="kv", key=key)


CATALOG: tuple[Route, ...] = (
    _stream(tasks.TaskSubmitted, tasks.SUBMIT_SUBJECT, stream=tasks.TASKS_STREAM),
    *_request(tasks.CancelTask, tasks.CANCEL_SUBJECT, reply=tasks.CancelAccepted),
    _kv(tasks.TaskRecord, tasks.TASKS_BUCKET, key="<task_id>"),
    *_request(tasks.GetTask, tasks.GET_SUBJECT, reply=tasks.TaskRecord),
    *_request(tasks.ListTemplates, tasks.TEMPLATE_LIST_SUBJECT, reply=tasks.TemplateList),
    *_request(tasks.GetTemplate, tasks.TEMPLATE_GET_SUBJECT, reply=tasks.TemplateInfo),
    *_request(tasks.ValidateTask, tasks.VALIDATE_SUBJECT, reply=tasks.TaskPlan),
    _stream(pipelines.PipelineRun, pipelines.RUN_SUBJECT, stream=pipelines.PIPELINES_STREAM),
    _event(pipelines.CancelRun, pipelines.CANCEL_SUBJECT),
    _event(pipelines.StopExecution, pipelines.EXECUTION_STOP_SUBJECT),
    _event(pipelines.StepOutput, pipelines.LOGS_SUBJECTS, encoding=JSON),
    *_request(pipelines.GetResult, pipelines.RESULT_SUBJECT, reply=pipelines.PipelineResult),
    _kv(pipelines.PipelineResult, pipelines.RESULTS_BUCKET, key="<workflow_id>"),
    _stream(status.WorkflowTransition, status.EVENTS_SUBJECTS, stream=status.STATUS_STREAM),
    _stream(status.StepTransition, status.EVENTS_SUBJECTS, stream=status.STATUS_STREAM),
    _stream(status.StepProgress, status.EVENTS_SUBJECTS, stream=status.STATUS_STREAM),
    _kv(status.WorkflowView, status.WORKFLOWS_BUCKET, key="<workflow_id>"),
    _event(status.WorkflowView, status.UPDATES_SUBJECTS, encoding=EVENT_ENCODING),
    _kv(
        status.TemplateDurations,
        status.DURATIONS_BUCKET,
        key="<template>, or 'h.' + the first 40 hex digits of its sha256 when the name "
        "is not a valid key",
    ),
    *_request(status.GetWorkflow, status.GET_SUBJECT, reply=status.WorkflowView),
    *_request(status.ListWorkflows, status.LIST_SUBJECT, reply=status.WorkflowList),
    _stream(breakers.OutcomeReport, breakers.REPORT_SUBJECT, stream=breakers.REPORTS_STREAM),
    _stream(breakers.OutcomeReports, breakers.REPORT_SUBJECT, stream=breakers.REPORTS_STREAM),
    _kv(
        breakers.BreakerStatus,
        breakers.BREAKERS_BUCKET,
        key=f"{_BREAKER_KEY}; keys 'probe.<that>.<epoch>.<slot>' hold a runner's "
        "half-open probe claim (its id as plain text), not a BreakerStatus",
    ),
    _event(breakers.BreakerTransitionEvent, breakers.EVENTS_SUBJECTS, encoding=EVENT_ENCODING),
    *_request(breakers.BreakerControl, breakers.CONTROL_SUBJECT, reply=breakers.BreakerList),
    *_request(breakers.ListBreakers, breakers.LIST_SUBJECT, reply=breakers.BreakerList),
    _kv(
        agents.AgentInfo,
        agents.AGENTS_BUCKET,
        key="<agent_id>; write each heartbeat with the header 'Nats-TTL: <seconds>' "
        "(the key's lifetime, a few heartbeat intervals)",
    ),
    *_request(agents.FindAgents, agents.FIND_SUBJECT, reply=agents.AgentList),
    *_request(agents.ListAgents, agents.LIST_SUBJECT, reply=agents.AgentList),
    _event(agents.AgentJoined, agents.JOINED_SUBJECT, encoding=EVENT_ENCODING),
    _event(agents.AgentLeft, agents.LEFT_SUBJECT, encoding=EVENT_ENCODING),
    _stream(agents.AgentEnvelope, agents.INBOX_SUBJECTS, stream=agents.INBOX_STREAM),
    _stream(agents.TaskResult, agents.RESULTS_SUBJECTS, stream=agents.RESULTS_STREAM),
    _kv(agents.AgentAssignment, agents.ASSIGNMENTS_BUCKET, key="<workflow_id>"),
    *_request(pipelines.ClearCache, pipelines.CACHE_CLEAR_SUBJECT, reply=pipelines.CacheCleared),
    _event(pipelines.CacheCleared, pipelines.CACHE_CLEARED_SUBJECT),
    _kv(
        pipelines.CachedStep,
        pipelines.CACHE_BUCKET,
        key="<cache key: hex sha256 of backend, image, command, env, input digests and outputs>",
    ),
    _kv(pipelines.RunCheckpoint, pipelines.CHECKPOINTS_BUCKET, key="<workflow_id>"),
    _kv(
        pipelines.StepLease,
        pipelines.LEASES_BUCKET,
        key="<workflow_id> (run lease) or <workflow_id>.<step> (step lease); per-key TTL",
    ),
    _kv(breakers.BreakerSnapshot, breakers.SNAPSHOTS_BUCKET, key=_BREAKER_KEY),
    _kv(flags.Flag, flags.FLAGS_BUCKET, key="<flag name>"),
    _kv(schedules.Schedule, schedules.SCHEDULES_BUCKET, key="<schedule name>"),
    Route(message=errors.ErrorReply, subject="(any request subject)", pattern="reply"),
)
"""Every message type troupe puts on the wire."""
