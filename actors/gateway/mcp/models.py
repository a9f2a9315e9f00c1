"""What MCP tools answer: pydantic models, the source of each tool's output schema.

The MCP SDK derives a tool's ``outputSchema`` from its return type, which must
be a pydantic model; the actors answer msgspec Structs. Each ``from_*``
function converts one wire answer into the model a tool returns, keeping what
an assistant needs and naming fields as the wire does.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import BaseModel, Field

from actors.gateway.schemas import Execution, StepLogs, Submitted, TemplateInfo
from protocols.agents import AgentView
from protocols.breakers import BreakerStatus
from protocols.pipelines import PipelineResult, StepResult
from protocols.status import TERMINAL_STATES, StepView, WorkflowView

__all__ = [
    "AgentItem",
    "AgentsOut",
    "ArtifactOut",
    "BreakerItem",
    "BreakersOut",
    "CancelOut",
    "ExecutionItem",
    "ExecutionsOut",
    "LogsOut",
    "ParamOut",
    "PlannedStep",
    "Problem",
    "ResultOut",
    "StepOut",
    "StepResultOut",
    "SubmittedOut",
    "TemplateOut",
    "TemplatesOut",
    "ValidationOut",
    "WorkflowOut",
    "WorkflowsOut",
    "from_agent",
    "from_breaker",
    "from_execution",
    "from_logs",
    "from_result",
    "from_submitted",
    "from_template",
    "from_view",
    "workflow_uri",
]


def workflow_uri(workflow_id: str) -> str:
    """Return the MCP resource URI of a workflow."""
    return f"troupe://workflows/{workflow_id}"


class StepOut(BaseModel):
    """One step of a workflow as the status tracker knows it."""

    name: str
    state: str = Field(description="pending, running, retrying, succeeded, failed, skipped, ...")
    attempt: int = 1
    percent: float | None = Field(default=None, description="last reported progress, 0-100")
    exit_code: int | None = None
    duration_s: float | None = None
    cache_hit: bool = False
    reason: str = ""


class WorkflowOut(BaseModel):
    """A workflow's state, steps, progress and ETA."""

    workflow_id: str
    state: str = Field(
        description="submitted, queued, preparing, running, retrying, succeeded, ..."
    )
    finished: bool = Field(description="whether the state is final")
    template: str | None = None
    attempt: int = 1
    progress: float = Field(default=0.0, description="fraction done, 0-1")
    current_step: str | None = None
    eta_s: float | None = Field(default=None, description="estimated seconds until it finishes")
    reason: str = Field(
        default="", description="why it was rejected, failed, cancelled or timed out"
    )
    error_class: str | None = None
    trace_id: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    steps: list[StepOut] = Field(default_factory=list)
    uri: str = Field(description="the workflow's MCP resource (subscribe to follow it)")


class WorkflowsOut(BaseModel):
    """A page of workflows, newest first."""

    items: list[WorkflowOut]
    next_cursor: str | None = None


class SubmittedOut(BaseModel):
    """A submission: the workflow id and where to follow it."""

    workflow_id: str
    duplicate: bool = Field(description="this id was submitted before; nothing new was created")
    trace_id: str | None = None
    rerun_of: str | None = None
    uri: str


class CancelOut(BaseModel):
    """A cancellation was recorded."""

    workflow_id: str
    cancelling: bool = True


class ArtifactMeta(BaseModel):
    """A file a step produced."""

    name: str
    size: int
    digest: str


class StepResultOut(BaseModel):
    """How one step ended."""

    name: str
    state: str
    exit_code: int | None = None
    duration_s: float = 0.0
    cache_hit: bool = False
    error_class: str | None = None
    reason: str = ""
    attempt: int = 1
    artifacts: list[ArtifactMeta] = Field(default_factory=list)
    agent_id: str = Field(default="", description="the agent that handled it (agent tasks)")
    output: dict[str, Any] = Field(
        default_factory=dict, description="what the agent's handler returned (agent tasks)"
    )


class ResultOut(BaseModel):
    """A finished workflow's stored result."""

    workflow_id: str
    state: str
    backend: str
    started_at: float
    finished_at: float
    reason: str = ""
    error_class: str | None = None
    attempt: int = 1
    steps: list[StepResultOut]


class ArtifactOut(BaseModel):
    """An artifact: its bytes inline when small, else a link to the gateway's HTTP API."""

    workflow_id: str
    name: str
    size: int
    digest: str
    inline: bool = Field(description="whether the content is in text or base64")
    text: str | None = Field(default=None, description="the content, when it is small UTF-8 text")
    base64: str | None = Field(
        default=None, description="the content, when it is small binary data"
    )
    url: str | None = Field(
        default=None, description="where to download it (bearer token required)"
    )


class LogsOut(BaseModel):
    """A step's output: the tails kept in its result, or its last lines so far while it runs."""

    workflow_id: str
    step: str
    state: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    running: bool = Field(
        default=False, description="the step has not ended: output so far, call again for more"
    )
    dropped: int = Field(default=0, description="lines printed while running but not kept")


class ParamOut(BaseModel):
    """A template parameter and its type."""

    name: str
    type: str = Field(description="str, int, float or bool")
    required: bool
    default: str | int | float | bool | None = None
    description: str = ""


class TemplateOut(BaseModel):
    """A pipeline template."""

    name: str
    description: str = ""
    params: list[ParamOut] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)


class TemplatesOut(BaseModel):
    """Every template."""

    items: list[TemplateOut]


class Problem(BaseModel):
    """One reason a workflow would be rejected."""

    code: str = Field(description="rejection code, e.g. missing_parameter or cycle")
    message: str


class PlannedStep(BaseModel):
    """A step of a validated plan."""

    name: str
    stage: int = Field(description="steps of one stage may run concurrently")
    needs: list[str] = Field(default_factory=list)
    image: str | None = None
    run: str | list[str]


class ValidationOut(BaseModel):
    """What would run, or why it would be rejected; nothing was submitted."""

    valid: bool
    pipeline: str | None = None
    stages: list[list[str]] = Field(default_factory=list)
    steps: list[PlannedStep] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)


class AgentItem(BaseModel):
    """A live agent."""

    agent_id: str
    name: str
    capabilities: list[str]
    presence: str
    load: int
    capacity: int
    version: str
    last_seen_s: float


class AgentsOut(BaseModel):
    """Agents, least loaded first when searched by capability."""

    items: list[AgentItem]


class ExecutionItem(BaseModel):
    """A step running now."""

    workflow_id: str
    step: str
    runner: str
    attempt: int
    started_at: float


class ExecutionsOut(BaseModel):
    """Steps running now, oldest first."""

    items: list[ExecutionItem]


class BreakerItem(BaseModel):
    """A circuit breaker."""

    key: str
    state: str = Field(description="closed, open, half_open, forced_open or disabled")
    since: float
    open_until: float | None = None
    failure_rate: float = 0.0
    calls: int = 0


class BreakersOut(BaseModel):
    """Circuit breakers."""

    items: list[BreakerItem]


def _builtins(value: object) -> dict[str, Any]:
    out = msgspec.to_builtins(value)
    assert isinstance(out, dict)
    return out


def _step(view: StepView) -> StepOut:
    return StepOut.model_validate(
        {k: v for k, v in _builtins(view).items() if k in StepOut.model_fields}
    )


def from_view(view: WorkflowView) -> WorkflowOut:
    """Convert the status tracker's view."""
    data = {k: v for k, v in _builtins(view).items() if k in WorkflowOut.model_fields}
    data["steps"] = [_step(s) for s in view.steps]
    data["finished"] = view.state in TERMINAL_STATES
    data["uri"] = workflow_uri(view.workflow_id)
    return WorkflowOut.model_validate(data)


def _step_result(step: StepResult) -> StepResultOut:
    data = {k: v for k, v in _builtins(step).items() if k in StepResultOut.model_fields}
    data["artifacts"] = [
        ArtifactMeta(name=a.name, size=a.size, digest=a.digest) for a in step.artifacts
    ]
    return StepResultOut.model_validate(data)


def from_result(result: PipelineResult) -> ResultOut:
    """Convert a runner's stored result (output tails are left to ``get_logs``)."""
    data = {k: v for k, v in _builtins(result).items() if k in ResultOut.model_fields}
    data["steps"] = [_step_result(s) for s in result.steps]
    return ResultOut.model_validate(data)


def from_submitted(submitted: Submitted) -> SubmittedOut:
    """Convert the gateway's submission answer."""
    return SubmittedOut(
        workflow_id=submitted.workflow_id,
        duplicate=submitted.duplicate,
        trace_id=submitted.trace_id,
        rerun_of=submitted.rerun_of,
        uri=workflow_uri(submitted.workflow_id),
    )


def from_logs(logs: StepLogs) -> LogsOut:
    """Convert a step's output tails."""
    return LogsOut.model_validate(_builtins(logs))


def from_template(template: TemplateInfo) -> TemplateOut:
    """Convert a template with its typed parameters."""
    return TemplateOut(
        name=template.name,
        description=template.description,
        steps=list(template.steps),
        params=[
            ParamOut(
                name=p.name,
                type=p.type,
                required=p.default is None,
                default=p.default,
                description=p.description,
            )
            for p in template.params
        ],
    )


def from_agent(view: AgentView) -> AgentItem:
    """Convert an agent registry entry."""
    info = view.info
    return AgentItem(
        agent_id=info.agent_id,
        name=info.name,
        capabilities=[str(c) for c in info.capabilities],
        presence=str(view.presence),
        load=info.load,
        capacity=info.capacity,
        version=info.version,
        last_seen_s=view.last_seen_s,
    )


def from_execution(execution: Execution) -> ExecutionItem:
    """Convert a running step."""
    return ExecutionItem.model_validate(_builtins(execution))


def from_breaker(status: BreakerStatus) -> BreakerItem:
    """Convert a breaker's published state."""
    data = {k: v for k, v in _builtins(status).items() if k in BreakerItem.model_fields}
    return BreakerItem.model_validate(data)
