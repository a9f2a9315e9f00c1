"""The in-memory workflow index: list filters, cursors, overdue and expired workflows."""

from __future__ import annotations

import pytest

from actors.runtime.errors import BadRequest
from actors.status_tracker.index import WorkflowIndex, decode_cursor, encode_cursor
from protocols.status import ListWorkflows, WorkflowView


def view(i: int, state: str = "running", template: str = "t", **kw: object) -> WorkflowView:
    fields: dict[str, object] = {"created_at": float(i), "updated_at": float(i), **kw}
    return WorkflowView(workflow_id=f"w{i:03d}", state=state, template=template, **fields)  # type: ignore[arg-type]


@pytest.fixture
def index() -> WorkflowIndex:
    idx = WorkflowIndex()
    for i in range(30):
        idx.put(view(i, "succeeded" if i % 3 == 0 else "running", "a" if i % 2 else "b"))
    return idx


def test_list_is_newest_first_and_pages_with_a_cursor(index: WorkflowIndex) -> None:
    """Pages of 10 cover every workflow once, newest first."""
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = index.query(ListWorkflows(limit=10, cursor=cursor))
        seen += [v.workflow_id for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"w{i:03d}" for i in reversed(range(30))]


def test_list_filters_by_state_template_and_time(index: WorkflowIndex) -> None:
    """Filters combine."""
    page = index.query(ListWorkflows(states=["succeeded"], template="b", since=6.0, until=25.0))
    assert [v.workflow_id for v in page.items] == ["w024", "w018", "w012", "w006"]


def test_newer_revision_wins_and_remove_forgets(index: WorkflowIndex) -> None:
    """An older revision never replaces a newer one in the index."""
    index.put(view(1, "failed"), revision=5)
    index.put(view(1, "running"), revision=4)
    assert index.get("w001") is not None
    assert index.get("w001").state == "failed"
    index.put(view(1, "failed", created_at=0.5), revision=6)
    index.remove("w001")
    assert index.get("w001") is None
    assert len(index) == 29
    assert all(v.workflow_id != "w001" for v in index.query(ListWorkflows(limit=100)).items)


def test_overdue_and_expired() -> None:
    """Unfinished past-deadline workflows are overdue; finished ones expire after retention."""
    idx = WorkflowIndex()
    idx.put(view(1, deadline=10.0))
    idx.put(view(2, "succeeded", deadline=10.0, finished_at=5.0))
    assert [v.workflow_id for v in idx.overdue(10.0)] == ["w001"]
    assert idx.overdue(9.0) == []
    assert idx.expired(100.0, retention_s=50.0) == ["w002"]


def test_cursor_round_trips_and_rejects_garbage() -> None:
    """A cursor names a position; a malformed one is a bad request."""
    assert decode_cursor(encode_cursor(view(7))) == (-7.0, "w007")
    for bad in ("nonsense", "x:w1", "1.0:"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)
