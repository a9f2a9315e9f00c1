"""The pipeline one step of a run goes through, from its inputs to its outcome.

Each step goes through, in order: input staging, the step cache, the breakers
of its backend and image, the start of an attempt (intent persisted, step lease
taken: :mod:`actors.pipeline_runner.attempts`), the backend, output collection
and upload, outcome reports and the cache. :class:`StepPipeline` is the part of
:class:`~actors.pipeline_runner.execution.RunExecution` that does this; the run
records each step's result (see :mod:`actors.pipeline_runner.execution`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import msgspec

from actors.breaker_supervisor.client import breaker_ok, circuit_open_reason, step_breaker_keys
from actors.pipeline_runner.attempts import StepAttempts
from actors.pipeline_runner.backends import (
    Backend,
    BackendUnavailable,
    OutputSink,
    StepExecution,
    StepRequest,
    StopSignal,
)
from actors.pipeline_runner.backends.dagger import WORKDIR
from actors.pipeline_runner.context import RunContext
from actors.pipeline_runner.events import RunEvents
from actors.pipeline_runner.leases import LeaseLost
from actors.pipeline_runner.logs import LogPublisher
from actors.pipeline_runner.state import LineEvent, Schedule, cache_key, command_argv
from actors.pipeline_runner.workspace import Workspace, WorkspaceError, safe_relative
from actors.runtime import telemetry
from protocols.errors import ErrorClass
from protocols.pipelines import PipelineRun, StepAttemptReason, StepResult, StepSpec, step_key

__all__ = ["StepPipeline"]

log = logging.getLogger(__name__)


class StepPipeline:
    """Runs one step of a run: a base of :class:`~.execution.RunExecution`."""

    run: PipelineRun
    ctx: RunContext
    events: RunEvents
    stop: StopSignal
    workspace: Workspace
    schedule: Schedule
    attempts: StepAttempts
    _open_until: dict[str, float | None]
    _caching: list[asyncio.Task[None]]
    """Shared cache writes of this run's steps still in flight (see :meth:`_cached`)."""

    def _requested(self, hint: str | None) -> str:
        name = hint or "auto"
        return self.ctx.config.backend if name == "auto" else name

    def checkpoint_attempts(self, name: str) -> int:
        """Attempts of step ``name`` started so far by this run."""
        return self.attempts.count(name)

    async def _restore(self, result: StepResult) -> None:
        for ref in result.artifacts:
            dest = self.workspace.outputs_dir(result.name) / safe_relative(ref.name)
            await self.ctx.store.download_to(ref, dest)

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
        keys = step_breaker_keys(
            backend=backend.name,
            image=step.image,
            pipeline=self.run.pipeline.name,
            step=name,
            scope=step.breaker,
        )
        if self.ctx.gate is not None:
            for k in keys:
                if not await self.ctx.gate.admit(k):
                    self.ctx.count("steps_circuit_open")
                    # A refused admission counts as an attempt, so a retry policy that
                    # waits for the breaker (retries "unavailable") stays bounded.
                    self.attempts.refused(name)
                    retry_at = getattr(self.ctx.gate, "retry_at", None)
                    until = retry_at(k) if callable(retry_at) else None
                    self._open_until[name] = until
                    return await self._finish(
                        base, reason=circuit_open_reason(k, until), error_class="unavailable"
                    )

        async def started(number: int, reason: StepAttemptReason) -> None:
            await self.events.step(name, "running", execution=number, attempt_reason=reason)

        try:
            attempt = await self.attempts.begin(name, backend=backend.name, announce=started)
        except LeaseLost as exc:
            return msgspec.structs.replace(base, state="cancelled", reason=str(exc))
        execution_no = attempt.number
        local = backend.name == "local"
        workdir = self.workspace.step_dir(name)
        async with self._live_output(name, execution_no) as output:
            request = StepRequest(
                workflow_id=self.run.workflow_id,
                step=step,
                argv=command_argv(step.run),
                env=self._environment(
                    name, str(workdir) if local else WORKDIR, local, step.env, execution_no
                ),
                workdir=workdir,
                timeout=step.timeout or self.ctx.config.default_step_timeout or None,
                output=output,
            )
            result = await self._execute(step, backend, request, base)
        if self.attempts.fenced:
            return result  # killed because another runner owns the run: not an outcome
        result = msgspec.structs.replace(
            result, attempt=execution_no, attempt_reason=attempt.reason
        )
        if self.ctx.reporter is not None:
            for k in keys:
                # A command that ran proves backend and image work, whatever its exit.
                ok = breaker_ok(
                    k,
                    state=result.state,
                    exit_code=result.exit_code,
                    error_class=result.error_class,
                )
                if ok is not None:
                    self.ctx.reporter.report(
                        k,
                        ok=ok,
                        duration_s=result.duration_s,
                        error_class=None if ok else result.error_class,
                    )
        if result.state == "succeeded" and step.cache:
            # Written while the step is announced and recorded; the run's result
            # waits for it (see _cached), so an entry is shared before its result.
            put = self.ctx.cache.put(key, result, template=self.run.template)
            self._caching.append(asyncio.ensure_future(put))
        return await self._finish(result, announce_only=True, execution=execution_no)

    async def _cached(self) -> None:
        """Wait for the shared cache writes of the run's steps (each logs its own failure)."""
        pending, self._caching = self._caching, []
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.warning(
                    "workflow %s: a step cache write failed: %s", self.run.workflow_id, outcome
                )

    @contextlib.asynccontextmanager
    async def _live_output(self, name: str, attempt: int) -> AsyncIterator[OutputSink | None]:
        """Publish the step attempt's output lines live while the block runs (with a bus)."""
        if self.ctx.bus is None:
            yield None
            return
        live = LogPublisher(
            self.ctx.bus, self.run.workflow_id, name, attempt, clock=self.ctx.clock
        ).start()
        try:
            yield live.line
        finally:
            await live.close()

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
        with telemetry.internal_span(f"step {name}", attributes):
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
        attempt = self.attempts.attempt_of(result.name)
        # An executed step's end is stored while it is recorded (the run settles
        # its announcements before its result is stored).
        await self.events.step(
            result.name,
            result.state,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            reason=result.reason,
            error_class=result.error_class,
            execution=execution or self.checkpoint_attempts(result.name) + 1,
            attempt_reason=attempt.reason if attempt is not None else "first",
            wait=not announce_only,
        )
        return result

    def _environment(
        self, step: str, workspace: str, local: bool, own: dict[str, str], attempt: int
    ) -> dict[str, str]:
        env = {
            "TROUPE_WORKFLOW_ID": self.run.workflow_id,
            "TROUPE_STEP": step,
            # The step's own attempt; TROUPE_STEP_KEY is the same for every attempt.
            "TROUPE_ATTEMPT": str(attempt),
            "TROUPE_STEP_KEY": step_key(self.run.workflow_id, step),
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
