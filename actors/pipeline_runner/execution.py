"""Execution of one pipeline run: steps in dependency order, cache, breakers, checkpoints.

A run resumes from its checkpoint: steps that succeeded before a crash are
not executed again; their outputs come back from the artifact store. Each
step then goes through, in order: input staging, the step cache, the
breakers of its backend and image, the backend, output collection and upload,
outcome reports, the cache, and finally the checkpoint - persisted before the
next step that depends on it starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from actors.breaker_supervisor.retry import NO_RETRY, policy_named
from actors.pipeline_runner.backends import (
    Backend,
    BackendChoice,
    Backends,
    BackendUnavailable,
    StepExecution,
    StepRequest,
    StopSignal,
)
from actors.pipeline_runner.backends.dagger import WORKDIR
from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.config import RunnerConfig
from actors.pipeline_runner.events import RunEvents
from actors.pipeline_runner.state import (
    DEPENDENCY_FAILED,
    LineEvent,
    Schedule,
    cache_key,
    command_argv,
    run_outcome,
)
from actors.pipeline_runner.store import RunStore
from actors.pipeline_runner.workspace import Workspace, WorkspaceError
from actors.runtime import telemetry
from actors.runtime.clock import Clock
from actors.runtime.errors import ConfigError
from protocols.errors import ErrorClass
from protocols.pipelines import (
    PipelineResult,
    PipelineRun,
    RunCheckpoint,
    RunOutcome,
    StepOutcome,
    StepResult,
    StepSpec,
)

__all__ = ["BreakerGate", "Outcome", "RunContext", "RunExecution", "breaker_keys"]

log = logging.getLogger(__name__)


class BreakerGate(Protocol):
    """The breaker check a runner passes before executing work (a local view)."""

    async def admit(self, key: str) -> bool:
        """Whether work guarded by ``key`` may run now."""
        ...


class Reporter(Protocol):
    """Queues outcome reports for the breaker supervisor."""

    def report(
        self,
        key: str,
        *,
        ok: bool,
        duration_s: float,
        error_class: ErrorClass | None = None,
        report_id: str = "",
    ) -> object:
        """Queue the outcome of one call guarded by ``key``."""
        ...


def breaker_keys(backend: str, image: str | None) -> list[str]:
    """Return the breaker keys guarding a step: its backend, and its image if any."""
    keys = [f"backend:{backend}"]
    if image:
        keys.append(f"image:{image}")
    return keys


@dataclass(slots=True)
class RunContext:
    """What every run of one runner shares."""

    config: RunnerConfig
    backends: Backends
    cache: StepCache
    store: RunStore
    clock: Clock
    gate: BreakerGate | None = None
    reporter: Reporter | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        """Add one to counter ``name`` (reported in ``$SRV.STATS``)."""
        self.counters[name] = self.counters.get(name, 0) + 1


@dataclass(slots=True)
class Outcome:
    """How a run ended: a result, or a retry to schedule."""

    result: PipelineResult
    retry_delay: float | None = None
    retry_step: str = ""


class RunExecution:
    """Runs one :class:`PipelineRun` to its end (see the module docstring).

    Args:
        run: the run.
        ctx: shared runner state.
        events: status event publisher of the run.
        stop: cancellation / deadline signal.
    """

    def __init__(
        self, run: PipelineRun, ctx: RunContext, events: RunEvents, stop: StopSignal
    ) -> None:
        self.run = run
        self.ctx = ctx
        self.events = events
        self.stop = stop
        self.workspace = Workspace(ctx.config.workspace_root, run.workflow_id)
        self.schedule = Schedule(run.pipeline, run.order)
        self.results: dict[str, StepResult] = {}
        self.checkpoint: RunCheckpoint | None = None
        self.choice: BackendChoice | None = None
        self._retry: tuple[float, str] | None = None
        self._open_until: dict[str, float | None] = {}
        """Per step refused by an open breaker: when that breaker half-opens."""

    async def execute(self) -> Outcome:
        """Run the pipeline; return its result or the retry to schedule."""
        run, ctx = self.run, self.ctx
        previous = await ctx.store.checkpoint(run.workflow_id)
        if previous is not None and previous.attempt != run.attempt:
            previous = None
        self.choice = await ctx.backends.choose(self._requested(run.pipeline.backend))
        log.info(
            "workflow %s: backend %s (%s)",
            run.workflow_id,
            self.choice.backend.name,
            self.choice.note,
        )
        self.checkpoint = previous or RunCheckpoint(
            workflow_id=run.workflow_id,
            attempt=run.attempt,
            started_at=ctx.clock.time(),
            backend=self.choice.backend.name,
        )
        if previous is None:
            await self.events.workflow("preparing")
            # From here on a redelivery knows it resumes (and does not announce preparing).
            await ctx.store.put_checkpoint(self.checkpoint)
        await self._resume(previous)
        await self.events.workflow("running")
        watchdog = asyncio.create_task(self._watch_deadline())
        try:
            await self._drive()
        finally:
            watchdog.cancel()
        return self._outcome()

    def _requested(self, hint: str | None) -> str:
        name = hint or "auto"
        return self.ctx.config.backend if name == "auto" else name

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

    def checkpoint_attempts(self, name: str) -> int:
        """Executions of step ``name`` started so far by this run."""
        assert self.checkpoint is not None
        return self.checkpoint.step_attempts.get(name, 0)

    async def _restore(self, result: StepResult) -> None:
        for ref in result.artifacts:
            data = await self.ctx.store.download(ref)
            self.workspace.restore_output(result.name, ref.name, data)

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
                for name in [] if self.stop.stopped else schedule.blocked():
                    await self._record(
                        StepResult(
                            name=name,
                            state="skipped",
                            reason=DEPENDENCY_FAILED,
                            backend=self._backend_name(),
                        )
                    )
                if not self.stop.stopped and self._retry is None:
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
        for name in schedule.pending():
            state: StepOutcome = "cancelled" if self.stop.kind == "cancelled" else "skipped"
            reason = self.stop.reason if self.stop.stopped else "retry scheduled"
            await self._record(
                StepResult(name=name, state=state, reason=reason, backend=self._backend_name()),
                announce=True,
            )

    def _backend_name(self) -> str:
        return self.choice.backend.name if self.choice else "local"

    async def _record(self, result: StepResult, *, announce: bool = False) -> None:
        """Keep a finished step's result, durably, before anything depends on it."""
        assert self.checkpoint is not None
        if announce or result.state == "skipped":
            await self.events.step(
                result.name,
                result.state,
                reason=result.reason,
                error_class=result.error_class,
                execution=self.checkpoint_attempts(result.name),
            )
        self.results[result.name] = result
        self.schedule.finish(result.name, result.state)
        steps = [s for s in self.checkpoint.steps if s.name != result.name] + [result]
        self.checkpoint = msgspec.structs.replace(self.checkpoint, steps=steps)
        await self.ctx.store.put_checkpoint(self.checkpoint)
        if result.state == "failed" and self._retry is None and not self.stop.stopped:
            self._plan_retry(result)

    def _plan_retry(self, result: StepResult) -> None:
        step = self.schedule.step(result.name)
        try:
            policy = policy_named(step.retry) if step.retry else NO_RETRY
        except ConfigError as exc:
            log.warning("workflow %s: %s", self.run.workflow_id, exc)
            return
        attempt = self.checkpoint_attempts(result.name)
        assert self.checkpoint is not None
        elapsed = self.ctx.clock.time() - self.checkpoint.started_at
        delay = policy.next_delay(attempt, result.error_class, elapsed=elapsed)
        open_until = self._open_until.get(result.name)
        if delay is not None and result.reason == "circuit_open" and open_until is not None:
            # Waiting per policy: the next attempt is not before the breaker half-opens.
            delay = max(delay, open_until - self.ctx.clock.time())
            if policy.deadline is not None and elapsed + delay > policy.deadline:
                delay = None
        if delay is not None:
            self._retry = (delay, result.name)

    def _outcome(self) -> Outcome:
        assert self.checkpoint is not None
        ordered = list(self.results.values())
        state: RunOutcome
        if self.stop.stopped:
            state, reason = self.stop.kind or "cancelled", self.stop.reason
            error_class: ErrorClass | None = "cancelled" if state == "cancelled" else "timeout"
        else:
            state, reason, error_class = run_outcome(ordered)
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
        if self._retry is not None and not self.stop.stopped:
            return Outcome(result, retry_delay=self._retry[0], retry_step=self._retry[1])
        return Outcome(result)

    # -- one step ------------------------------------------------------------------

    async def _step(self, name: str) -> StepResult:
        step = self.schedule.step(name)
        choice = await self.ctx.backends.choose(
            self._requested(step.backend or self.run.pipeline.backend)
        )
        backend = choice.backend
        base = StepResult(name=name, state="failed", backend=backend.name)
        try:
            digests = self.workspace.stage_inputs(step, self.schedule.producers(name))
        except WorkspaceError as exc:
            return await self._finish(base, reason=str(exc), error_class="permanent")
        key = cache_key(
            backend=backend.name,
            image=step.image,
            run=step.run,
            env=step.env,
            inputs=digests,
            outputs=step.outputs,
        )
        if step.cache:
            hit = await self._from_cache(name, key)
            if hit is not None:
                return hit
        keys = breaker_keys(backend.name, step.image)
        if self.ctx.gate is not None:
            for k in keys:
                if not await self.ctx.gate.admit(k):
                    self.ctx.count("steps_circuit_open")
                    # A refused admission counts as an attempt, so a retry policy that
                    # waits for the breaker (retries "unavailable") stays bounded.
                    assert self.checkpoint is not None
                    refused = dict(self.checkpoint.step_attempts)
                    refused[name] = refused.get(name, 0) + 1
                    self.checkpoint = msgspec.structs.replace(
                        self.checkpoint, step_attempts=refused
                    )
                    retry_at = getattr(self.ctx.gate, "retry_at", None)
                    self._open_until[name] = retry_at(k) if callable(retry_at) else None
                    return await self._finish(
                        base, reason="circuit_open", error_class="unavailable"
                    )
        assert self.checkpoint is not None
        attempts = dict(self.checkpoint.step_attempts)
        attempts[name] = attempts.get(name, 0) + 1
        self.checkpoint = msgspec.structs.replace(self.checkpoint, step_attempts=attempts)
        execution_no = attempts[name]
        await self.events.step(name, "running", execution=execution_no)
        local = backend.name == "local"
        workdir = self.workspace.step_dir(name)
        request = StepRequest(
            workflow_id=self.run.workflow_id,
            step=step,
            argv=command_argv(step.run),
            env=self._environment(name, str(workdir) if local else WORKDIR, local, step.env),
            workdir=workdir,
            timeout=step.timeout or self.ctx.config.default_step_timeout or None,
        )
        result = await self._execute(step, backend, request, base)
        if self.ctx.reporter is not None and result.state != "cancelled":
            for k in keys:
                self.ctx.reporter.report(
                    k,
                    ok=result.state == "succeeded",
                    duration_s=result.duration_s,
                    error_class=result.error_class,
                )
        if result.state == "succeeded" and step.cache:
            await self.ctx.cache.put(key, result)
        return await self._finish(result, announce_only=True, execution=execution_no)

    async def _from_cache(self, name: str, key: str) -> StepResult | None:
        """Serve a step from the cache, outputs restored; ``None`` on a miss."""
        cached = await self.ctx.cache.get(key)
        if cached is None:
            return None
        try:
            await self._restore(cached)
        except LookupError:
            return None
        self.ctx.count("steps_cached")
        hit = msgspec.structs.replace(cached, name=name, cache_hit=True)
        await self.events.step(
            name,
            "succeeded",
            exit_code=hit.exit_code,
            duration_s=0.0,
            cache_hit=True,
            execution=self.checkpoint_attempts(name) + 1,
        )
        return hit

    async def _execute(
        self, step: StepSpec, backend: Backend, request: StepRequest, base: StepResult
    ) -> StepResult:
        """Run the step on its backend, then collect and upload its outputs."""
        name = step.name

        async def forward(event: LineEvent) -> None:
            await self.events.progress(name, percent=event.percent, message=event.message)

        self.ctx.count("steps_executed")
        attributes = {
            "troupe.workflow_id": self.run.workflow_id,
            "troupe.step": name,
            "troupe.backend": backend.name,
        }
        with telemetry.tracer().start_as_current_span(f"step {name}", attributes=attributes):
            try:
                execution = await backend.execute(request, self.stop, forward)
            except BackendUnavailable as exc:
                execution = StepExecution(
                    state="failed", reason=str(exc), error_class="unavailable"
                )
        artifacts = []
        if execution.state == "succeeded":
            try:
                for rel, path in self.workspace.collect_outputs(step, execution.produced_in):
                    artifacts.append(await self.ctx.store.upload(rel, path))
            except WorkspaceError as exc:
                execution.state, execution.reason = "failed", str(exc)
                execution.error_class = "permanent"
        return msgspec.structs.replace(
            base,
            state=execution.state,
            exit_code=execution.exit_code,
            duration_s=round(execution.duration_s, 6),
            stdout_tail=execution.stdout_tail,
            stderr_tail=execution.stderr_tail,
            artifacts=artifacts,
            error_class=execution.error_class,
            reason=execution.reason,
        )

    async def _finish(
        self,
        result: StepResult,
        *,
        reason: str = "",
        error_class: ErrorClass | None = None,
        announce_only: bool = False,
        execution: int = 0,
    ) -> StepResult:
        if not announce_only:
            result = msgspec.structs.replace(result, reason=reason, error_class=error_class)
        await self.events.step(
            result.name,
            result.state,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            reason=result.reason,
            error_class=result.error_class,
            execution=execution or self.checkpoint_attempts(result.name) + 1,
        )
        return result

    def _environment(
        self, step: str, workspace: str, local: bool, own: dict[str, str]
    ) -> dict[str, str]:
        env = {
            "TROUPE_WORKFLOW_ID": self.run.workflow_id,
            "TROUPE_STEP": step,
            "TROUPE_ATTEMPT": str(self.run.attempt),
            "TROUPE_WORKSPACE": workspace,
        }
        if local:
            # Only what a step needs to find programs: the runner's own secrets stay out.
            env |= {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "HOME": workspace,
                "TMPDIR": workspace,
                "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1",
            }
        return env | own
