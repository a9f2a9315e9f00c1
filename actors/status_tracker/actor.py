"""The status tracker actor: consumes status events, stores views, answers queries.

Wiring only; the state machine is :mod:`~actors.status_tracker.state`, storage
:mod:`~actors.status_tracker.store`, estimates :mod:`~actors.status_tracker.eta`.

* ``apply`` (durable consumer ``status-tracker`` on ``TROUPE_STATUS``): fold the
  event into the stored view with a revision-checked write, then announce the
  view written on ``troupe.status.updates.<id>``; on success, keep the run's
  duration for its template's ETA (written every ``durations_flush_s``, one
  write per template, and at stop). Events of one workflow that arrive within
  ``coalesce_s`` of each other (or while its previous write is in flight) are
  folded into one write and one announcement (see
  :class:`~actors.status_tracker.store.WorkflowStore`); each event is
  acknowledged once a write holding it is durable.
* ``get`` / ``list`` (request/reply, in ``$SRV.INFO``): one view read from the
  bucket; pages of views from the in-memory index, which the ``index`` watch
  (:meth:`~actors.runtime.actor.Actor.add_watch`) keeps equal to the bucket.
  ``list`` waits (at most ``ready_timeout_s``) until the index has loaded.
* The deadline sweep: every ``sweep_interval_s`` of the injected clock, publish
  ``timed_out`` for every unfinished workflow past its deadline. The event goes
  through the stream like any other, so the history shows it and replicas
  racing on the same workflow still record one terminal state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.errors import BadRequest, DeadLetter, NotFound, RetryLater, Unavailable
from actors.runtime.handlers import MessageContext, RequestContext, consumer, endpoint
from actors.runtime.kv import Entry, TypedBucket
from actors.status_tracker import eta
from actors.status_tracker import state as sm
from actors.status_tracker.config import TrackerConfig
from actors.status_tracker.index import WorkflowIndex
from actors.status_tracker.store import CasExhausted, DurationStore, WorkflowStore
from actors.topology import DURATIONS, STATUS_EVENTS, WORKFLOWS
from protocols.headers import EVENT_ENCODING
from protocols.ids import is_id
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    GetWorkflow,
    ListWorkflows,
    StatusEvent,
    TemplateDurations,
    WorkflowList,
    WorkflowView,
    deadline_msg_id,
    event_subject,
    update_subject,
)

__all__ = ["StatusTracker"]

log = logging.getLogger(__name__)


class StatusTracker(Actor):
    """Tracks every workflow's state, progress and ETA; answers where a workflow is.

    Args:
        clock: time source of the deadline sweep, ETAs and retention.
        config: settings (default: from ``TROUPE_STATUS_*`` variables).
    """

    name = "status_tracker"
    event_loop = "uvloop"
    description = "Workflow state machine, progress, ETA and queries"
    streams = (STATUS_EVENTS,)
    buckets = (WORKFLOWS, DURATIONS)

    def __init__(self, *, clock: Clock = system_clock, config: TrackerConfig | None = None) -> None:
        super().__init__(clock=clock)
        self.config = config or TrackerConfig.from_env()
        self.index = WorkflowIndex()
        self._store: WorkflowStore | None = None
        self._durations: DurationStore | None = None
        self.index_loaded = asyncio.Event()
        """Set once the index holds every view the bucket had when the watch started."""
        self.applied = 0
        self.refused = 0
        self.ignored = 0

    # -- lifecycle -------------------------------------------------------------------

    async def on_start(self) -> None:
        """Open the buckets, follow the workflows bucket into the index, start the sweep."""
        bus = self.bus
        cfg = self.config
        self._store = WorkflowStore(
            await TypedBucket.bind(bus, WORKFLOWS, WorkflowView),
            retention_s=cfg.retention_s,
            cas_attempts=cfg.cas_attempts,
            messages_kept=cfg.messages_kept,
            clock=self.runtime_clock,
            linger_s=cfg.coalesce_s,
        )
        self._durations = DurationStore(
            await TypedBucket.bind(bus, DURATIONS, TemplateDurations),
            self.clock,
            keep=cfg.durations_kept,
            cache_s=cfg.eta_cache_s,
        )
        self.index_loaded.clear()
        await self.add_watch(WORKFLOWS, self.mirror, name="index", on_caught_up=self._loaded)
        self.spawn(self._sweep_loop(), name="deadline-sweep")
        self.spawn(self._durations_loop(), name="durations-flush")

    async def on_stop(self) -> None:
        """Write the run durations not flushed yet."""
        if self._durations is not None:
            await self._durations.flush()

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

    @consumer(
        STATUS_EVENTS,
        durable="status-tracker",
        options=lambda self: {
            "concurrency": self.config.concurrency,
            "ack_wait": self.config.ack_wait_s,
            "max_deliver": self.config.max_deliver,
        },
    )
    async def apply(self, event: StatusEvent, ctx: MessageContext) -> None:
        """Fold one status event into its workflow's view and announce the result."""
        if not is_id(event.workflow_id):
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
            self._record_duration(view)
        if not stored.announce:
            return  # a later event of the same write announces the view written
        self.index.put(view, stored.revision)
        await self.bus.publish(
            update_subject(view.workflow_id), await self._with_eta(view), encoding=EVENT_ENCODING
        )

    @endpoint(GET_SUBJECT, name="get")
    async def get(self, request: GetWorkflow, ctx: RequestContext) -> WorkflowView:
        """Return one workflow's view with a fresh ETA.

        Raises:
            BadRequest: the id cannot name a workflow.
            NotFound: no such workflow (never seen, or expired).
        """
        if not is_id(request.workflow_id):
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
            Unavailable: the index did not load from the bucket in time.
        """
        await self._index_ready()
        return self.index.query(request)

    async def mirror(self, entry: Entry[WorkflowView | None]) -> None:
        """Keep the index equal to the workflows bucket (the watch handler)."""
        if entry.value is None:
            self.index.remove(entry.key)
        else:
            self.index.put(entry.value, entry.revision)

    # -- internals -------------------------------------------------------------------

    async def _with_eta(self, view: WorkflowView) -> WorkflowView:
        samples: list[float] = []
        if view.template is not None and self._durations is not None:
            try:
                samples = await self._durations.samples(view.template)
            except Exception as exc:  # noqa: BLE001 - an ETA is never worth failing a query
                log.debug("status: no durations for %s: %s", view.template, exc)
        return eta.with_eta(view, samples, self.clock.time())

    def _record_duration(self, view: WorkflowView) -> None:
        """Keep a successful run's duration for its template's ETA (written by the flush)."""
        assert self._durations is not None
        assert view.template is not None
        assert view.finished_at is not None
        self._durations.add(view.template, view.finished_at - view.created_at)

    async def _durations_loop(self) -> None:
        assert self._durations is not None
        while True:
            await self.runtime_clock.sleep(self.config.durations_flush_s)
            await self._durations.flush()

    async def _loaded(self) -> None:
        self.index_loaded.set()

    async def _index_ready(self) -> None:
        """Wait until the index has loaded the bucket's content.

        Raises:
            Unavailable: it did not within ``ready_timeout_s`` (real time).
        """
        if self.index_loaded.is_set():
            return
        waiter = asyncio.ensure_future(self.index_loaded.wait())
        try:
            late = await wait_tasks({waiter}, self.config.ready_timeout_s, self.runtime_clock)
        finally:
            waiter.cancel()
        if late:
            raise Unavailable("workflows bucket did not load in time")

    async def _sweep_loop(self) -> None:
        # Sweeping a half-loaded index would miss overdue workflows until the next round.
        await self.index_loaded.wait()
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
                event_subject(view.workflow_id), event, msg_id=deadline_msg_id(view.workflow_id)
            )
        for workflow_id in self.index.expired(now, self.config.retention_s):
            self.index.remove(workflow_id)
        return len(overdue)
