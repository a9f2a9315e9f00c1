"""The pipeline runner actor: consumes pipeline runs, executes them, stores their results.

Any number of replicas share the durable consumer ``pipeline-runner`` on the
pipelines work-queue stream. A run is acknowledged only after its
:class:`~protocols.pipelines.PipelineResult` is stored and its terminal
transition published; a crash before that means redelivery, and the run
resumes from its checkpoint (see :mod:`actors.pipeline_runner.execution`).
The runtime keeps a long run's message alive with ``in_progress``.

Handlers:

* ``run`` (stream) - execute a :class:`~protocols.pipelines.PipelineRun`;
* ``cancel`` (fan-out, every replica) - stop the processes of a workflow held here;
* ``result`` (request) - answer :class:`~protocols.pipelines.GetResult`;
* ``clear-cache`` (request) and ``cache-cleared`` (fan-out) - empty the step cache.

Consumer options (concurrency, ack wait) come from :class:`RunnerConfig`
read from the environment when this module is imported, since they are part
of the handler declaration.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.pipeline_runner.backends import Backends, DaggerBackend, LocalBackend, StopSignal
from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.config import RunnerConfig
from actors.pipeline_runner.events import RunEvents
from actors.pipeline_runner.execution import RunContext, RunExecution
from actors.pipeline_runner.store import RunStore
from actors.pipeline_runner.workspace import Workspace
from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock
from actors.runtime.errors import NotFound, RetryLater
from actors.runtime.handlers import (
    MessageContext,
    RequestContext,
    consumer,
    endpoint,
    listener,
)
from actors.topology import (
    ARTIFACTS,
    BREAKER_REPORTS,
    BREAKERS,
    CHECKPOINTS,
    PIPELINES,
    RESULTS,
    STATUS_EVENTS,
    STEP_CACHE,
    WORKFLOWS,
)
from protocols.pipelines import (
    CACHE_CLEAR_SUBJECT,
    CACHE_CLEARED_SUBJECT,
    CANCEL_SUBJECT,
    RESULT_SUBJECT,
    CacheCleared,
    CancelRun,
    ClearCache,
    GetResult,
    PipelineResult,
    PipelineRun,
)

__all__ = ["PipelineRunner"]

log = logging.getLogger(__name__)

_ENV_CONFIG = RunnerConfig.from_env()

_CANCEL_MEMORY = 600.0
"""Seconds a cancellation is remembered, for a run that reaches this replica later."""


class PipelineRunner(Actor):
    """Executes pipeline runs (see the module docstring).

    Args:
        config: runner configuration (from the environment by default).
        clock: time source.
    """

    name = "pipeline_runner"
    description = "Runs pipeline steps (local or Dagger), caches steps, stores results"
    streams = (PIPELINES, STATUS_EVENTS, BREAKER_REPORTS)
    buckets = (RESULTS, CHECKPOINTS, WORKFLOWS, BREAKERS)
    object_stores = (ARTIFACTS, STEP_CACHE)

    def __init__(self, *, config: RunnerConfig | None = None, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.config = config or _ENV_CONFIG
        self._ctx: RunContext | None = None
        self._active: dict[str, StopSignal] = {}
        self._cancelled: dict[str, tuple[float, str]] = {}
        self._view: BreakerView | None = None
        self._reporter: OutcomeReporter | None = None

    @property
    def context(self) -> RunContext:
        """Shared run state (while running)."""
        if self._ctx is None:
            raise RuntimeError("pipeline runner is not running")
        return self._ctx

    async def on_start(self) -> None:
        """Open the stores, the cache, the backends and the breaker view."""
        cfg = self.config
        cfg.workspace_root.mkdir(parents=True, exist_ok=True)
        bus = self.bus
        store = await RunStore.open(bus)
        cache = StepCache(
            await bus.object_store(STEP_CACHE),
            clock=self.clock,
            capacity=cfg.cache_entries,
            ttl=cfg.cache_ttl,
        )
        backends = Backends(
            LocalBackend(
                limits=cfg.limits,
                output_cap=cfg.output_cap_bytes,
                tail_lines=cfg.tail_lines,
                kill_grace=cfg.kill_grace,
                clock=self.clock,
            ),
            DaggerBackend(clock=self.clock, tail_lines=cfg.tail_lines),
            clock=self.clock,
            probe_ttl=cfg.engine_probe_ttl,
        )
        self._view = BreakerView(bus, self.clock, owner=f"pipeline-runner-{id(self):x}")
        await self._view.start()
        self._reporter = OutcomeReporter(bus, self.clock)
        await self._reporter.start()
        self._ctx = RunContext(
            config=cfg,
            backends=backends,
            cache=cache,
            store=store,
            clock=self.clock,
            gate=self._view,
            reporter=self._reporter,
        )

    async def on_stop(self) -> None:
        """Kill what still runs, flush outcome reports, stop watching breakers."""
        if self._ctx is not None:
            await self._ctx.backends.close()
        if self._reporter is not None:
            await self._reporter.stop()
        if self._view is not None:
            await self._view.stop()

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Cache hit/miss counters and step counters, on the consumer's endpoint."""
        if self._ctx is None:
            return {}
        data: dict[str, Any] = dict(self._ctx.cache.stats.as_dict())
        data.update(self._ctx.counters)
        data["runs_active"] = len(self._active)
        return {"pipeline-runner": data}

    # -- handlers --------------------------------------------------------------------

    @consumer(
        PIPELINES,
        durable="pipeline-runner",
        concurrency=_ENV_CONFIG.concurrent_runs,
        ack_wait=_ENV_CONFIG.ack_wait,
        max_deliver=_ENV_CONFIG.max_deliver,
        backoff=(1.0, 5.0, 15.0, 30.0),
    )
    async def run(self, run: PipelineRun, ctx: MessageContext) -> None:
        """Execute one pipeline run; return (acknowledge) once its result is durable."""
        rc = self.context
        wf = run.workflow_id
        events = RunEvents(self.bus, run, self.clock, ctx.num_delivered)
        stored = await rc.store.result(wf)
        if stored is not None and stored.attempt >= run.attempt:
            log.info("workflow %s: result already stored (%s); acknowledging", wf, stored.state)
            await events.workflow(
                stored.state, reason=stored.reason, error_class=stored.error_class
            )
            return
        view = await rc.store.view(wf)
        if view is not None and (
            view.state in ("cancelled", "timed_out", "rejected")
            or (view.state in ("succeeded", "failed") and view.attempt >= run.attempt)
        ):
            log.info("workflow %s already %s; skipping its run", wf, view.state)
            rc.count("runs_skipped")
            return
        stop = StopSignal()
        remembered = self._cancelled.get(wf)
        if remembered is not None:
            stop.stop("cancelled", remembered[1])
        if run.deadline is not None and self.clock.time() >= run.deadline:
            stop.stop("timed_out", "workflow deadline passed before it started")
        self._active[wf] = stop
        try:
            outcome = await RunExecution(run, rc, events, stop).execute()
        finally:
            self._active.pop(wf, None)
        result = outcome.result
        if outcome.retry_delay is not None:
            rc.count("runs_retried")
            await events.workflow(
                "retrying",
                reason=f"step {outcome.retry_step} failed: {result.reason}",
                error_class=result.error_class,
                next_attempt_at=self.clock.time() + outcome.retry_delay,
            )
            raise RetryLater(outcome.retry_delay, f"retry of step {outcome.retry_step}")
        await rc.store.put_result(result)
        await events.workflow(result.state, reason=result.reason, error_class=result.error_class)
        rc.count(f"runs_{result.state}")
        await rc.store.drop_checkpoint(wf)
        if not self.config.keep_workspaces:
            Workspace(self.config.workspace_root, wf).remove()

    @listener(CANCEL_SUBJECT)
    async def cancel(self, message: CancelRun, ctx: RequestContext) -> None:
        """Stop the workflow's steps if this replica runs it; remember it otherwise."""
        now = self.clock.monotonic()
        self._cancelled = {k: v for k, v in self._cancelled.items() if now - v[0] < _CANCEL_MEMORY}
        self._cancelled[message.workflow_id] = (now, message.reason)
        stop = self._active.get(message.workflow_id)
        if stop is not None:
            log.info("workflow %s: cancelling (%s)", message.workflow_id, message.reason)
            stop.stop("cancelled", message.reason)

    @endpoint(RESULT_SUBJECT, name="result")
    async def result(self, request: GetResult, ctx: RequestContext) -> PipelineResult:
        """Return the stored result of a workflow.

        Raises:
            NotFound: no result is stored for it (yet).
        """
        found = await self.context.store.result(request.workflow_id)
        if found is None:
            raise NotFound(f"no result for workflow {request.workflow_id}")
        return found

    @endpoint(CACHE_CLEAR_SUBJECT, name="clear-cache")
    async def clear_cache(self, request: ClearCache, ctx: RequestContext) -> CacheCleared:
        """Empty the shared cache tier and tell every runner to drop its own."""
        removed = await self.context.cache.clear()
        answer = CacheCleared(removed=removed)
        await self.bus.publish(CACHE_CLEARED_SUBJECT, answer)
        return answer

    @listener(CACHE_CLEARED_SUBJECT)
    async def cache_cleared(self, message: CacheCleared, ctx: RequestContext) -> None:
        """Drop the in-process cache tier."""
        self.context.cache.clear_local()
