"""Execution of one pipeline run: steps in dependency order, retries, checkpoints.

A run resumes from its checkpoint: steps that succeeded before a crash are
not executed again; their outputs come back from the artifact store. Ready
steps then start (bounded by the runner's parallelism), each through the
per-step pipeline of :mod:`actors.pipeline_runner.steps`; each finished step
is recorded in the checkpoint - persisted before the next step that depends on
it starts - and a failure either plans a retry or decides the run.
A fenced run (its lease lost) records and announces nothing more and ends
with :class:`~actors.pipeline_runner.leases.LeaseLost`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from actors.breaker_supervisor.client import (
    CIRCUIT_OPEN,
    NO_RETRY,
    POLICIES,
    policy_named,
    with_pipeline_policies,
)
from actors.pipeline_runner.attempts import Holder, StepAttempts
from actors.pipeline_runner.backends import BackendChoice, StopSignal
from actors.pipeline_runner.context import Outcome, RunContext
from actors.pipeline_runner.events import RunEvents
from actors.pipeline_runner.leases import LeaseLost
from actors.pipeline_runner.outcome import decide, is_failure
from actors.pipeline_runner.state import DEPENDENCY_FAILED, Schedule
from actors.pipeline_runner.steps import StepPipeline
from actors.pipeline_runner.workspace import Workspace
from actors.runtime.errors import ConfigError
from actors.runtime.kv import Entry
from protocols.pipelines import PipelineResult, PipelineRun, RunCheckpoint, StepOutcome, StepResult

__all__ = ["RunExecution"]

log = logging.getLogger(__name__)


class RunExecution(StepPipeline):
    """Runs one :class:`PipelineRun` to its end (see the module docstring).

    Args:
        run: the run.
        ctx: shared runner state.
        events: status event publisher of the run.
        stop: cancellation / deadline signal.
        holder: this runner's hold on the run (its leases and fencing token).
    """

    def __init__(
        self,
        run: PipelineRun,
        ctx: RunContext,
        events: RunEvents,
        stop: StopSignal,
        holder: Holder | None = None,
    ) -> None:
        self.run = run
        self.ctx = ctx
        self.events = events
        self.stop = stop
        self.workspace = Workspace(ctx.config.workspace_root, run.workflow_id)
        self.schedule = Schedule(run.pipeline, run.order)
        self.results: dict[str, StepResult] = {}
        self.attempts = StepAttempts(
            run.workflow_id, ctx.store, holder or Holder(runner=""), stop, ctx.clock
        )
        self.choice: BackendChoice | None = None
        self._retry: tuple[float, str] | None = None
        self._failure: StepResult | None = None
        """The first step failure the run does not retry: it decides the run."""
        self._open_until: dict[str, float | None] = {}
        """Per step refused by an open breaker: when that breaker half-opens."""
        self._caching = []

    @property
    def checkpoint(self) -> RunCheckpoint | None:
        """The run's checkpoint as recorded so far."""
        return self.attempts.checkpoint

    async def execute(
        self, checkpoint: Entry[RunCheckpoint] | Literal[False] | None = False
    ) -> Outcome:
        """Run the pipeline; return its result or the retry to schedule.

        Args:
            checkpoint: the run's checkpoint entry as read with the run lease held
                (``False``: read it first).

        Raises:
            LeaseLost: the run was fenced (another runner holds it now).
        """
        run, ctx = self.run, self.ctx
        previous = await self.attempts.load(run.attempt, read=checkpoint)
        self.choice = await ctx.backends.choose(self._requested(run.pipeline.backend))
        log.info(
            "workflow %s: backend %s (%s)",
            run.workflow_id,
            self.choice.backend.name,
            self.choice.note,
        )
        self.attempts.checkpoint = previous or RunCheckpoint(
            workflow_id=run.workflow_id,
            attempt=run.attempt,
            started_at=ctx.clock.time(),
            backend=self.choice.backend.name,
        )
        if previous is None:
            # The checkpoint is first written when a step starts or ends: a redelivery
            # after a crash before that has nothing to resume and prepares afresh.
            # Both are stored while the first steps' intents and leases are written; each
            # step's own `running` follows them in the stream.
            await self.events.workflow("preparing", wait=False)
            await self.events.workflow("running", wait=False)
        else:
            await self.attempts.recover()
            await self._resume(previous)
            await self.events.workflow("running")
        watchdog = asyncio.create_task(self._watch_deadline())
        try:
            await self._drive()
            await self.events.settle()
        finally:
            watchdog.cancel()
            await self.attempts.abandon()
            await self._cached()
        if self.attempts.fenced:
            raise LeaseLost(self.attempts.fenced)
        return self._outcome()

    async def _resume(self, previous: RunCheckpoint | None) -> None:
        """Take back the steps a crashed delivery finished, restoring their outputs."""
        if previous is None:
            return
        for result in previous.steps:
            if result.state != "succeeded" or result.name in self.results:
                continue
            try:
                await self._restore(result)
            except LookupError as exc:
                log.warning(
                    "workflow %s: step %s runs again: %s", self.run.workflow_id, result.name, exc
                )
                continue
            self.results[result.name] = result
            self.schedule.finish(result.name, "succeeded")
            self.ctx.count("steps_resumed")
            # Announced again in case the crash came before the tracker saw it (deduplicated).
            await self.events.step(
                result.name,
                "succeeded",
                exit_code=result.exit_code,
                duration_s=result.duration_s,
                cache_hit=result.cache_hit,
                execution=self.checkpoint_attempts(result.name),
            )

    async def _watch_deadline(self) -> None:
        deadline = self.run.deadline
        if deadline is None:
            return
        await self.ctx.clock.sleep(max(0.0, deadline - self.ctx.clock.time()))
        self.stop.stop("timed_out", "workflow deadline passed")

    async def _drive(self) -> None:
        """Start ready steps (bounded), record each end, until nothing can start."""
        schedule = self.schedule
        running: dict[asyncio.Task[StepResult], str] = {}
        limit = self.ctx.config.parallel_steps
        try:
            while True:
                # Once stopped, what has not run ends as the stop says, not as skipped.
                # While a retry is planned, steps needing the failed step stay pending.
                waiting = self.stop.stopped or (self._retry is not None and self._failure is None)
                for name in [] if waiting else schedule.blocked():
                    await self._record(
                        StepResult(
                            name=name,
                            state="skipped",
                            reason=DEPENDENCY_FAILED,
                            backend=self._backend_name(),
                        )
                    )
                if not self.stop.stopped and self._retry is None and self._failure is None:
                    for name in schedule.ready()[: max(0, limit - len(running))]:
                        schedule.start(name)
                        running[asyncio.create_task(self._step(name))] = name
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.pop(task)
                    await self._record(task.result())
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=10.0)
        await self._close_pending()

    async def _close_pending(self) -> None:
        """Record how the steps that never started end (none, when a retry runs them)."""
        schedule = self.schedule
        if self._retry is not None and self._failure is None and not self.stop.stopped:
            return  # what has not run stays pending: the retry runs it
        blocked = set(schedule.blocked())
        for name in schedule.pending():
            state: StepOutcome = "skipped"
            reason = f"step {self._failure.name} failed" if self._failure else self.stop.reason
            if self._failure is not None and name in blocked:
                reason = DEPENDENCY_FAILED
            if self._failure is None and self.stop.kind == "cancelled":
                state = "cancelled"
            await self._record(
                StepResult(name=name, state=state, reason=reason, backend=self._backend_name()),
                announce=True,
            )

    def _backend_name(self) -> str:
        return self.choice.backend.name if self.choice else "local"

    async def _record(self, result: StepResult, *, announce: bool = False) -> None:
        """Keep a finished step's result, durably, before anything depends on it."""
        if self.attempts.fenced:
            return  # another runner owns the run now: nothing of this one counts
        if announce or result.state == "skipped":
            # A step that never started here: its outcome follows its last attempt.
            await self.events.step(
                result.name,
                result.state,
                reason=result.reason,
                error_class=result.error_class,
                execution=self.checkpoint_attempts(result.name) + 1,
            )
        self.results[result.name] = result
        self.schedule.finish(result.name, result.state)
        try:
            await self.attempts.finish(result)
        except LeaseLost:
            return
        stopped = self.stop.stopped
        if self._failure is None and not stopped and is_failure(result, stopped=stopped):
            self._plan_retry(result)

    def _plan_retry(self, result: StepResult) -> None:
        """Plan the retry of a failed step, or let the failure decide the run at once."""
        delay = self._retry_delay(result)
        if delay is None:
            self._failure, self._retry = result, None
            # The run is failed: steps still running are stopped, none starts.
            self.stop.stop("cancelled", f"step {result.name} failed")
        elif self._retry is None or delay > self._retry[0]:
            self._retry = (delay, result.name)

    def _retry_delay(self, result: StepResult) -> float | None:
        step = self.schedule.step(result.name)
        try:
            known = with_pipeline_policies(self.run.pipeline.retry_policies)
        except ConfigError as exc:
            log.warning("workflow %s: %s", self.run.workflow_id, exc)
            known = POLICIES
        try:
            policy = policy_named(step.retry, known) if step.retry else NO_RETRY
        except ConfigError as exc:
            log.warning("workflow %s: %s", self.run.workflow_id, exc)
            return None
        attempt = self.checkpoint_attempts(result.name)
        assert self.checkpoint is not None
        elapsed = self.ctx.clock.time() - self.checkpoint.started_at
        delay = policy.next_delay(attempt, result.error_class, elapsed=elapsed)
        open_until = self._open_until.get(result.name)
        circuit_open = result.reason.startswith(CIRCUIT_OPEN)
        if delay is not None and circuit_open and open_until is not None:
            # Waiting per policy: the next attempt is not before the breaker half-opens.
            delay = max(delay, open_until - self.ctx.clock.time())
            if policy.deadline is not None and elapsed + delay > policy.deadline:
                delay = None
        return delay

    def _outcome(self) -> Outcome:
        assert self.checkpoint is not None
        ordered = list(self.results.values())
        stop = (self.stop.kind or "cancelled", self.stop.reason) if self.stop.stopped else None
        state, reason, error_class = decide(ordered, failure=self._failure, stop=stop)
        result = PipelineResult(
            workflow_id=self.run.workflow_id,
            state=state,
            steps=ordered,
            started_at=self.checkpoint.started_at,
            finished_at=self.ctx.clock.time(),
            backend=self._backend_name(),
            backend_note=self.choice.note if self.choice else "",
            reason=reason,
            error_class=error_class,
            attempt=self.run.attempt,
        )
        if self._retry is not None and self._failure is None and not self.stop.stopped:
            return Outcome(result, retry_delay=self._retry[0], retry_step=self._retry[1])
        return Outcome(result)
