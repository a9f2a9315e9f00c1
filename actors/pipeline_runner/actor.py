"""The pipeline runner actor: consumes pipeline runs, executes them, stores their results.

Any number of replicas share the durable consumer ``pipeline-runner`` on the
pipelines work-queue stream. A run is acknowledged only after its
:class:`~protocols.pipelines.PipelineResult` is stored and its terminal
transition published; a crash before that means redelivery, and the run
resumes from its checkpoint (see :mod:`actors.pipeline_runner.execution`).
The runtime keeps a long run's message alive with ``in_progress``.

One execution per workflow at a time: a delivery of a workflow this process
already executes waits for that execution, and across processes the run
lease (:mod:`actors.pipeline_runner.leases`) admits one runner; a delivery
finding it held waits until it is released or expires with its runner. A run
that loses its lease is fenced and its delivery handed back.

Handlers:

* ``run`` (stream) - execute a :class:`~protocols.pipelines.PipelineRun`;
* ``cancel`` (fan-out, every replica) - stop the processes of a workflow held here;
* ``stop-execution`` (fan-out) - stop a step executed here (its workflow ends cancelled);
* ``result`` (request) - answer :class:`~protocols.pipelines.GetResult`;
* ``clear-cache`` (request) and ``cache-cleared`` (fan-out) - empty the step cache.

Consumer options (concurrency, ack wait, deliveries) come from each runner's
:class:`RunnerConfig` (read from the environment when none is given).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any

import msgspec

from actors.breaker_supervisor.client import BreakerView, OutcomeReporter
from actors.feature_flags.client import LiveFlags
from actors.pipeline_runner.attempts import Holder
from actors.pipeline_runner.backends import Backends, DaggerBackend, LocalBackend, StopSignal
from actors.pipeline_runner.backends.local import step_user
from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.config import RunnerConfig
from actors.pipeline_runner.context import RunContext
from actors.pipeline_runner.events import RunEvents
from actors.pipeline_runner.execution import RunExecution
from actors.pipeline_runner.leases import Lease, LeaseHeld, LeaseKeeper, LeaseLost, Leases
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
from actors.runtime.kv import Entry, TypedBucket
from actors.runtime.overlap import overlapped
from actors.topology import (
    ARTIFACTS,
    BREAKER_REPORTS,
    BREAKERS,
    CHECKPOINTS,
    FLAGS,
    LEASES,
    PIPELINES,
    RESULTS,
    STATUS_EVENTS,
    STEP_CACHE,
    WORKFLOWS,
)
from protocols.flags import BACKEND_FLAG, Flag
from protocols.pipelines import (
    CACHE_CLEAR_SUBJECT,
    CACHE_CLEARED_SUBJECT,
    CANCEL_SUBJECT,
    EXECUTION_STOP_SUBJECT,
    RESULT_SUBJECT,
    CacheCleared,
    CachedStep,
    CancelRun,
    ClearCache,
    GetResult,
    PipelineResult,
    PipelineRun,
    RunCheckpoint,
    StepLease,
    StopExecution,
    run_lease_key,
)
from protocols.status import WorkflowView

__all__ = ["PipelineRunner"]

log = logging.getLogger(__name__)

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
    buckets = (RESULTS, CHECKPOINTS, LEASES, STEP_CACHE, WORKFLOWS, BREAKERS, FLAGS)
    object_stores = (ARTIFACTS,)

    def __init__(self, *, config: RunnerConfig | None = None, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.config = config if config is not None else RunnerConfig.from_env()
        self._ctx: RunContext | None = None
        self._active: dict[str, StopSignal] = {}
        self._running: dict[str, asyncio.Event] = {}
        """Workflows this process executes now: set when that execution ends."""
        self.runner_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """This runner process's id, written in the leases it holds."""
        self._leases: Leases | None = None
        self._cancelled: dict[str, tuple[float, str]] = {}
        self._view: BreakerView | None = None
        self.flags = LiveFlags()
        """Feature flags as last seen; :data:`BACKEND_FLAG` picks the backend of ``auto`` runs."""
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
            await TypedBucket.bind(bus, STEP_CACHE, CachedStep),
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
                user=step_user(cfg.step_user),
                workspace_root=cfg.workspace_root,
            ),
            DaggerBackend(clock=self.clock, tail_lines=cfg.tail_lines),
            clock=self.clock,
            probe_ttl=cfg.engine_probe_ttl,
        )
        self._leases = Leases(
            await TypedBucket.bind(bus, LEASES, StepLease),
            ttl=cfg.lease_ttl,
            clock=self.runtime_clock,
        )
        await self.add_watch(FLAGS, self.flags.on_entry, value_type=Flag, name="watch-flags")
        self._view = BreakerView(bus, self.clock, owner=f"pipeline-runner-{id(self):x}")
        await self._view.start()
        self._reporter = OutcomeReporter(
            bus,
            self.clock,
            batch_max=cfg.report_batch_max,
            batch_s=cfg.report_batch_s,
            runtime_clock=self.runtime_clock,
        )
        await self._reporter.start()
        self._ctx = RunContext(
            config=cfg,
            backends=backends,
            cache=cache,
            store=store,
            clock=self.clock,
            gate=self._view,
            reporter=self._reporter,
            bus=bus,
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
        backoff=(1.0, 5.0, 15.0, 30.0),
        options=lambda self: {
            "concurrency": self.config.concurrent_runs,
            "ack_wait": self.config.ack_wait,
            "max_deliver": self.config.max_deliver,
        },
    )
    async def run(self, run: PipelineRun, ctx: MessageContext) -> None:
        """Execute one pipeline run; return (acknowledge) once its result is durable."""
        run = self._with_rollout(run)
        wf = run.workflow_id
        while (running := self._running.get(wf)) is not None:
            # A second delivery (after a server restart, say) while this process
            # still executes the workflow: never a second execution beside it.
            log.info("workflow %s already executing here; this delivery waits for it", wf)
            self.context.count("runs_waited")
            await running.wait()
        self._running[wf] = asyncio.Event()
        try:
            await self._run_once(run, ctx)
        finally:
            self._running.pop(wf).set()

    def _with_rollout(self, run: PipelineRun) -> PipelineRun:
        """Let :data:`BACKEND_FLAG` pick the backend of a pipeline that names none (``auto``)."""
        if run.pipeline.backend != "auto":
            return run
        chosen = self.flags.value(BACKEND_FLAG, run.workflow_id, template=run.template)
        if chosen not in ("local", "dagger"):
            return run
        pipeline = msgspec.structs.replace(run.pipeline, backend=chosen)
        return msgspec.structs.replace(run, pipeline=pipeline)

    async def _run_once(self, run: PipelineRun, ctx: MessageContext) -> None:
        wf = run.workflow_id
        events = RunEvents(self.bus, run, self.clock, ctx.num_delivered)
        # A redelivery may find its run done (its result stored, or its workflow ended)
        # and is acknowledged without waiting for the run lease. A first delivery is
        # checked once, below, with the lease held: the same two reads would only repeat.
        rc = self.context
        if ctx.num_delivered > 1:
            stored, view = await overlapped(rc.store.result(wf), rc.store.view(wf))
            if await self._finished(run, events, stored, view):
                return
        lease = await self._hold_run(wf)
        try:
            # Checked with the lease held: another delivery may have finished the run,
            # or the workflow may have been cancelled, before this one got the lease.
            # The checkpoint a run resumes from is read at the same time.
            stored, view, checkpoint = await overlapped(
                rc.store.result(wf), rc.store.view(wf), rc.store.checkpoint_entry(wf)
            )
            if await self._finished(run, events, stored, view):
                return
            await self._execute(run, events, lease, checkpoint)
        finally:
            if self._leases is not None:
                await self._leases.release(lease)

    async def _hold_run(self, wf: str) -> Lease:
        """Take the workflow's run lease, waiting while another runner holds it."""
        assert self._leases is not None
        value = StepLease(
            workflow_id=wf, runner=self.runner_id, token=0, acquired_at=self.clock.time()
        )
        while True:
            try:
                return await self._leases.acquire(run_lease_key(wf), value)
            except LeaseHeld as exc:
                log.info("workflow %s: %s; waiting until it is released or expires", wf, exc)
                self.context.count("runs_waited")
                await self._leases.wait_free(run_lease_key(wf))

    async def _finished(
        self,
        run: PipelineRun,
        events: RunEvents,
        stored: PipelineResult | None,
        view: WorkflowView | None,
    ) -> bool:
        """Whether the run needs no execution (its result is stored, or it ended)."""
        rc = self.context
        wf = run.workflow_id
        if stored is not None and stored.attempt >= run.attempt:
            log.info("workflow %s: result already stored (%s); acknowledging", wf, stored.state)
            await events.workflow(
                stored.state, reason=stored.reason, error_class=stored.error_class
            )
            return True
        if view is not None and (
            view.state in ("cancelled", "timed_out", "rejected")
            or (view.state in ("succeeded", "failed") and view.attempt >= run.attempt)
        ):
            log.info("workflow %s already %s; skipping its run", wf, view.state)
            rc.count("runs_skipped")
            return True
        return False

    async def _execute(
        self,
        run: PipelineRun,
        events: RunEvents,
        lease: Lease,
        checkpoint: Entry[RunCheckpoint] | None,
    ) -> None:
        """Execute a run this runner holds the lease of; store its result or plan its retry."""
        rc = self.context
        wf = run.workflow_id
        assert self._leases is not None
        stop = StopSignal()
        remembered = self._cancelled.get(wf)
        if remembered is not None:
            stop.stop("cancelled", remembered[1])
        if run.deadline is not None and self.clock.time() >= run.deadline:
            stop.stop("timed_out", "workflow deadline passed before it started")
        self._active[wf] = stop
        execution: RunExecution | None = None

        def lost(_: Lease, why: str) -> None:
            if execution is not None:
                execution.attempts.fence(why)

        keeper = LeaseKeeper(self._leases, lost)
        keeper.hold(lease)
        holder = Holder(
            runner=self.runner_id, token=lease.revision, leases=self._leases, keeper=keeper
        )
        execution = RunExecution(run, rc, events, stop, holder)
        keeper.start()
        try:
            await self._conclude(run, events, execution, checkpoint)
        finally:
            await keeper.stop()
            self._active.pop(wf, None)

    async def _conclude(
        self,
        run: PipelineRun,
        events: RunEvents,
        execution: RunExecution,
        checkpoint: Entry[RunCheckpoint] | None,
    ) -> None:
        """Execute the run; store its result or plan its retry (the run lease still renewed)."""
        rc = self.context
        wf = run.workflow_id
        try:
            outcome = await execution.execute(checkpoint)
        except LeaseLost as exc:
            rc.count("runs_fenced")
            # Another runner holds the run now (or will): hand this delivery back.
            raise RetryLater(self.config.lease_ttl, str(exc)) from None
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
        if self.config.keep_workspaces:
            await rc.store.drop_checkpoint(wf)
        else:
            workspace = Workspace(self.config.workspace_root, wf)
            await overlapped(rc.store.drop_checkpoint(wf), workspace.remove_off_loop())

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

    @listener(EXECUTION_STOP_SUBJECT)
    async def stop_execution(self, message: StopExecution, ctx: RequestContext) -> None:
        """Stop a step if this replica executes its workflow; the workflow ends cancelled."""
        stop = self._active.get(message.workflow_id)
        if stop is not None:
            why = f"step {message.step} {message.reason}"
            log.info("workflow %s: stopping (%s)", message.workflow_id, why)
            stop.stop("cancelled", why)

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
        """Remove the entries asked for from the shared tier; tell every runner to drop them."""
        answer = await self.context.cache.clear_for(request)
        await self.bus.publish(CACHE_CLEARED_SUBJECT, answer)
        return answer

    @listener(CACHE_CLEARED_SUBJECT)
    async def cache_cleared(self, message: CacheCleared, ctx: RequestContext) -> None:
        """Drop the cleared entries from the in-process cache tier."""
        self.context.cache.forget(message)
