"""The status tracker actor: consumes status events, stores views, answers queries.

Wiring only; the state machine is :mod:`~actors.status_tracker.state`, storage
:mod:`~actors.status_tracker.store`, estimates :mod:`~actors.status_tracker.eta`.

* ``apply`` (durable consumer ``status-tracker`` on ``TROUPE_STATUS``): fold the
  event into the stored view with a revision-checked write, then announce the
  new view on ``troupe.status.updates.<id>``; on success, record the run's
  duration for its template's ETA.
* ``get`` / ``list`` (request/reply, in ``$SRV.INFO``): one view read from the
  bucket; pages of views from the in-memory index mirrored from the bucket.
* The deadline sweep: every ``sweep_interval_s`` of the injected clock, publish
  ``timed_out`` for every unfinished workflow past its deadline. The event goes
  through the stream like any other, so the history shows it and replicas
  racing on the same workflow still record one terminal state.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from actors.runtime.actor import Actor
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.errors import BadRequest, DeadLetter, NotFound, RetryLater, Unavailable
from actors.runtime.handlers import MessageContext, RequestContext, consumer, endpoint
from actors.status_tracker import eta
from actors.status_tracker import state as sm
from actors.status_tracker.config import TrackerConfig
from actors.status_tracker.index import WorkflowIndex
from actors.status_tracker.store import CasExhausted, DurationStore, WorkflowStore, mirror
from actors.topology import DURATIONS, STATUS_EVENTS, WORKFLOWS
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    GetWorkflow,
    ListWorkflows,
    StatusEvent,
    WorkflowList,
    WorkflowView,
    event_subject,
    update_subject,
)

__all__ = ["StatusTracker"]

log = logging.getLogger(__name__)

# KV keys and subject tokens: what a workflow id may contain.
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_=-]{1,200}$")


class StatusTracker(Actor):
    """Tracks every workflow's state, progress and ETA; answers where a workflow is.

    Args:
        clock: time source of the deadline sweep, ETAs and retention.
        config: settings (default: from ``TROUPE_STATUS_*`` variables).
    """

    name = "status_tracker"
    description = "Workflow state machine, progress, ETA and queries"
    streams = (STATUS_EVENTS,)
    buckets = (WORKFLOWS, DURATIONS)

    def __init__(self, *, clock: Clock = system_clock, config: TrackerConfig | None = None) -> None:
        super().__init__(clock=clock)
        self.config = config or TrackerConfig.from_env()
        self.index = WorkflowIndex()
        self._store: WorkflowStore | None = None
        self._durations: DurationStore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = 0
        self.refused = 0
        self.ignored = 0

    # -- lifecycle -------------------------------------------------------------------

    async def on_start(self) -> None:
        """Open the buckets, load the index from the bucket, start the deadline sweep."""
        bus = self.bus
        cfg = self.config
        kv = await bus.key_value(WORKFLOWS)
        self._store = WorkflowStore(
            kv,
            bus.js,
            WORKFLOWS.name,
            retention_s=cfg.retention_s,
            cas_attempts=cfg.cas_attempts,
            messages_kept=cfg.messages_kept,
        )
        self._durations = DurationStore(
            await bus.key_value(DURATIONS),
            bus.js,
            DURATIONS.name,
            self.clock,
            keep=cfg.durations_kept,
            cache_s=cfg.eta_cache_s,
        )
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(mirror(kv, self.index, ready), name="mirror"))
        try:
            await asyncio.wait_for(ready.wait(), cfg.ready_timeout_s)
        except TimeoutError:
            raise Unavailable("workflows bucket did not load in time") from None
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="deadline-sweep"))

    async def on_stop(self) -> None:
        """Stop the sweep and the bucket watch."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Report counters under the consumer's endpoint in ``$SRV.STATS``."""
        conflicts = self._store.conflicts if self._store is not None else 0
        return {
            "apply": {
                "applied": self.applied,
                "refused": self.refused,
                "ignored": self.ignored,
                "write_conflicts": conflicts,
                "indexed": len(self.index),
            }
        }

    @property
    def store(self) -> WorkflowStore:
        """The workflow store (while running)."""
        if self._store is None:
            raise RuntimeError("status tracker is not running")
        return self._store

    # -- handlers --------------------------------------------------------------------

    # A short ack wait: events a killed tracker had in flight come back within seconds
    # (a slow handler keeps its message with in-progress acks).
    @consumer(STATUS_EVENTS, durable="status-tracker", concurrency=16, ack_wait=5.0)
    async def apply(self, event: StatusEvent, ctx: MessageContext) -> None:
        """Fold one status event into its workflow's view and announce the result."""
        if not _WORKFLOW_ID.match(event.workflow_id):
            raise DeadLetter(f"invalid workflow id {event.workflow_id[:80]!r}")
        try:
            stored = await self.store.apply(event, self.clock.time())
        except CasExhausted as exc:
            log.warning("status: %s; handing the event back", exc)
            raise RetryLater(0.05) from None
        if stored is None:
            self.ignored += 1
            log.info("status: ignored a late event of expired workflow %s", event.workflow_id)
            return
        applied = stored.applied
        if applied.outcome is sm.Outcome.INVALID:
            self.refused += 1
            log.warning(
                "status: refused %s event for %s: %s",
                type(event).__name__,
                event.workflow_id,
                applied.detail,
            )
        if not applied.changed:
            return
        self.applied += 1
        view = applied.view
        if applied.finished and view.state == "succeeded" and view.template is not None:
            await self._record_duration(view)
        self.index.put(view, stored.revision)
        await self.bus.publish(update_subject(view.workflow_id), await self._with_eta(view))

    @endpoint(GET_SUBJECT, name="get")
    async def get(self, request: GetWorkflow, ctx: RequestContext) -> WorkflowView:
        """Return one workflow's view with a fresh ETA.

        Raises:
            BadRequest: the id cannot name a workflow.
            NotFound: no such workflow (never seen, or expired).
        """
        if not _WORKFLOW_ID.match(request.workflow_id):
            raise BadRequest("invalid workflow id")
        found = await self.store.get(request.workflow_id)
        if found is None:
            raise NotFound(f"no workflow {request.workflow_id}")
        return await self._with_eta(found[0])

    @endpoint(LIST_SUBJECT, name="list")
    async def list(self, request: ListWorkflows, ctx: RequestContext) -> WorkflowList:
        """Return a page of workflows matching the filters, newest first.

        Raises:
            BadRequest: the cursor is malformed.
        """
        return self.index.query(request)

    # -- internals -------------------------------------------------------------------

    async def _with_eta(self, view: WorkflowView) -> WorkflowView:
        samples: list[float] = []
        if view.template is not None and self._durations is not None:
            try:
                samples = await self._durations.samples(view.template)
            except Exception as exc:  # noqa: BLE001 - an ETA is never worth failing a query
                log.debug("status: no durations for %s: %s", view.template, exc)
        return eta.with_eta(view, samples, self.clock.time())

    async def _record_duration(self, view: WorkflowView) -> None:
        assert self._durations is not None
        assert view.template is not None
        assert view.finished_at is not None
        try:
            await self._durations.record(view.template, view.finished_at - view.created_at)
        except Exception as exc:  # noqa: BLE001 - a lost sample only weakens one estimate
            log.warning("status: duration of %s not recorded: %s", view.workflow_id, exc)

    async def _sweep_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("status: deadline sweep failed")

    async def sweep(self) -> int:
        """Publish ``timed_out`` for every overdue workflow and forget expired ones.

        Returns:
            How many workflows were timed out.
        """
        now = self.clock.time()
        overdue = self.index.overdue(now)
        for view in overdue:
            event = sm.deadline_event(view, now, source=self.name)
            # One id per workflow: replicas sweeping at once publish it once.
            await self.bus.send(
                event_subject(view.workflow_id), event, msg_id=f"{view.workflow_id}.deadline"
            )
        for workflow_id in self.index.expired(now, self.config.retention_s):
            self.index.remove(workflow_id)
        return len(overdue)
