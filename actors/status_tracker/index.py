"""An in-memory mirror of the workflows bucket for list queries and the deadline sweep.

The bucket is the truth; each tracker replica keeps this index from a KV watch
(every replica sees every write, whichever replica made it), so listing
10,000 workflows needs no round trip per key. Nothing here does I/O.
"""

from __future__ import annotations

import bisect

from actors.runtime.errors import BadRequest
from protocols.status import TERMINAL_STATES, ListWorkflows, WorkflowList, WorkflowView

__all__ = ["WorkflowIndex", "decode_cursor", "encode_cursor"]

_SortKey = tuple[float, str]


def _sort_key(view: WorkflowView) -> _SortKey:
    # Newest first, then by id: a total order, so cursors are stable.
    return (-view.created_at, view.workflow_id)


def encode_cursor(view: WorkflowView) -> str:
    """Return the cursor that resumes a listing after ``view``."""
    return f"{view.created_at!r}:{view.workflow_id}"


def decode_cursor(cursor: str) -> _SortKey:
    """Parse a cursor made by :func:`encode_cursor`.

    Raises:
        BadRequest: the cursor is malformed.
    """
    created, sep, workflow_id = cursor.partition(":")
    try:
        if not sep or not workflow_id:
            raise ValueError(cursor)
        return (-float(created), workflow_id)
    except ValueError:
        raise BadRequest("malformed cursor") from None


class WorkflowIndex:
    """Workflows by id, ordered newest first; overdue ones found without a scan of KV."""

    def __init__(self) -> None:
        self._views: dict[str, WorkflowView] = {}
        self._order: list[_SortKey] = []
        self._revisions: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._views)

    def get(self, workflow_id: str) -> WorkflowView | None:
        """Return the indexed view of ``workflow_id``."""
        return self._views.get(workflow_id)

    def put(self, view: WorkflowView, revision: int = 0) -> None:
        """Index ``view`` unless an entry with a higher KV revision is already there."""
        wid = view.workflow_id
        if revision and self._revisions.get(wid, 0) > revision:
            return
        old = self._views.get(wid)
        if old is not None and old.created_at != view.created_at:
            self._discard_order(old)
            old = None
        if old is None:
            bisect.insort(self._order, _sort_key(view))
        self._views[wid] = view
        if revision:
            self._revisions[wid] = revision

    def remove(self, workflow_id: str) -> None:
        """Forget ``workflow_id`` (deleted or expired from the bucket)."""
        old = self._views.pop(workflow_id, None)
        self._revisions.pop(workflow_id, None)
        if old is not None:
            self._discard_order(old)

    def _discard_order(self, view: WorkflowView) -> None:
        key = _sort_key(view)
        i = bisect.bisect_left(self._order, key)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]

    def query(self, request: ListWorkflows) -> WorkflowList:
        """Answer a :class:`ListWorkflows` request, newest first.

        Raises:
            BadRequest: the cursor is malformed.
        """
        start = 0
        if request.cursor:
            start = bisect.bisect_right(self._order, decode_cursor(request.cursor))
        states = frozenset(request.states)
        items: list[WorkflowView] = []
        next_cursor: str | None = None
        for key in self._order[start:]:
            view = self._views[key[1]]
            if request.until is not None and view.created_at >= request.until:
                continue
            if request.since is not None and view.created_at < request.since:
                break  # everything after is older still
            if states and view.state not in states:
                continue
            if request.labels and any(view.labels.get(k) != v for k, v in request.labels.items()):
                continue
            if request.template is not None and view.template != request.template:
                continue
            if len(items) == request.limit:
                next_cursor = encode_cursor(items[-1])
                break
            items.append(view)
        return WorkflowList(items=items, next_cursor=next_cursor)

    def overdue(self, now: float) -> list[WorkflowView]:
        """Return unfinished workflows whose deadline has passed."""
        return [
            v
            for v in self._views.values()
            if v.deadline is not None and now >= v.deadline and v.state not in TERMINAL_STATES
        ]

    def expired(self, now: float, retention_s: float) -> list[str]:
        """Return ids of finished workflows older than the retention time."""
        return [
            v.workflow_id
            for v in self._views.values()
            if v.finished_at is not None and now - v.finished_at > retention_s
        ]
