"""Status events of one pipeline run, published to the status stream.

Transitions carry a de-duplication id (workflow, attempt, step, state), so a
redelivered run that announces a transition again is dropped by the stream
inside its window; the status tracker's idempotent folding handles the rest.
Progress reports are best effort (a core publish the stream captures, no
acknowledgement awaited): losing one never fails or slows a step.

A transition announced with ``wait=False`` is sent in the background while the
run goes on (a step starts while its ``running`` is being stored); the
announcements of one run still reach the stream in the order they were made,
because every later one waits for those in the background first, and
:meth:`RunEvents.settle` waits for them all and raises the first failure. A run
that ends without settling (cancelled) leaves that failure logged at debug level.
"""

from __future__ import annotations

import asyncio
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


def _read_failure(sent: asyncio.Future[None]) -> None:
    """Mark a background announcement's failure as read: a run that settles still gets it
    raised, and one that ends first (cancelled, or failed otherwise) has reported why, so
    asyncio need not log it as never retrieved."""
    if not sent.cancelled() and sent.exception() is not None:
        log.debug("a background announcement was not stored: %r", sent.exception())


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
        self._behind: asyncio.Future[None] | None = None
        """The last announcement sent in the background (each waits for the one before)."""

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
        wait: bool = True,
    ) -> None:
        """Announce a workflow transition.

        With ``wait`` (the default) this returns once the stream acknowledged it;
        otherwise it is sent in the background (see the module docstring).
        """
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
        await self._announce(
            event, self._id(*parts if terminal else (*parts, self._delivery)), wait=wait
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
        wait: bool = True,
    ) -> None:
        """Announce a step transition (``wait`` as for :meth:`workflow`).

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
        await self._announce(event, self._id("step", name, execution, state), wait=wait)

    async def settle(self) -> None:
        """Wait until the announcements sent in the background are stored.

        Raises:
            Exception: the first one that could not be stored (later ones were not sent).
        """
        if self._behind is not None:
            await self._behind

    async def _announce(
        self, event: WorkflowTransition | StepTransition, msg_id: str, *, wait: bool
    ) -> None:
        before = self._behind
        if wait:
            if before is not None:
                await before
            await self._bus.send(self._subject, event, msg_id=msg_id)
        else:
            self._behind = asyncio.ensure_future(self._after(before, event, msg_id))
            self._behind.add_done_callback(_read_failure)

    async def _after(
        self,
        before: asyncio.Future[None] | None,
        event: WorkflowTransition | StepTransition,
        msg_id: str,
    ) -> None:
        if before is not None:
            await before
        await self._bus.send(self._subject, event, msg_id=msg_id)

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
