"""The workflow views the performance page reads: kept live from the workflows bucket,
or read from the status tracker as time slices at once.

Every range of the page ends now, so the newest :data:`~RecentViews.keep`
views of any range are among the newest that many workflows overall.
:class:`RecentViews` keeps exactly those, from a watch of the workflows bucket
(the gateway runs it while the page is read, see
:mod:`actors.gateway.dashboard.perfwatch`; each put or delete updates it as it
arrives), so a load of the page reads nothing once the watch has caught up.
Until then, or where no watch runs (the stdio MCP server's services,
in-process tests), :func:`read_views` asks the status tracker.

A range holds up to thousands of workflows, a list reply at most
:data:`PAGE` of them (about 1 MB). Reading them one cursor page after the
other costs one full round trip each; the range is instead cut into
:data:`SLICES` time slices whose first pages are asked for at once, so the
status tracker encodes one reply while the gateway decodes another. A slice
is read further only while the newest ``most`` views are not all in.

The replies are decoded into :class:`PerfView`, which keeps only what the
charts read (state, times, template, and each step's times and cache hit):
the tracker still sends whole views, but the labels, messages, plans, reasons
and ids of thousands of them are skipped rather than built, which was most of
the gateway's work on a cold load. These light structs take no part in
garbage collection.
"""

from __future__ import annotations

import asyncio
import bisect

import msgspec

from actors.gateway.services import Services
from actors.runtime.watch import Entry
from protocols.base import TAG_FIELD, type_id
from protocols.status import LIST_SUBJECT, ListWorkflows, WorkflowList, WorkflowView

__all__ = [
    "MAX_VIEWS",
    "PAGE",
    "SLICES",
    "PerfList",
    "PerfStep",
    "PerfView",
    "RecentViews",
    "read_views",
]

PAGE = 1000
"""Workflows per list request (the tracker's most)."""

SLICES = 4
"""Time slices of a range asked for at once."""

MAX_VIEWS = 3000
"""Most workflows the performance page reads (the newest of the range)."""


class PerfStep(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the charts read of a :class:`~protocols.status.StepView`."""

    name: str
    """Step name."""
    started_at: float | None = None
    """Unix time it started."""
    finished_at: float | None = None
    """Unix time it ended."""
    duration_s: float | None = None
    """How long it ran."""
    cache_hit: bool = False
    """Whether its result came from the step cache."""


class PerfView(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    gc=False,
    tag_field=TAG_FIELD,
    tag=type_id(WorkflowView),
):
    """What the charts read of a :class:`~protocols.status.WorkflowView` (decoded from one)."""

    workflow_id: str
    """Workflow id."""
    state: str
    """Workflow state."""
    created_at: float
    """Unix time it was created."""
    finished_at: float | None = None
    """Unix time it reached a final state."""
    template: str | None = None
    """Template name (``None``: an inline pipeline)."""
    steps: tuple[PerfStep, ...] = ()
    """Its steps."""


class PerfList(
    msgspec.Struct, frozen=True, kw_only=True, tag_field=TAG_FIELD, tag=type_id(WorkflowList)
):
    """A :class:`~protocols.status.WorkflowList` decoded as :class:`PerfView` items."""

    items: list[PerfView]
    """Matching workflows."""
    next_cursor: str | None = None
    """Cursor of the next page, if any."""


def _query(low: float, high: float | None, cursor: str | None = None) -> ListWorkflows:
    return ListWorkflows(since=low, until=high, limit=PAGE, cursor=cursor)


async def _page(services: Services, query: ListWorkflows) -> PerfList:
    return await services.bus.request(LIST_SUBJECT, query, PerfList)


async def read_views(
    services: Services, since: float, until: float, most: int
) -> tuple[list[PerfView], bool]:
    """Return the newest ``most`` views of workflows created since ``since``.

    Args:
        services: the gateway's facade.
        since: oldest creation time read.
        until: where the newest slice starts being open-ended (now).
        most: views read at most.

    Returns:
        The views, newest first, and whether older ones were left out.

    Raises:
        RequestError: the status tracker did not answer.
    """
    width = (until - since) / SLICES
    lows = [since + i * width for i in range(SLICES)]
    highs: list[float | None] = [*lows[1:], None]

    # The first page of every slice at once; more pages of a slice only while needed.
    firsts = await asyncio.gather(
        *(_page(services, _query(lo, hi)) for lo, hi in zip(lows, highs, strict=True))
    )
    views: list[PerfView] = []
    for i in reversed(range(SLICES)):
        room = most - len(views)
        if room <= 0:
            return views, any(page.items for page in firsts[: i + 1])
        found, cursor = list(firsts[i].items), firsts[i].next_cursor
        while cursor is not None and len(found) < room:
            page = await _page(services, _query(lows[i], highs[i], cursor))
            found += page.items
            cursor = page.next_cursor
        views += found[:room]
        if cursor is not None or len(found) > room:
            return views, True
    return views, False


class RecentViews:
    """The newest workflows by creation time, as light views, kept from a bucket watch.

    Feed it with :meth:`mirror` (the watch handler, values decoded as
    :class:`PerfView`) and :meth:`caught_up` (once the initial values are in).
    Pure bookkeeping: no I/O.

    Args:
        keep: views kept (the newest by ``created_at``).

    Raises:
        ValueError: ``keep`` is less than 1.
    """

    def __init__(self, keep: int = MAX_VIEWS) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self._views: dict[str, PerfView] = {}
        self._order: list[tuple[float, str]] = []  # oldest first
        self._dropped = float("-inf")  # creation time of the newest view let go
        self._ready = False

    @property
    def ready(self) -> bool:
        """Whether the watch has delivered every value the bucket held when it started."""
        return self._ready

    def __len__(self) -> int:
        return len(self._views)

    async def caught_up(self) -> None:
        """Mark the initial values as taken (the watch's ``on_caught_up``)."""
        self._ready = True

    async def mirror(self, entry: Entry[PerfView | None]) -> None:
        """Take one revision of the workflows bucket (the watch handler)."""
        self.apply(entry.key, entry.value)

    def apply(self, workflow_id: str, view: PerfView | None) -> None:
        """Take the current view of ``workflow_id`` (``None``: deleted or expired)."""
        old = self._views.pop(workflow_id, None)
        if old is not None:
            self._discard((old.created_at, workflow_id))
        if view is None:
            return
        key = (view.created_at, workflow_id)
        if len(self._views) >= self.keep:
            if key < self._order[0]:
                self._dropped = max(self._dropped, view.created_at)
                return
            oldest = self._order.pop(0)
            del self._views[oldest[1]]
            self._dropped = max(self._dropped, oldest[0])
        bisect.insort(self._order, key)
        self._views[workflow_id] = view

    def _discard(self, key: tuple[float, str]) -> None:
        i = bisect.bisect_left(self._order, key)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]

    def read(self, since: float, most: int) -> tuple[list[PerfView], bool]:
        """Return the newest ``most`` views created since ``since``, newest first.

        Returns:
            The views, and whether older ones of the range were left out (here
            or because only the newest :attr:`keep` are kept).
        """
        start = bisect.bisect_left(self._order, (since, ""))
        keys = self._order[start:]
        chosen = keys[-most:] if most > 0 else []
        views = [self._views[wid] for _, wid in reversed(chosen)]
        return views, len(keys) > len(chosen) or self._dropped >= since
