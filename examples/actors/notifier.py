"""A user actor: remembers the workflows that finished and says which, on request.

The notifier listens to the status tracker's live updates
(``troupe.status.updates.>``, one :class:`~protocols.status.WorkflowView` per
change), logs one line for each workflow that reaches a final state, keeps the
last ``keep`` of them, and answers ``troupe.ext.notifier.recent`` with the most
recent ones (newest first, optionally of one state only). Run it beside the six
built-in actors and ask it::

    troupe up --actor examples/actors/notifier.py:Notifier
    nats req troupe.ext.notifier.recent '{"limit": 5}' -H Content-Type:application/json

or alone, beside a running troupe: ``troupe run examples/actors/notifier.py:Notifier``.
``TROUPE_NOTIFIER_KEEP`` sets how many finished workflows it remembers (default 100).
"""

from __future__ import annotations

import collections
import logging
import os

import msgspec

from actors.runtime import (
    Actor,
    BadRequest,
    Clock,
    RequestContext,
    endpoint,
    listener,
    system_clock,
)
from protocols.status import TERMINAL_STATES, UPDATES_SUBJECTS, WorkflowView

__all__ = ["Finished", "Notifier", "RecentFinished", "RecentRequest"]

log = logging.getLogger(__name__)

RECENT_SUBJECT = "troupe.ext.notifier.recent"
"""Request subject of :class:`RecentRequest`; user actors serve under ``troupe.ext.>``."""


class RecentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Which finished workflows to return."""

    limit: int = 10
    """At most this many, newest first."""
    state: str | None = None
    """Only workflows that ended in this state (``succeeded``, ``failed``, ...)."""


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow that reached a final state."""

    workflow_id: str
    state: str
    template: str | None = None
    finished_at: float | None = None
    reason: str = ""
    trace_id: str | None = None


class RecentFinished(msgspec.Struct, frozen=True, kw_only=True):
    """Reply to :class:`RecentRequest`."""

    workflows: list[Finished]
    """The most recent finished workflows, newest first."""
    seen: int
    """Finished workflows seen since the notifier started."""


class Notifier(Actor):
    """Keeps the last ``keep`` finished workflows and serves them on request.

    Args:
        keep: how many to remember (default: ``TROUPE_NOTIFIER_KEEP`` or 100).
        clock: time source (the runtime's, for tests).
    """

    name = "notifier"
    description = "Remembers finished workflows; answers troupe.ext.notifier.recent"
    version = "1.0.0"

    def __init__(self, *, keep: int | None = None, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.keep = keep if keep is not None else int(os.environ.get("TROUPE_NOTIFIER_KEEP", "100"))
        if self.keep < 1:
            raise ValueError("keep must be at least 1")
        self.finished: collections.OrderedDict[str, Finished] = collections.OrderedDict()
        self.seen = 0

    @listener(UPDATES_SUBJECTS)
    async def on_update(self, view: WorkflowView, ctx: RequestContext) -> None:
        """Record a workflow the first time it is seen in a final state."""
        if view.state not in TERMINAL_STATES or view.workflow_id in self.finished:
            return
        self.finished[view.workflow_id] = Finished(
            workflow_id=view.workflow_id,
            state=view.state,
            template=view.template,
            finished_at=view.finished_at,
            reason=view.reason,
            trace_id=view.trace_id,
        )
        self.seen += 1
        while len(self.finished) > self.keep:
            self.finished.popitem(last=False)
        log.info("workflow %s %s %s", view.workflow_id, view.state, view.reason)

    @endpoint(RECENT_SUBJECT, name="recent")
    async def recent(self, request: RecentRequest, ctx: RequestContext) -> RecentFinished:
        """Return the most recent finished workflows, newest first."""
        if request.limit < 1:
            raise BadRequest("limit must be at least 1")
        newest = [
            f
            for f in reversed(self.finished.values())
            if request.state is None or f.state == request.state
        ]
        return RecentFinished(workflows=newest[: request.limit], seen=self.seen)
