"""Agents: heartbeats, discovery queries, presence events and inboxes.

An agent puts its :class:`AgentInfo` into :data:`AGENTS_BUCKET` under its id
every heartbeat interval; entries expire, so a missing key is a departed
agent. The agent registry watches the bucket and answers :class:`FindAgents`
and :class:`ListAgents`. Messages to an agent go to :func:`inbox_subject`,
captured by :data:`INBOX_STREAM` so they wait for an agent that is briefly
offline.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from protocols.base import Message
from protocols.errors import ErrorClass
from protocols.ids import ID_PATTERN as _ID_PATTERN

__all__ = [
    "AGENTS_BUCKET",
    "AGENT_ID_PATTERN",
    "ASSIGNMENTS_BUCKET",
    "FIND_SUBJECT",
    "INBOX_STREAM",
    "INBOX_SUBJECTS",
    "JOINED_SUBJECT",
    "LEFT_SUBJECT",
    "LIST_SUBJECT",
    "RESULTS_STREAM",
    "RESULTS_SUBJECTS",
    "VERSION_PATTERN",
    "AgentAssignment",
    "AgentEnvelope",
    "AgentId",
    "AgentInfo",
    "AgentJoined",
    "AgentLeft",
    "AgentList",
    "AgentPresence",
    "AgentView",
    "AssignmentState",
    "Capability",
    "FindAgents",
    "ListAgents",
    "TaskResult",
    "Version",
    "heartbeat_key",
    "heartbeat_subject",
    "inbox_durable",
    "inbox_subject",
    "result_subject",
]

AGENTS_BUCKET = "troupe-agents"
"""KV bucket of heartbeats: agent id -> :class:`AgentInfo`."""

FIND_SUBJECT = "troupe.agents.find"
"""Request subject of :class:`FindAgents`."""

LIST_SUBJECT = "troupe.agents.list"
"""Request subject of :class:`ListAgents`."""

JOINED_SUBJECT = "troupe.agents.events.joined"
"""Subject of :class:`AgentJoined`."""

LEFT_SUBJECT = "troupe.agents.events.left"
"""Subject of :class:`AgentLeft`."""

INBOX_STREAM = "TROUPE_AGENT_INBOX"
"""Stream capturing every agent inbox."""

INBOX_SUBJECTS = "troupe.agents.inbox.>"
"""Subjects captured by :data:`INBOX_STREAM`."""

RESULTS_STREAM = "TROUPE_AGENT_RESULTS"
"""Work-queue stream of :class:`TaskResult` messages, consumed by the task manager."""

RESULTS_SUBJECTS = "troupe.agents.results.>"
"""Subjects captured by :data:`RESULTS_STREAM`."""

ASSIGNMENTS_BUCKET = "troupe-agent-tasks"
"""KV bucket: workflow id -> :class:`AgentAssignment` while an agent task is open."""

AGENT_ID_PATTERN = _ID_PATTERN
"""Agent ids are KV keys and subject tokens: the shared id pattern."""

VERSION_PATTERN = r"^\d+(\.\d+){0,2}$"
"""Capability versions: dotted numeric, one to three parts."""

AgentId = Annotated[str, msgspec.Meta(pattern=AGENT_ID_PATTERN)]
Version = Annotated[str, msgspec.Meta(pattern=VERSION_PATTERN)]
AgentPresence = Literal["live", "suspect"]


def inbox_subject(agent_id: str) -> str:
    """Return the inbox subject of ``agent_id``."""
    return f"troupe.agents.inbox.{agent_id}"


def result_subject(workflow_id: str) -> str:
    """Return the subject an agent reports the result of ``workflow_id``'s task on."""
    return f"troupe.agents.results.{workflow_id}"


def heartbeat_key(agent_id: str) -> str:
    """Return the key of ``agent_id``'s heartbeat in :data:`AGENTS_BUCKET`."""
    return agent_id


def heartbeat_subject(agent_id: str, bucket: str = AGENTS_BUCKET) -> str:
    """Return the subject a heartbeat of ``agent_id`` is published on (its KV key's subject)."""
    return f"$KV.{bucket}.{heartbeat_key(agent_id)}"


def inbox_durable(agent_id: str) -> str:
    """Return the name of ``agent_id``'s durable consumer on :data:`INBOX_STREAM`."""
    return f"agent-{agent_id}"


class Capability(msgspec.Struct, frozen=True, kw_only=True):
    """Something an agent can do, with the version it implements."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """Capability name, e.g. ``text.stats``."""
    version: Version = "1"
    """Dotted numeric version."""


class AgentInfo(Message, frozen=True, tag="troupe.agents.v1.info"):
    """The heartbeat an agent writes under its id."""

    agent_id: AgentId
    """Unique id."""
    name: str
    """Human-readable name."""
    capabilities: list[Capability]
    """What it can do."""
    inbox: str
    """Subject it receives messages on."""
    started_at: float
    """Unix time the agent started."""
    heartbeat_at: float
    """Unix time of this heartbeat."""
    load: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Tasks in progress."""
    capacity: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Tasks it takes at once."""
    version: str = "0"
    """Agent software version."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Free-form labels used by :class:`FindAgents`."""
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Heartbeat interval the agent promises."""
    ttl_s: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    """Seconds the heartbeat's key lives unless renewed (per-key TTL)."""


class AgentView(msgspec.Struct, frozen=True, kw_only=True):
    """An agent as the registry sees it."""

    info: AgentInfo
    """Last heartbeat."""
    presence: AgentPresence
    """``suspect`` after one missed heartbeat."""
    last_seen_s: float
    """Seconds since the last heartbeat."""


class FindAgents(Message, frozen=True, tag="troupe.agents.v1.find"):
    """Find live agents with a capability, least-loaded first."""

    capability: str
    """Capability name."""
    min_version: Version = "0"
    """Lowest acceptable capability version."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels the agent must carry."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    """Most agents to return."""
    include_suspect: bool = False
    """Whether agents that missed a heartbeat qualify."""


class ListAgents(Message, frozen=True, tag="troupe.agents.v1.list"):
    """List every known agent."""


class AgentList(Message, frozen=True, tag="troupe.agents.v1.agent_list"):
    """Answer to :class:`FindAgents` and :class:`ListAgents`."""

    agents: list[AgentView]
    """Matching agents."""


class AgentJoined(Message, frozen=True, tag="troupe.agents.v1.joined"):
    """An agent appeared."""

    info: AgentInfo
    """Its first heartbeat."""


class AgentLeft(Message, frozen=True, tag="troupe.agents.v1.left"):
    """An agent departed."""

    agent_id: str
    """Its id."""
    reason: Literal["expired", "deregistered"]
    """Heartbeat TTL expiry or clean deregistration."""
    at: float
    """Unix time the registry noticed."""


class AgentEnvelope(Message, frozen=True, tag="troupe.agents.v1.envelope"):
    """A message between agents (or from the task manager to an agent)."""

    message_id: str
    """Unique id (idempotency)."""
    sender: str
    """Sending agent id (or actor name)."""
    kind: str
    """Application-defined kind, e.g. ``task`` or ``chat``."""
    body: dict[str, Any] = msgspec.field(default_factory=dict)
    """Application payload."""
    reply_to: str | None = None
    """Subject to answer on, for request/response."""
    workflow_id: str | None = None
    """Workflow this message belongs to, if any."""
    capability: str | None = None
    """Capability the message asks for."""


class TaskResult(Message, frozen=True, tag="troupe.agents.v1.task_result"):
    """What an agent reports after handling a ``task`` envelope.

    Published with JetStream on the envelope's ``reply_to`` (a
    :func:`result_subject`), so it survives a restart of the task manager.
    """

    workflow_id: str
    """Workflow the task belongs to."""
    message_id: str
    """The task envelope's ``message_id`` (the task's idempotency key)."""
    agent_id: str
    """Agent that handled it."""
    ok: bool
    """Whether the handler succeeded."""
    output: dict[str, Any] = msgspec.field(default_factory=dict)
    """Handler output when ``ok``."""
    error: str = ""
    """Failure message when not ``ok`` (never a Python ``repr``)."""
    error_class: ErrorClass | None = None
    """Classification of the failure."""
    at: float = 0.0
    """Unix time the agent finished."""


AssignmentState = Literal["waiting", "assigned", "done"]


class AgentAssignment(Message, frozen=True, tag="troupe.agents.v1.assignment"):
    """An open agent task, kept in :data:`ASSIGNMENTS_BUCKET` until its result arrives.

    ``waiting``: no capable agent yet, retried until ``deadline``. ``assigned``:
    sent to ``agent_id``'s inbox; re-dispatched if that agent departs. ``done``:
    finished (kept until the bucket's max age, so a repeated dispatch is a no-op).
    """

    workflow_id: str
    """Workflow id (the bucket key)."""
    task_id: str
    """Idempotency key; the envelope's ``message_id`` on every dispatch."""
    capability: str
    """Required capability."""
    min_version: str = "0"
    """Lowest acceptable capability version."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels the agent must carry."""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    """Task parameters, sent as the envelope body."""
    state: AssignmentState = "waiting"
    """Where the task stands."""
    agent_id: str | None = None
    """Agent holding the task when ``assigned``."""
    attempt: int = 0
    """Dispatches so far."""
    deadline: float | None = None
    """When ``waiting``: Unix time after which the workflow fails with ``no_capable_agent``."""
    assigned_at: float | None = None
    """When ``assigned``: Unix time of the dispatch."""
    created_at: float = 0.0
    """Unix time of the first dispatch request."""
    departed: list[str] = msgspec.field(default_factory=list)
    """Agents that left while holding the task."""
