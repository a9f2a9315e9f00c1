"""Status events of one pipeline run, published to the status stream.

Transitions carry a de-duplication id (workflow, attempt, step, state), so a
redelivered run that announces a transition again is dropped by the stream
inside its window; the status tracker's idempotent folding handles the rest.
Progress reports are best effort (a core publish the stream captures, no
acknowledgement awaited): losing one never fails or slows a step.
"""

from __future__ import annotations

import logging
from typing import Any

import nats.errors

from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock
from actors.runtime.errors import RequestError
from protocols.errors import ErrorClass
from protocols.pipelines import PipelineRun, StepAttemptReason
from protocols.status import (
    StepProgress,
    StepState,
    StepTransition,
    WorkflowState,
    WorkflowTransition,
    event_subject,
)

__all__ = ["RunEvents"]

log = logging.getLogger(__name__)

SOURCE = "pipeline_runner"


class RunEvents:
    """Publishes the status events of one run.

    Args:
        bus: connected bus.
        run: the run.
        clock: time source of ``at``.
        delivery: delivery count of the run's message; non-terminal workflow
            transitions of a redelivery are new events (the workflow may have been
            ``retrying`` in between), terminal ones are the same event.
    """

    def __init__(self, bus: Bus, run: PipelineRun, clock: Clock, delivery: int = 1) -> None:
        self._bus = bus
        self._delivery = delivery
        self._run = run
        self._clock = clock
        self._subject = event_subject(run.workflow_id)

    def _id(self, *parts: object) -> str:
        return ":".join(str(p) for p in (self._run.workflow_id, self._run.attempt, *parts))

    async def workflow(
        self,
        state: WorkflowState,
        *,
        reason: str = "",
        error_class: ErrorClass | None = None,
        next_attempt_at: float | None = None,
        attempt: int | None = None,
    ) -> None:
        """Announce a workflow transition (waits for the stream's acknowledgement)."""
        run = self._run
        event = WorkflowTransition(
            workflow_id=run.workflow_id,
            state=state,
            at=self._clock.time(),
            source=SOURCE,
            attempt=attempt or run.attempt,
            round=self._delivery,
            reason=reason,
            error_class=error_class,
            template=run.template,
            steps=[s.name for s in run.pipeline.steps],
            trace_id=telemetry.current_trace_id(),
            next_attempt_at=next_attempt_at,
            deadline=run.deadline,
        )
        terminal = state in ("succeeded", "failed", "cancelled", "timed_out")
        parts: tuple[object, ...] = ("wf", state, attempt or run.attempt)
        await self._bus.send(
            self._subject, event, msg_id=self._id(*parts if terminal else (*parts, self._delivery))
        )

    async def step(
        self,
        name: str,
        state: StepState,
        *,
        exit_code: int | None = None,
        duration_s: float | None = None,
        cache_hit: bool = False,
        reason: str = "",
        error_class: ErrorClass | None = None,
        execution: int = 1,
        attempt_reason: StepAttemptReason = "first",
    ) -> None:
        """Announce a step transition (waits for the stream's acknowledgement).

        ``execution`` is the step's attempt (persisted before it starts), so each
        attempt's transitions are distinct events, never dropped as duplicates.
        """
        event = StepTransition(
            workflow_id=self._run.workflow_id,
            step=name,
            state=state,
            at=self._clock.time(),
            attempt=self._run.attempt,
            exit_code=exit_code,
            duration_s=duration_s,
            cache_hit=cache_hit,
            reason=reason,
            error_class=error_class,
            step_attempt=execution,
            attempt_reason=attempt_reason,
        )
        await self._bus.send(self._subject, event, msg_id=self._id("step", name, execution, state))

    async def progress(
        self, name: str, *, percent: float | None = None, message: dict[str, Any] | None = None
    ) -> None:
        """Report a step's progress or message; failures are logged, not raised."""
        event = StepProgress(
            workflow_id=self._run.workflow_id,
            step=name,
            at=self._clock.time(),
            percent=percent,
            message=message,
            attempt=self._run.attempt,
        )
        try:
            # A core publish is still captured by the stream, without waiting for its ack.
            await self._bus.publish(self._subject, event)
        except (RequestError, nats.errors.Error, OSError) as exc:
            log.debug("progress of %s/%s not published: %s", self._run.workflow_id, name, exc)
