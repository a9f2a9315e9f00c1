"""Pipeline definitions, runs and results: the pipeline runner's wire contract.

A :class:`PipelineSpec` is what a template renders to (or what a client sends
inline). The task manager validates and plans it, then publishes a
:class:`PipelineRun` on :data:`RUN_SUBJECT`; the runner stores a
:class:`PipelineResult` in :data:`RESULTS_BUCKET` and step artifacts in
:data:`ARTIFACTS_BUCKET`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from protocols.base import Message
from protocols.errors import ErrorClass
from protocols.ids import Identifier

__all__ = [
    "ARTIFACTS_BUCKET",
    "CACHE_BUCKET",
    "CACHE_CLEARED_SUBJECT",
    "CACHE_CLEAR_SUBJECT",
    "CANCEL_SUBJECT",
    "CHECKPOINTS_BUCKET",
    "EXECUTION_STOP_SUBJECT",
    "LEASES_BUCKET",
    "LOGS_SUBJECTS",
    "NAME_PATTERN",
    "PIPELINES_STREAM",
    "RESULTS_BUCKET",
    "RESULT_SUBJECT",
    "RUN_SUBJECT",
    "ArtifactRef",
    "BackendName",
    "CacheCleared",
    "CachedStep",
    "CancelRun",
    "ClearCache",
    "GetResult",
    "Name",
    "ParamSpec",
    "ParamType",
    "ParamValue",
    "PipelineResult",
    "PipelineRun",
    "PipelineSpec",
    "RetryPolicySpec",
    "RunCheckpoint",
    "RunOutcome",
    "StepAttemptReason",
    "StepLease",
    "StepOutcome",
    "StepOutput",
    "StepResult",
    "StepSpec",
    "StopExecution",
    "logs_subject",
    "run_lease_key",
    "step_key",
]

RUN_SUBJECT = "troupe.pipelines.run"
"""Work-queue subject of :class:`PipelineRun` messages."""

PIPELINES_STREAM = "TROUPE_PIPELINES"
"""Work-queue stream capturing :data:`RUN_SUBJECT`."""

CANCEL_SUBJECT = "troupe.pipelines.cancel"
"""Fan-out subject (every runner listens) of :class:`CancelRun`."""

EXECUTION_STOP_SUBJECT = "troupe.pipelines.executions.stop"
"""Fan-out subject (every runner listens) of :class:`StopExecution`."""

LOGS_SUBJECTS = "troupe.pipelines.logs.>"
"""Core subjects of :class:`StepOutput` lines: see :func:`logs_subject`."""

RESULT_SUBJECT = "troupe.pipelines.result"
"""Request subject answering :class:`GetResult` with a :class:`PipelineResult`."""

RESULTS_BUCKET = "troupe-results"
"""KV bucket: workflow id -> :class:`PipelineResult`."""

ARTIFACTS_BUCKET = "troupe-artifacts"
"""Object store bucket holding step output files."""

CACHE_BUCKET = "troupe-step-cache"
"""KV bucket shared by runners: step cache key -> :class:`CachedStep`."""

CACHE_CLEAR_SUBJECT = "troupe.pipelines.cache.clear"
"""Request subject of :class:`ClearCache`; every runner also drops its in-process tier."""

CACHE_CLEARED_SUBJECT = "troupe.pipelines.cache.cleared"
"""Fan-out subject of :class:`CacheCleared`: every runner drops its in-process tier."""

CHECKPOINTS_BUCKET = "troupe-run-checkpoints"
"""KV bucket: workflow id -> :class:`RunCheckpoint` (steps finished by a run in flight)."""

LEASES_BUCKET = "troupe-step-leases"
"""KV bucket of :class:`StepLease` entries with a per-key TTL: who executes a run or a step now.

Keys are :func:`run_lease_key` (a workflow id) and :func:`step_key` (a workflow
id, a dot, a step name). A holder keeps its lease alive; a lease whose runner
died expires within its TTL."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Names of pipelines, steps and parameters."""

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
ParamType = Literal["str", "int", "float", "bool"]
ParamValue = str | int | float | bool
BackendName = Literal["auto", "local", "dagger"]
StepAttemptReason = Literal["first", "retry", "runner_lost"]
"""Why a step attempt runs: the first one, a retry after a failure, or again
because the runner executing the previous attempt was lost mid-step."""
StepOutcome = Literal["succeeded", "failed", "skipped", "cancelled", "timed_out"]
RunOutcome = Literal["succeeded", "failed", "cancelled", "timed_out"]


class ParamSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A template parameter."""

    name: Name
    """Parameter name, referenced as ``{{ name }}`` in the template."""
    type: ParamType = "str"
    """Type the value is checked and converted to."""
    default: ParamValue | None = None
    """Value used when the task gives none; ``None`` makes the parameter required."""
    description: str = ""
    """What the parameter is for."""


class RetryPolicySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A retry policy defined in a pipeline file or template (named in ``retry_policies``).

    Delays follow exponential backoff: the cap after failed attempt *n* is
    ``min(max_delay, base_delay * multiplier ** (n - 1))``; ``full`` jitter
    waits a uniform time below the cap, ``none`` the cap itself.
    """

    attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    """Attempts in all, the first included (1 = never retry)."""
    base_delay: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Seconds of the backoff cap before the first retry."""
    multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    """Growth of the cap per attempt."""
    max_delay: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    """Upper bound of any single delay (at least ``base_delay``)."""
    jitter: Literal["full", "none"] = "full"
    """``full``: uniform between 0 and the cap; ``none``: the cap."""
    retry_on: list[ErrorClass] = msgspec.field(
        default_factory=lambda: ["transient", "timeout", "unavailable"]
    )
    """Error classes worth retrying."""
    deadline: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Seconds from the run's start after which no retry starts."""


class StepSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step of a pipeline."""

    name: Name
    """Unique name within the pipeline."""
    run: str | list[str]
    """Shell command (string) or argv (list)."""
    image: str | None = None
    """Container image (Dagger backend); ignored by the local backend."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra environment variables."""
    needs: list[Name] = msgspec.field(default_factory=list)
    """Steps that must succeed before this one starts."""
    inputs: list[str] = msgspec.field(default_factory=list)
    """Files (relative paths) this step reads from earlier steps' outputs."""
    outputs: list[str] = msgspec.field(default_factory=list)
    """Files (relative paths) this step produces for later steps and as artifacts."""
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Seconds before the step is killed and ends ``timed_out``."""
    retry: str | None = None
    """Name of a retry policy: a built-in one or one of the pipeline's ``retry_policies``."""
    backend: BackendName | None = None
    """Backend hint overriding the pipeline's."""
    cache: bool = True
    """Whether a success may be served from (and stored in) the step cache."""
    breaker: Literal["step", "template"] | None = None
    """Opt-in breaker counting this step's own failures: ``step`` (key
    ``step:PIPELINE/STEP``) or ``template`` (key ``template:PIPELINE``, shared by
    every step of the pipeline that opts in)."""


class PipelineSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A pipeline: parameters and a graph of steps."""

    name: Name
    """Pipeline (template) name."""
    steps: list[StepSpec]
    """Steps; order does not matter, ``needs`` does."""
    description: str = ""
    """What the pipeline does."""
    params: list[ParamSpec] = msgspec.field(default_factory=list)
    """Declared parameters."""
    backend: BackendName = "auto"
    """Default backend of every step."""
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Seconds before the whole workflow ends ``timed_out``."""
    retry_policies: dict[Name, RetryPolicySpec] = msgspec.field(default_factory=dict)
    """Retry policies of this pipeline, by name (built-in names cannot be redefined)."""


class PipelineRun(Message, frozen=True, tag="troupe.pipelines.v1.run"):
    """Instruction to run a validated, rendered pipeline."""

    workflow_id: str
    """Workflow this run belongs to (equals the task's idempotency key)."""
    pipeline: PipelineSpec
    """The rendered pipeline, parameters substituted."""
    order: list[list[str]]
    """Planned stages: each inner list holds steps that may run concurrently."""
    template: str | None = None
    """Template the pipeline came from, if any."""
    deadline: float | None = None
    """Unix time after which the workflow is ``timed_out``."""
    attempt: int = 1
    """Run attempt, starting at 1."""


class CancelRun(Message, frozen=True, tag="troupe.pipelines.v1.cancel"):
    """Broadcast asking whichever runner holds a workflow to stop it."""

    workflow_id: str
    """Workflow to stop."""
    reason: str = "cancelled by user"
    """Why, recorded in the status history."""


class StopExecution(Message, frozen=True, tag="troupe.pipelines.v1.stop_execution"):
    """Broadcast asking the runner executing a step to stop it (its workflow ends cancelled)."""

    workflow_id: str
    """Workflow of the step."""
    step: str
    """Step to stop."""
    reason: str = "stopped by an operator"
    """Why, recorded in the status history."""


def logs_subject(workflow_id: str, step: str | None = None) -> str:
    """Return the subject of a step's live output (``None``: a wildcard over every step)."""
    return f"troupe.pipelines.logs.{workflow_id}." + (step if step is not None else ">")


class StepOutput(Message, frozen=True, tag="troupe.pipelines.v1.output"):
    """One line a running step printed, published live in JSON (not stored; bounded in rate).

    The stored result keeps each step's last lines (``stdout_tail``, ``stderr_tail``).
    """

    workflow_id: str
    """Workflow id."""
    step: str
    """Step name."""
    attempt: int
    """Step attempt that printed it."""
    stream: Literal["stdout", "stderr"]
    """Which output."""
    line: str
    """The line, without its newline (cut to the runner's line bound)."""
    seq: int
    """Position among the lines published for this attempt, from 1."""
    at: float
    """Unix time the runner read it."""
    dropped: int = 0
    """Lines dropped just before this one (over the rate bound)."""


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True):
    """Reference to a file stored in :data:`ARTIFACTS_BUCKET`."""

    name: str
    """Path of the file relative to the step workspace."""
    object_name: str
    """Object name in the artifact store."""
    size: int
    """Bytes."""
    digest: str
    """``sha256:<hex>`` of the content."""


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of one step."""

    name: str
    """Step name."""
    state: StepOutcome
    """How it ended."""
    exit_code: int | None = None
    """Process exit code (negative: killed by that signal)."""
    duration_s: float = 0.0
    """Wall time of the step."""
    stdout_tail: str = ""
    """Last lines of standard output."""
    stderr_tail: str = ""
    """Last lines of standard error."""
    artifacts: list[ArtifactRef] = msgspec.field(default_factory=list)
    """Files the step produced."""
    cache_hit: bool = False
    """Whether the result came from the step cache."""
    backend: str = "local"
    """Backend that ran the step."""
    error_class: ErrorClass | None = None
    """Classification of a failure."""
    reason: str = ""
    """Why it failed, in words."""
    attempt: int = 1
    """Step attempt that produced this result (counted per step of a run, from 1)."""
    attempt_reason: StepAttemptReason = "first"
    """Why that attempt ran: ``runner_lost`` means an earlier attempt may have run
    (its runner died mid-step) and this one ran again, with the same step key."""
    agent_id: str = ""
    """Agent that handled the step (a task routed to an agent; empty for a command)."""
    output: dict[str, Any] = msgspec.field(default_factory=dict)
    """What the agent's handler returned (a task routed to an agent)."""


class PipelineResult(Message, frozen=True, tag="troupe.pipelines.v1.result"):
    """Durable result of a workflow's pipeline."""

    workflow_id: str
    """Workflow id."""
    state: RunOutcome
    """Overall outcome."""
    steps: list[StepResult]
    """Per-step outcomes, in execution order."""
    started_at: float
    """Unix time the run started."""
    finished_at: float
    """Unix time the run ended."""
    backend: str = "local"
    """Backend chosen for the run (``auto`` resolved)."""
    reason: str = ""
    """Why the run failed, if it did."""
    error_class: ErrorClass | None = None
    """Classification of the failure, if the run failed."""
    attempt: int = 1
    """Run attempt that produced this result."""
    backend_note: str = ""
    """Why the backend was chosen (for ``auto``: what the engine probe found)."""


class GetResult(Message, frozen=True, tag="troupe.pipelines.v1.get_result"):
    """Request for a workflow's stored :class:`PipelineResult`."""

    workflow_id: Identifier
    """Workflow id."""


class RunCheckpoint(Message, frozen=True, tag="troupe.pipelines.v1.checkpoint"):
    """Steps a run has finished so far, written after each one.

    A redelivered run reads it and does not execute those steps again.
    """

    workflow_id: str
    """Workflow id."""
    attempt: int
    """Run attempt."""
    started_at: float
    """Unix time the run first started."""
    backend: str
    """Backend chosen for the run."""
    steps: list[StepResult] = msgspec.field(default_factory=list)
    """Finished steps, in completion order."""
    step_attempts: dict[str, int] = msgspec.field(default_factory=dict)
    """Attempts started per step (retries and re-runs after a lost runner count),
    persisted before each attempt starts."""
    in_flight: dict[str, int] = msgspec.field(default_factory=dict)
    """Steps started and not yet recorded as finished, with their attempt: the
    intent written before a step starts. A later delivery that finds one here
    (and no live lease) knows that attempt may have run."""


class CachedStep(Message, frozen=True, tag="troupe.pipelines.v1.cached_step"):
    """A step cache entry: the result of a successful step and when it was stored."""

    key: str
    """Cache key (hex sha256 of backend, image, command, env and input digests)."""
    result: StepResult
    """The step's result; its artifacts hold the output files."""
    stored_at: float
    """Unix time the entry was stored."""
    template: str = ""
    """Template of the workflow whose step stored it (empty: a pipeline file)."""


class ClearCache(Message, frozen=True, tag="troupe.pipelines.v1.clear_cache"):
    """Request to remove step cache entries (shared tier and every runner's own tier).

    With neither field set, every entry goes.
    """

    key: str | None = None
    """Only this entry: its full key or an unambiguous prefix of it (as ``troupe cache ls``
    shows). Unknown or ambiguous: a ``not_found``/``bad_request`` error, nothing removed."""
    template: str | None = None
    """Only the entries stored by steps of workflows of this template."""


class CacheCleared(Message, frozen=True, tag="troupe.pipelines.v1.cache_cleared"):
    """Answer to :class:`ClearCache`, also announced to every runner."""

    removed: int
    """Entries removed from the shared tier."""
    keys: list[str] | None = None
    """The keys removed (``None``: the whole cache was cleared)."""


def step_key(workflow_id: str, step: str) -> str:
    """Return the stable key of one step of one workflow: the same for every attempt.

    Steps get it as ``TROUPE_STEP_KEY``: a step with external effects uses it
    as its idempotency key. It is also the step's lease key.
    """
    return f"{workflow_id}.{step}"


def run_lease_key(workflow_id: str) -> str:
    """Return the lease key of a workflow's run (held by the runner executing it)."""
    return workflow_id


class StepLease(Message, frozen=True, tag="troupe.pipelines.v1.lease"):
    """Who executes a run or one of its steps now; kept alive by its holder (per-key TTL)."""

    workflow_id: str
    """Workflow id."""
    runner: str
    """Id of the runner process holding it."""
    token: int
    """Fencing token: the revision of the run lease the holder acquired, which
    grows with every new holder."""
    step: str = ""
    """Step name; empty for the run lease."""
    attempt: int = 0
    """Step attempt the holder executes (0 for the run lease)."""
    acquired_at: float = 0.0
    """Unix time the holder acquired it."""
    host: str = ""
    """Host name of the holder (empty in leases written before it was recorded)."""
    backend: str = ""
    """Backend executing the step (``local``, ``dagger``; empty for the run lease)."""
