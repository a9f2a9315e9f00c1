"""The workflow state machine: ordering rule, idempotence, derived progress."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.status_tracker import state as sm
from protocols.status import (
    TERMINAL_STATES,
    WORKFLOW_STATES,
    StatusEvent,
    StepProgress,
    StepTransition,
    WorkflowTransition,
    WorkflowView,
)
from tests.actors.status_tracker.histories import histories, history, project, scrambled


def wf(state: str, at: float, attempt: int = 1, **kw: object) -> WorkflowTransition:
    return WorkflowTransition(
        workflow_id="w", state=state, at=at, source="test", attempt=attempt, **kw
    )  # type: ignore[arg-type]


def step(name: str, state: str, at: float, attempt: int = 1, **kw: object) -> StepTransition:
    return StepTransition(workflow_id="w", step=name, state=state, at=at, attempt=attempt, **kw)  # type: ignore[arg-type]


def run(*events: StatusEvent) -> WorkflowView:
    view = sm.fold(list(events))
    assert view is not None
    return view


def test_transition_follows_the_lifecycle_in_order() -> None:
    """submitted -> queued -> preparing -> running -> succeeded is applied step by step."""
    view = None
    for i, state in enumerate(["submitted", "queued", "preparing", "running", "succeeded"]):
        result = sm.apply(view, wf(state, float(i)))
        assert result.outcome is sm.Outcome.APPLIED
        view = result.view
        assert view.state == state
    assert view is not None
    assert view.finished_at == 4.0
    assert view.events == 5


def test_transition_rejects_running_to_queued() -> None:
    """A late queued after running is stale: the state does not move back."""
    view = run(wf("submitted", 1), wf("running", 3))
    result = sm.apply(view, wf("queued", 2, steps=["a"]))
    assert result.outcome is sm.Outcome.MERGED  # the plan is still learned
    assert result.view.state == "running"
    assert result.view.plan == ["a"]


def test_stale_transition_without_news_changes_nothing() -> None:
    """A stale event that carries nothing new leaves the view untouched."""
    view = run(wf("submitted", 1), wf("running", 3))
    result = sm.apply(view, wf("preparing", 2))
    assert result.outcome is sm.Outcome.STALE
    assert not result.changed
    assert result.view is view


def test_duplicate_transition_is_recognised() -> None:
    """Applying the same event twice changes nothing the second time."""
    view = run(wf("submitted", 1), wf("running", 2))
    result = sm.apply(view, wf("running", 2))
    assert result.outcome is sm.Outcome.DUPLICATE
    assert not result.changed


def test_terminal_state_is_recorded_once() -> None:
    """A second, different terminal state is refused as invalid."""
    view = run(wf("submitted", 1), wf("running", 2), wf("cancelled", 3, reason="user"))
    result = sm.apply(view, wf("succeeded", 4))
    assert result.outcome is sm.Outcome.INVALID
    assert result.view.state == "cancelled"
    assert not result.finished
    assert "already cancelled" in result.detail


def test_rejected_only_from_submitted() -> None:
    """rejected applies to a submitted workflow and is refused once it is queued."""
    assert run(wf("submitted", 1), wf("rejected", 2)).state == "rejected"
    result = sm.apply(run(wf("submitted", 1), wf("queued", 2)), wf("rejected", 3))
    assert result.outcome is sm.Outcome.INVALID
    assert result.view.state == "queued"


def test_retrying_then_running_next_attempt() -> None:
    """running of attempt 2 outranks retrying of attempt 1, which outranks running of 1."""
    view = run(wf("running", 1), wf("retrying", 2, next_attempt_at=9.0))
    assert (view.state, view.next_attempt_at) == ("retrying", 9.0)
    assert sm.apply(view, wf("running", 3, attempt=1)).view.state == "retrying"
    view = sm.apply(view, wf("running", 4, attempt=2)).view
    assert (view.state, view.attempt, view.next_attempt_at) == ("running", 2, None)


def test_succeeded_of_an_earlier_attempt_is_stale() -> None:
    """An old attempt's outcome arriving after a newer attempt started is ignored."""
    view = run(wf("running", 1), wf("retrying", 2), wf("running", 3, attempt=2))
    assert sm.apply(view, wf("succeeded", 4, attempt=1)).view.state == "running"


def test_cancel_applies_whatever_the_attempt() -> None:
    """cancelled from the task manager (attempt 1) ends a workflow on attempt 2."""
    view = run(wf("running", 1), wf("retrying", 2), wf("running", 3, attempt=2))
    result = sm.apply(view, wf("cancelled", 4))
    assert result.finished
    assert (result.view.state, result.view.attempt) == ("cancelled", 2)


def test_step_events_build_progress_and_current_step() -> None:
    """Steps done over planned steps, plus a running step's percentage."""
    view = run(
        wf("queued", 1, steps=["a", "b", "c", "d"]),
        wf("running", 2),
        step("a", "running", 3),
        step("a", "succeeded", 4, exit_code=0),
        step("b", "running", 5),
        StepProgress(workflow_id="w", step="b", at=6, percent=50),
    )
    assert view.progress == pytest.approx(1.5 / 4)
    assert view.current_step == "b"
    assert [s.name for s in view.steps] == ["a", "b", "c", "d"]
    assert [s.state for s in view.steps] == ["succeeded", "running", "pending", "pending"]


def test_unplanned_steps_are_ordered_after_planned_ones_by_name() -> None:
    """Steps seen before the plan are placed deterministically once it arrives."""
    view = run(step("z", "running", 1), step("b", "running", 2), wf("queued", 3, steps=["b", "a"]))
    assert [s.name for s in view.steps] == ["b", "a", "z"]


def test_finished_step_keeps_its_first_outcome() -> None:
    """A step that succeeded cannot also fail in the same attempt."""
    view = run(step("a", "running", 1), step("a", "succeeded", 2))
    result = sm.apply(view, step("a", "failed", 3))
    assert result.outcome is sm.Outcome.INVALID
    assert result.view.steps[0].state == "succeeded"


def test_step_start_is_the_earliest_reported_start() -> None:
    """A running event arriving after its step finished still fills started_at."""
    view = run(step("a", "succeeded", 5, duration_s=3.0), step("a", "running", 2))
    assert (view.steps[0].state, view.steps[0].started_at) == ("succeeded", 2)


def test_progress_keeps_the_latest_report_and_messages_deduplicated() -> None:
    """The report with the highest (attempt, at) wins; messages are a time-ordered set."""
    late = StepProgress(workflow_id="w", step="a", at=5, percent=80, message={"k": 2})
    early = StepProgress(workflow_id="w", step="a", at=3, percent=20, message={"k": 1})
    view = run(step("a", "running", 1), late, early, late)
    assert view.steps[0].percent == 80
    assert [m["message"] for m in view.messages] == [{"k": 1}, {"k": 2}]
    assert sm.apply(view, late).outcome is sm.Outcome.DUPLICATE


def test_messages_are_capped() -> None:
    """Only the latest ``messages_kept`` messages stay."""
    view = None
    for i in range(5):
        event = StepProgress(workflow_id="w", step="a", at=float(i), message={"i": i})
        view = sm.apply(view, event, messages_kept=2).view
    assert view is not None
    assert [m["message"]["i"] for m in view.messages] == [3, 4]


def test_apply_refuses_another_workflows_event() -> None:
    """Folding an event into the wrong view is a programming error."""
    view = run(wf("submitted", 1))
    other = WorkflowTransition(workflow_id="x", state="queued", at=2, source="t")
    with pytest.raises(ValueError, match="applied to w"):
        sm.apply(view, other)


def test_deadline_event_times_out_an_overdue_workflow() -> None:
    """A workflow past its deadline is overdue; the sweep's event ends it timed_out."""
    view = run(wf("queued", 1, deadline=10.0), wf("running", 2))
    assert not sm.is_overdue(view, 9.9)
    assert sm.is_overdue(view, 10.0)
    result = sm.apply(view, sm.deadline_event(view, 10.0, source="status_tracker"))
    assert result.finished
    assert (result.view.state, result.view.reason) == ("timed_out", sm.DEADLINE_REASON)
    assert not sm.is_overdue(result.view, 11.0)


def test_first_event_of_a_workflow_is_applied() -> None:
    """Whatever arrives first creates the view."""
    result = sm.apply(None, wf("submitted", 1))
    assert result.outcome is sm.Outcome.APPLIED
    assert result.changed


@settings(max_examples=150, deadline=None)
@given(data=st.data(), events=histories())
def test_any_reordering_with_duplicates_reaches_the_in_order_result(
    data: st.DataObject, events: list[StatusEvent]
) -> None:
    """Reordered, duplicated delivery of a valid history folds to the in-order view."""
    expected = sm.fold(events)
    delivered = data.draw(scrambled(events))
    view = None
    finished = 0
    for event in delivered:
        result = sm.apply(view, event)
        finished += result.finished
        view = result.view
    assert project(view) == project(expected)
    assert finished == 1
    assert view is not None
    assert view.state in TERMINAL_STATES


_events = st.one_of(
    st.builds(
        WorkflowTransition,
        workflow_id=st.just("w"),
        state=st.sampled_from(WORKFLOW_STATES),
        at=st.floats(0, 100),
        source=st.just("t"),
        attempt=st.integers(1, 3),
        steps=st.lists(st.sampled_from("abc"), max_size=3),
        deadline=st.none() | st.floats(0, 100),
    ),
    st.builds(
        StepTransition,
        workflow_id=st.just("w"),
        step=st.sampled_from("abc"),
        state=st.sampled_from(
            ["running", "retrying", "succeeded", "failed", "skipped", "cancelled", "timed_out"]
        ),
        at=st.floats(0, 100),
        attempt=st.integers(1, 3),
    ),
    st.builds(
        StepProgress,
        workflow_id=st.just("w"),
        step=st.sampled_from("abc"),
        at=st.floats(0, 100),
        percent=st.none() | st.floats(0, 100),
        message=st.none() | st.fixed_dictionaries({"v": st.integers(0, 3)}),
        attempt=st.integers(1, 3),
    ),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_events, max_size=40))
def test_any_event_sequence_yields_a_valid_state(events: list[StatusEvent]) -> None:
    """Arbitrary events never corrupt a view and end it at most once."""
    view: WorkflowView | None = None
    finished = 0
    terminal: str | None = None
    changes = 0
    for event in events:
        result = sm.apply(view, event)
        finished += result.finished
        changes += result.changed
        view = result.view
        assert view.state in WORKFLOW_STATES
        if terminal is not None:
            assert view.state == terminal  # terminal states absorb
        if view.state in TERMINAL_STATES:
            terminal = view.state
        assert (view.finished_at is not None) == (view.state in TERMINAL_STATES)
        assert 0.0 <= view.progress <= 1.0
        assert view.attempt >= 1
        assert view.created_at <= view.updated_at or view.events == 1
        assert view.events == changes
    assert finished <= 1
    assert finished == (terminal is not None)


@dataclasses.dataclass
class _Writer:
    """One tracker replica: reads the stored view, then writes it back if unchanged."""

    queue: list[StatusEvent]
    read: tuple[WorkflowView | None, int] | None = None


@settings(max_examples=150, deadline=None)
@given(data=st.data(), events=histories())
def test_concurrent_writers_with_revision_checks_lose_no_update(
    data: st.DataObject, events: list[StatusEvent]
) -> None:
    """Replicas interleaving read / compare-and-set writes end at the in-order view."""
    delivered = data.draw(scrambled(events))
    n = data.draw(st.integers(min_value=2, max_value=3))
    writers = [_Writer(queue=delivered[i::n]) for i in range(n)]
    stored: WorkflowView | None = None
    revision = 0
    finished = 0
    while any(w.queue for w in writers):
        w = data.draw(st.sampled_from([w for w in writers if w.queue]))
        if w.read is None:
            w.read = (stored, revision)  # read the key and its revision
            continue
        seen, seen_revision = w.read
        w.read = None
        result = sm.apply(seen, w.queue[0])
        if not result.changed:
            w.queue.pop(0)
        elif seen_revision == revision:  # the revision check of kv.update
            stored, revision = result.view, revision + 1
            finished += result.finished
            w.queue.pop(0)
        # else: conflict; the writer re-reads and re-applies the same event
    assert project(stored) == project(sm.fold(events))
    assert finished == 1


def test_history_helper_ends_in_its_outcome() -> None:
    """The test histories fold to the outcome they were built for."""
    for outcome in ("succeeded", "failed", "cancelled", "timed_out", "rejected"):
        view = sm.fold(history("w", 0.0, outcome=outcome, attempts=2))
        assert view is not None
        assert view.state == outcome


def test_message_older_than_every_kept_one_is_dropped_when_full() -> None:
    """With the cap reached, a late message older than all kept ones changes nothing."""
    view = run(step("a", "running", 0))
    for i in (3, 4):
        event = StepProgress(workflow_id="w", step="a", at=float(i), message={"i": i})
        view = sm.apply(view, event, messages_kept=2).view
    late = StepProgress(workflow_id="w", step="a", at=1.0, message={"i": 1})
    result = sm.apply(view, late, messages_kept=2)
    assert not result.changed
    assert result.outcome is sm.Outcome.DUPLICATE
    assert [m["message"]["i"] for m in result.view.messages] == [3, 4]


def _retried_run() -> list[StatusEvent]:
    """A run retried twice (deliveries 1-3) before it succeeds."""
    events: list[StatusEvent] = [wf("queued", 1.0)]
    at = 2.0
    for delivery in (1, 2, 3):
        events.append(wf("running", at, round=delivery))
        if delivery < 3:
            events.append(
                wf("retrying", at + 0.5, round=delivery, next_attempt_at=at + 1, reason="exit 75")
            )
        at += 1.0
    return [*events, wf("succeeded", at, round=3)]


def test_every_retry_of_a_run_is_applied_not_merged_as_a_duplicate() -> None:
    """Each delivery's running and retrying move the view: watch sees every retry."""
    view: WorkflowView | None = None
    seen: list[tuple[str, int]] = []
    for event in _retried_run():
        applied = sm.apply(view, event)
        assert applied.outcome is sm.Outcome.APPLIED
        view = applied.view
        seen.append((view.state, view.round))
    assert [s for s in seen if s[0] == "retrying"] == [("retrying", 1), ("retrying", 2)]
    assert view is not None
    assert view.state == "succeeded"


@given(st.permutations(_retried_run()))
def test_a_retried_run_ends_the_same_in_any_order(events: list[StatusEvent]) -> None:
    """Rounds keep the fold independent of arrival order; a terminal outranks every round."""
    final, in_order = sm.fold(events), run(*_retried_run())
    assert final is not None
    keep = ("state", "attempt", "round", "reason", "finished_at", "created_at", "updated_at")
    assert {k: getattr(final, k) for k in keep} == {k: getattr(in_order, k) for k in keep}


def test_a_later_event_fills_in_metadata_the_first_one_lacked() -> None:
    """Template, trace, labels and deadline carried only by a later event are kept."""
    view = run(
        wf("submitted", 1),
        wf(
            "queued",
            2,
            template="hello",
            trace_id="t" * 32,
            labels={"team": "a"},
            deadline=60.0,
        ),
    )
    assert (view.template, view.trace_id, view.labels, view.deadline) == (
        "hello",
        "t" * 32,
        {"team": "a"},
        60.0,
    )
    later = sm.apply(view, wf("running", 3, template="other", deadline=90.0)).view
    assert (later.template, later.deadline) == ("hello", 60.0)
