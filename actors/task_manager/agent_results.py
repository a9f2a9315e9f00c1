"""How tasks routed to agents are reported: status events, and results stored like a pipeline's.

A workflow handled by an agent ends with a :class:`~protocols.pipelines.PipelineResult`
in the results bucket (``troupe-results``), so ``troupe result``, the gateway's
``GET /api/v1/workflows/{id}/result`` and MCP ``get_result`` answer for it as for a
pipeline: the run's backend is ``agent`` and it has one step, named after the
capability, whose ``agent_id`` is the agent that handled it and whose ``output``
is what the handler returned (or whose ``reason`` is the agent's error).

:class:`AgentReports` publishes the status events of agent tasks and ends them
(:meth:`AgentReports.end`): the result is written before the workflow's terminal
status event, so a workflow seen as ended has its result. The first result
stored wins: a repeated or late one never replaces it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import msgspec

from actors.runtime.bus import Bus
from actors.runtime.errors import Conflict
from actors.runtime.kv import TypedBucket
from actors.topology import RESULTS
from protocols.agents import AgentAssignment, TaskResult
from protocols.errors import ErrorClass
from protocols.pipelines import PipelineResult, StepResult
from protocols.status import (
    StatusEvent,
    StepProgress,
    StepTransition,
    WorkflowTransition,
    event_subject,
)

__all__ = ["AGENT_BACKEND", "AgentReports", "AgentResults", "agent_result"]

WorkflowState = Literal["queued", "running", "retrying", "succeeded", "failed"]

log = logging.getLogger(__name__)

AGENT_BACKEND = "agent"
"""The ``backend`` of the result (and of its step) of a task routed to an agent."""


def agent_result(
    assignment: AgentAssignment,
    state: Literal["succeeded", "failed"],
    at: float,
    *,
    result: TaskResult | None = None,
    reason: str = "",
    error_class: ErrorClass | None = None,
) -> PipelineResult:
    """Return the workflow result of an agent task that ended.

    Args:
        assignment: the task's assignment (capability, agent, attempt, times).
        state: how the workflow ended.
        at: Unix time it ended.
        result: the agent's report, if one arrived (its agent, output and error
            take precedence over ``reason`` and ``error_class``).
        reason: why it failed, when no agent reported (e.g. ``no_capable_agent``).
        error_class: classification of that failure.
    """
    if result is not None:
        reason, error_class = result.error, result.error_class
    agent_id = result.agent_id if result is not None else (assignment.agent_id or "")
    started = assignment.assigned_at if assignment.assigned_at is not None else at
    step = StepResult(
        name=assignment.capability,
        state=state,
        duration_s=max(0.0, at - started) if assignment.assigned_at is not None else 0.0,
        backend=AGENT_BACKEND,
        error_class=error_class if state == "failed" else None,
        reason=reason if state == "failed" else "",
        attempt=max(assignment.attempt, 1),
        attempt_reason="retry" if assignment.attempt > 1 else "first",
        agent_id=agent_id,
        output=dict(result.output) if result is not None and result.ok else {},
    )
    return PipelineResult(
        workflow_id=assignment.workflow_id,
        state=state,
        steps=[step],
        started_at=assignment.created_at or started,
        finished_at=at,
        backend=AGENT_BACKEND,
        reason=step.reason,
        error_class=step.error_class,
        attempt=step.attempt,
        backend_note=f"agent {agent_id}" if agent_id else "no agent took the task",
    )


class AgentResults:
    """Writes agent task results into the results bucket, first result wins.

    Args:
        bucket: the results bucket.
    """

    def __init__(self, bucket: TypedBucket[PipelineResult]) -> None:
        self._bucket = bucket

    @classmethod
    async def bind(cls, bus: Bus) -> AgentResults:
        """Bind to the results bucket (created by ``troupe up``/``troupe init``)."""
        return cls(await TypedBucket.bind(bus, RESULTS, PipelineResult))

    async def store(self, result: PipelineResult) -> PipelineResult:
        """Store ``result`` unless the workflow has one already; return the stored one."""
        try:
            await self._bucket.create(result.workflow_id, result)
        except Conflict:
            entry = await self._bucket.get_or_none(result.workflow_id)
            if entry is not None:
                log.info("agent task %s already has a result", result.workflow_id)
                return entry.value
            await self._bucket.put(result.workflow_id, result)
        return result


class AgentReports:
    """Publishes the status events of agent tasks and stores their results.

    Args:
        bus: the owner's bus.
        source: the ``source`` of its workflow transitions.
        results: where results go.
    """

    def __init__(self, bus: Bus, source: str, results: AgentResults) -> None:
        self._bus = bus
        self._source = source
        self._results = results

    def transition(
        self, workflow_id: str, state: WorkflowState, at: float, **fields: Any
    ) -> WorkflowTransition:
        """Return a workflow transition of an agent task."""
        return WorkflowTransition(
            workflow_id=workflow_id, state=state, at=at, source=self._source, **fields
        )

    async def emit(self, event: StatusEvent) -> None:
        """Publish ``event``, de-duplicated by what it says (a repeat changes nothing)."""
        kind = type(event).__name__
        step = getattr(event, "step", "")
        state = getattr(event, "state", "")
        await self._bus.send(
            event_subject(event.workflow_id),
            event,
            msg_id=f"{event.workflow_id}.agent.{kind}.{step}.{state}.{event.attempt}",
        )

    async def end(
        self,
        assignment: AgentAssignment,
        state: Literal["succeeded", "failed"],
        at: float,
        *,
        result: TaskResult | None = None,
        reason: str = "",
        error_class: ErrorClass | None = None,
        step: bool = True,
    ) -> None:
        """End an agent task: store its result, then report its step and workflow.

        Args:
            assignment: the task's assignment.
            state: how it ended.
            at: Unix time it ended.
            result: the agent's report, if one arrived.
            reason: why it failed without a report.
            error_class: classification of that failure.
            step: whether the task has its capability step (not when the
                requirement did not even parse: the result then has no step).
        """
        made = agent_result(
            assignment, state, at, result=result, reason=reason, error_class=error_class
        )
        stored = await self._results.store(
            made if step else msgspec.structs.replace(made, steps=[])
        )
        # Report what is stored: after a crash mid-way it may be an earlier result.
        final: Literal["succeeded", "failed"] = (
            "succeeded" if stored.state == "succeeded" else "failed"
        )
        attempt = max(assignment.attempt, 1)
        done = stored.steps[0] if stored.steps else None
        if done is not None and done.output:
            await self.emit(
                StepProgress(
                    workflow_id=assignment.workflow_id,
                    step=assignment.capability,
                    at=at,
                    attempt=attempt,
                    message={"agent": done.agent_id, "output": done.output},
                )
            )
        if step:
            await self.emit(
                StepTransition(
                    workflow_id=assignment.workflow_id,
                    step=assignment.capability,
                    state=final,
                    at=at,
                    attempt=attempt,
                    reason=stored.reason,
                    error_class=stored.error_class,
                )
            )
        await self.emit(
            self.transition(
                assignment.workflow_id,
                final,
                at,
                attempt=attempt,
                reason=stored.reason,
                error_class=stored.error_class,
            )
        )
