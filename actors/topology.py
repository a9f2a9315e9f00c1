"""troupe's JetStream topology: every stream, KV bucket and object store, declared once.

Actors list the entries they use in their ``streams`` / ``buckets`` /
``object_stores`` class attributes; the runtime creates them at start-up.
Workflow data lives in file storage; agent presence in memory storage.
"""

from __future__ import annotations

from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from protocols import agents, breakers, pipelines, status, tasks

__all__ = [
    "AGENTS",
    "AGENT_ASSIGNMENTS",
    "AGENT_INBOX",
    "AGENT_RESULTS",
    "ARTIFACTS",
    "BREAKERS",
    "BREAKER_REPORTS",
    "BREAKER_SNAPSHOTS",
    "CHECKPOINTS",
    "DURATIONS",
    "PIPELINES",
    "RESULTS",
    "STATUS_EVENTS",
    "STEP_CACHE",
    "TASKS",
    "TASK_IDS",
    "WORKFLOWS",
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

STEP_CACHE = ObjectStoreSpec(
    name=pipelines.CACHE_BUCKET,
    ttl=7 * DAY,
    description="Step cache shared by every pipeline runner",
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
