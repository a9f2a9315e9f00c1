"""Pipeline definitions, runs and results: the pipeline runner's wire contract.

A :class:`PipelineSpec` is what a template renders to (or what a client sends
inline). The task manager validates and plans it, then publishes a
:class:`PipelineRun` on :data:`RUN_SUBJECT`; the runner stores a
:class:`PipelineResult` in :data:`RESULTS_BUCKET` and step artifacts in
:data:`ARTIFACTS_BUCKET`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocols.base import Identifier, Message
from protocols.errors import ErrorClass

__all__ = [
    "ARTIFACTS_BUCKET",
    "CACHE_BUCKET",
    "CACHE_CLEARED_SUBJECT",
    "CACHE_CLEAR_SUBJECT",
    "CANCEL_SUBJECT",
    "CHECKPOINTS_BUCKET",
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
    "RunCheckpoint",
    "RunOutcome",
    "StepOutcome",
    "StepResult",
    "StepSpec",
]

RUN_SUBJECT = "troupe.pipelines.run"
"""Work-queue subject of :class:`PipelineRun` messages."""

PIPELINES_STREAM = "TROUPE_PIPELINES"
"""Work-queue stream capturing :data:`RUN_SUBJECT`."""

CANCEL_SUBJECT = "troupe.pipelines.cancel"
"""Fan-out subject (every runner listens) of :class:`CancelRun`."""

RESULT_SUBJECT = "troupe.pipelines.result"
"""Request subject answering :class:`GetResult` with a :class:`PipelineResult`."""

RESULTS_BUCKET = "troupe-results"
"""KV bucket: workflow id -> :class:`PipelineResult`."""

ARTIFACTS_BUCKET = "troupe-artifacts"
"""Object store bucket holding step output files."""

CACHE_BUCKET = "troupe-step-cache"
"""Object store bucket shared by runners: step cache key -> cached step result."""

CACHE_CLEAR_SUBJECT = "troupe.pipelines.cache.clear"
"""Request subject of :class:`ClearCache`; every runner also drops its in-process tier."""

CACHE_CLEARED_SUBJECT = "troupe.pipelines.cache.cleared"
"""Fan-out subject of :class:`CacheCleared`: every runner drops its in-process tier."""

CHECKPOINTS_BUCKET = "troupe-run-checkpoints"
"""KV bucket: workflow id -> :class:`RunCheckpoint` (steps finished by a run in flight)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Names of pipelines, steps and parameters."""

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
ParamType = Literal["str", "int", "float", "bool"]
ParamValue = str | int | float | bool
BackendName = Literal["auto", "local", "dagger"]
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
    """Name of a retry policy known to the breaker supervisor."""
    backend: BackendName | None = None
    """Backend hint overriding the pipeline's."""
    cache: bool = True
    """Whether a success may be served from (and stored in) the step cache."""


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
    """Executions started per step (retries count)."""


class CachedStep(Message, frozen=True, tag="troupe.pipelines.v1.cached_step"):
    """A step cache entry: the result of a successful step and when it was stored."""

    key: str
    """Cache key (hex sha256 of backend, image, command, env and input digests)."""
    result: StepResult
    """The step's result; its artifacts hold the output files."""
    stored_at: float
    """Unix time the entry was stored."""


class ClearCache(Message, frozen=True, tag="troupe.pipelines.v1.clear_cache"):
    """Request to empty the step cache (shared tier and every runner's own tier)."""


class CacheCleared(Message, frozen=True, tag="troupe.pipelines.v1.cache_cleared"):
    """Answer to :class:`ClearCache`."""

    removed: int
    """Entries removed from the shared tier."""
