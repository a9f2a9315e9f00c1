"""troupe's JetStream topology: every stream, KV bucket and object store, declared once.

Actors list the entries they use in their ``streams`` / ``buckets`` /
``object_stores`` / ``consumers`` class attributes; ``troupe init`` (and
``troupe up``) creates them as ``admin`` and the actors bind to them.
Workflow data lives in file storage; agent presence in memory storage.
"""

from __future__ import annotations

from actors.runtime.bootstrap import Topology
from actors.runtime.handlers import ConsumerSpec
from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from protocols import agents, breakers, flags, pipelines, schedules, status, tasks

__all__ = [
    "AGENTS",
    "AGENT_ASSIGNMENTS",
    "AGENT_INBOX",
    "AGENT_RESULTS",
    "AGENT_RESULTS_CONSUMER",
    "ARTIFACTS",
    "BREAKERS",
    "BREAKER_REPORTS",
    "BREAKER_SNAPSHOTS",
    "CHECKPOINTS",
    "DURATIONS",
    "FLAGS",
    "LEASES",
    "PIPELINES",
    "RESULTS",
    "SCHEDULES",
    "SCHEDULE_DEFINITIONS",
    "SCHEDULE_FIRINGS",
    "STATUS_EVENTS",
    "STEP_CACHE",
    "TASKS",
    "TASK_IDS",
    "TROUPE",
    "WORKFLOWS",
    "agent_inbox_consumer",
]

DAY = 24 * 3600.0

TASKS = StreamSpec(
    name=tasks.TASKS_STREAM,
    subjects=(tasks.SUBMIT_SUBJECT,),
    retention="workqueue",
    duplicate_window=DAY,
    description="Submitted tasks, consumed once by the task manager",
)

TASK_IDS = BucketSpec(
    name=tasks.TASKS_BUCKET,
    history=1,
    ttl=30 * DAY,
    description="Accepted task ids: idempotency beyond the stream's de-duplication window",
)

PIPELINES = StreamSpec(
    name=pipelines.PIPELINES_STREAM,
    subjects=(pipelines.RUN_SUBJECT,),
    retention="workqueue",
    duplicate_window=DAY,
    description="Pipeline runs, shared by every pipeline runner replica",
)

RESULTS = BucketSpec(
    name=pipelines.RESULTS_BUCKET,
    history=1,
    ttl=30 * DAY,
    description="Pipeline results by workflow id",
)

ARTIFACTS = ObjectStoreSpec(
    name=pipelines.ARTIFACTS_BUCKET,
    ttl=30 * DAY,
    description="Files produced by pipeline steps",
)

CHECKPOINTS = BucketSpec(
    name=pipelines.CHECKPOINTS_BUCKET,
    history=1,
    ttl=7 * DAY,
    description="Steps finished by pipeline runs in flight, so a redelivered run resumes",
)

LEASES = BucketSpec(
    name=pipelines.LEASES_BUCKET,
    history=1,
    # Upper bound for released leases' markers: a live lease carries its own TTL,
    # refreshed by its holder, so it expires within seconds of its runner's death.
    ttl=DAY,
    description="Run and step leases of pipeline runners (who executes what now)",
)

STEP_CACHE = BucketSpec(
    name=pipelines.CACHE_BUCKET,
    history=1,
    ttl=7 * DAY,
    description="Step cache shared by every pipeline runner: a CachedStep per cache key",
)

STATUS_EVENTS = StreamSpec(
    name=status.STATUS_STREAM,
    subjects=(status.EVENTS_SUBJECTS,),
    retention="limits",
    max_age=30 * DAY,
    duplicate_window=600.0,
    description="Every workflow status event: the transition history",
)

WORKFLOWS = BucketSpec(
    name=status.WORKFLOWS_BUCKET,
    history=1,
    ttl=30 * DAY,
    description="Current state of every workflow",
)

DURATIONS = BucketSpec(
    name=status.DURATIONS_BUCKET,
    history=1,
    ttl=90 * DAY,
    description="Durations of earlier runs per template, for ETAs",
)

BREAKER_REPORTS = StreamSpec(
    name=breakers.REPORTS_STREAM,
    subjects=(breakers.REPORT_SUBJECT,),
    retention="workqueue",
    duplicate_window=600.0,
    description="Call outcomes reported to the breaker supervisor",
)

BREAKERS = BucketSpec(
    name=breakers.BREAKERS_BUCKET,
    history=1,
    description="Breaker state shared with every runner",
)

BREAKER_SNAPSHOTS = BucketSpec(
    name=breakers.SNAPSHOTS_BUCKET,
    history=1,
    description="Full breaker state (windows included), so the supervisor restarts losslessly",
)

AGENTS = BucketSpec(
    name=agents.AGENTS_BUCKET,
    history=1,
    # Upper bound only: each heartbeat carries its own per-key TTL (a few intervals).
    ttl=30.0,
    storage="memory",
    # Expiry leaves a purge marker for this long, so watchers see a departure.
    marker_ttl=5.0,
    description="Agent heartbeats; an expired key is a departed agent",
)

AGENT_INBOX = StreamSpec(
    name=agents.INBOX_STREAM,
    subjects=(agents.INBOX_SUBJECTS,),
    retention="limits",
    max_age=DAY,
    description="Messages to agents, kept while an agent is briefly offline",
)

AGENT_RESULTS = StreamSpec(
    name=agents.RESULTS_STREAM,
    subjects=(agents.RESULTS_SUBJECTS,),
    retention="workqueue",
    max_age=7 * DAY,
    duplicate_window=600.0,
    description="Results of agent tasks, consumed by the task manager",
)

AGENT_ASSIGNMENTS = BucketSpec(
    name=agents.ASSIGNMENTS_BUCKET,
    history=1,
    ttl=7 * DAY,
    description="Open agent tasks: which agent holds each, re-dispatched if it departs",
)

FLAGS = BucketSpec(
    name=flags.FLAGS_BUCKET,
    history=64,
    description="Feature flags, watched by the actors; the history keeps earlier versions",
)

SCHEDULES = StreamSpec(
    name=schedules.SCHEDULES_STREAM,
    subjects=(schedules.DEFINITION_SUBJECTS, schedules.FIRING_SUBJECTS),
    # One message per subject: a schedule's message (replaced to pause it, never
    # aged out) and its latest firing not yet consumed (missed firings coalesce).
    max_msgs_per_subject=1,
    allow_msg_schedules=True,
    description="Schedule messages (fired by the server) and their firings",
)

SCHEDULE_DEFINITIONS = BucketSpec(
    name=schedules.SCHEDULES_BUCKET,
    history=8,
    description="Schedule definitions, paused ones included",
)

SCHEDULE_FIRINGS = ConsumerSpec(
    stream=SCHEDULES,
    durable="task-manager-schedules",
    filter_subject=schedules.FIRING_SUBJECTS,
    concurrency=4,
)
"""The task manager's consumer of schedule firings."""

AGENT_RESULTS_CONSUMER = ConsumerSpec(
    stream=AGENT_RESULTS, durable="task-manager-agent-results", concurrency=16
)
"""The task manager's consumer of agent task results."""


def agent_inbox_consumer(agent_id: str, *, ack_wait: float = 30.0) -> ConsumerSpec:
    """Return the durable consumer of ``agent_id``'s inbox (created by ``troupe agents add``)."""
    return ConsumerSpec(
        stream=AGENT_INBOX,
        durable=agents.inbox_durable(agent_id),
        filter_subject=agents.inbox_subject(agent_id),
        ack_wait=ack_wait,
        max_deliver=5,
    )


TROUPE = Topology(
    streams=(
        TASKS,
        PIPELINES,
        STATUS_EVENTS,
        BREAKER_REPORTS,
        AGENT_INBOX,
        AGENT_RESULTS,
        SCHEDULES,
    ),
    buckets=(
        TASK_IDS,
        RESULTS,
        CHECKPOINTS,
        LEASES,
        WORKFLOWS,
        DURATIONS,
        BREAKERS,
        BREAKER_SNAPSHOTS,
        AGENTS,
        AGENT_ASSIGNMENTS,
        FLAGS,
        SCHEDULE_DEFINITIONS,
        STEP_CACHE,
    ),
    object_stores=(ARTIFACTS,),
    consumers=(AGENT_RESULTS_CONSUMER, SCHEDULE_FIRINGS),
)
"""Every stream, bucket and object store above: created by ``troupe init`` with the
actors' own declarations (their consumers with per-instance options)."""
