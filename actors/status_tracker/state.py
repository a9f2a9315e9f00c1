"""The workflow state machine: fold status events into a :class:`WorkflowView`, with no I/O.

Events reach the tracker duplicated (redeliveries), reordered (several
producers, concurrent handlers) and from several sources (task manager,
pipeline runners, the tracker's own deadline sweep). The fold below is built
so that the order of arrival does not matter for a valid history.

Ordering rule
-------------
* A workflow transition has a **rank** ``(attempt, round, phase)`` with phases
  ``submitted 0 < queued 1 < preparing 2 < running 3 < retrying 4 <
  succeeded|failed 5``; ``round`` is the delivery of the run that announced
  it (0 for the task manager's). A transition is applied only when its rank
  is higher than the current one: an equal rank is a duplicate, a lower one
  is stale (it arrived late) and is ignored. ``retrying`` of a round
  therefore outranks ``running`` of that round, and ``running`` of the next
  round (the retry) outranks both, so every retry is seen.
* ``cancelled`` and ``timed_out`` are decisions taken outside the run (task
  manager, deadline sweep): they apply whatever the attempt.
  ``rejected`` applies only to a workflow that is still ``submitted``.
* Terminal states absorb: once a workflow is terminal its state never changes
  again, so its terminal transition is recorded exactly once. A different
  terminal state arriving later (a runner finishing after a cancellation) is
  refused as :attr:`Outcome.INVALID`; anything else is stale.
* Metadata (template, plan, deadline, trace id) fills in from whichever event
  carries it first, so it is kept even when the event itself is stale; a
  terminal workflow's attempt is the highest attempt any transition reported.
* Steps have their own rank ``(attempt, step attempt, phase)`` with phases
  ``pending 0 < running|retrying 1 < finished 2``: a step's next attempt (a
  retry, or a re-run after its runner was lost mid-step) outranks every
  transition of the one before; between ``running`` and ``retrying`` of
  one attempt the later source time wins (a finished step of an attempt
  keeps its first outcome). A step's ``started_at`` is the
  earliest start reported for its current attempt.
* Progress reports keep the one with the highest ``(attempt, at)``;
  structured messages are a de-duplicated set ordered by time, of which the
  latest ``messages_kept`` are kept.

Derived fields (:attr:`WorkflowView.progress`, :attr:`WorkflowView.current_step`)
are recomputed from the steps after every change, so they follow the same rule.
"""

from __future__ import annotations

import enum
import math
import sys
from dataclasses import dataclass
from typing import Any

import msgspec

from protocols.status import (
    TERMINAL_STATES,
    StatusEvent,
    StepProgress,
    StepState,
    StepTransition,
    StepView,
    WorkflowState,
    WorkflowTransition,
    WorkflowView,
)

__all__ = [
    "DEADLINE_REASON",
    "Applied",
    "Outcome",
    "apply",
    "deadline_event",
    "derive",
    "fold",
    "is_overdue",
    "step_rank",
    "workflow_rank",
]

DEADLINE_REASON = "deadline passed"
"""Reason recorded on a workflow the deadline sweep timed out."""

_PHASE: dict[str, int] = {
    "submitted": 0,
    "queued": 1,
    "preparing": 2,
    "running": 3,
    "retrying": 4,
    "succeeded": 5,
    "failed": 5,
}
_EXTERNAL_TERMINALS = frozenset({"cancelled", "timed_out"})
_STEP_PHASE: dict[str, int] = {
    "pending": 0,
    "running": 1,
    "retrying": 1,
    "succeeded": 2,
    "failed": 2,
    "skipped": 2,
    "cancelled": 2,
    "timed_out": 2,
}
_STEP_ACTIVE = frozenset({"running", "retrying"})
_STEP_DONE = frozenset({"succeeded", "skipped"})


class Outcome(enum.Enum):
    """What applying one event did."""

    APPLIED = "applied"
    """The event moved the workflow or a step forward."""
    MERGED = "merged"
    """Only metadata or derived details changed (the transition itself was stale)."""
    DUPLICATE = "duplicate"
    """Already applied: nothing changed."""
    STALE = "stale"
    """Superseded by a later transition that arrived first: nothing changed."""
    INVALID = "invalid"
    """Not a legal transition from the current state: refused."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of :func:`apply`.

    Attributes:
        view: the view after the event (the same object when nothing changed).
        outcome: what the event did.
        changed: whether ``view`` differs from the view before.
        finished: whether this event made the workflow terminal (happens once).
        detail: why an event was refused, for the log.
    """

    view: WorkflowView
    outcome: Outcome
    changed: bool
    finished: bool = False
    detail: str = ""


def workflow_rank(state: WorkflowState, attempt: int, round_: int = 0) -> tuple[float, int, int]:
    """Return the rank of a workflow transition (see the module docstring)."""
    if state in _EXTERNAL_TERMINALS or state == "rejected":
        return (math.inf, 0, 0)
    if _PHASE[state] == 5:
        # A run's outcome ends every round of its attempt, whichever delivery announces it.
        round_ = sys.maxsize
    return (float(attempt), round_, _PHASE[state])


def step_rank(state: StepState, attempt: int, step_attempt: int = 1) -> tuple[int, int, int]:
    """Return the rank of a step transition (see the module docstring)."""
    return (attempt, step_attempt, _STEP_PHASE[state])


def is_overdue(view: WorkflowView, now: float) -> bool:
    """Whether ``view`` is past its deadline and not yet terminal."""
    return view.state not in TERMINAL_STATES and view.deadline is not None and now >= view.deadline


def deadline_event(view: WorkflowView, now: float, *, source: str) -> WorkflowTransition:
    """Return the ``timed_out`` transition the deadline sweep publishes for ``view``."""
    return WorkflowTransition(
        workflow_id=view.workflow_id,
        state="timed_out",
        at=now,
        source=source,
        attempt=view.attempt,
        reason=DEADLINE_REASON,
        error_class="timeout",
    )


def _empty(event: StatusEvent) -> WorkflowView:
    return WorkflowView(
        workflow_id=event.workflow_id,
        state="submitted",
        created_at=event.at,
        updated_at=event.at,
    )


def _order_steps(steps: list[StepView], plan: list[str]) -> list[StepView]:
    # Planned steps first in planned order, any others by name: independent of arrival order.
    position = {name: i for i, name in enumerate(plan)}
    return sorted(steps, key=lambda s: (position.get(s.name, len(plan)), s.name))


def _merge_metadata(view: WorkflowView, event: WorkflowTransition) -> WorkflowView:
    changes: dict[str, Any] = {}
    if view.template is None and event.template is not None:
        changes["template"] = event.template
    if view.trace_id is None and event.trace_id is not None:
        changes["trace_id"] = event.trace_id
    if not view.labels and event.labels:
        changes["labels"] = dict(event.labels)
    if view.deadline is None and event.deadline is not None:
        changes["deadline"] = event.deadline
    if not view.plan and event.steps:
        plan = list(dict.fromkeys(event.steps))
        known = {s.name for s in view.steps}
        steps = view.steps + [StepView(name=n) for n in plan if n not in known]
        changes["plan"] = plan
        changes["steps"] = _order_steps(steps, plan)
    return msgspec.structs.replace(view, **changes) if changes else view


def _apply_transition(  # noqa: PLR0911 - one return per rule of the ordering
    view: WorkflowView, event: WorkflowTransition
) -> tuple[WorkflowView, Outcome, str]:
    merged = _merge_metadata(view, event)
    current = view.state
    if current in TERMINAL_STATES:
        if event.attempt > merged.attempt:
            # A later attempt's events that lost the race to a cancellation still count.
            merged = msgspec.structs.replace(merged, attempt=event.attempt)
        if event.state == current:
            return merged, Outcome.DUPLICATE, ""
        if event.state in TERMINAL_STATES:
            return merged, Outcome.INVALID, f"already {current}, refused {event.state}"
        return merged, Outcome.STALE, ""
    if event.state == "rejected" and current != "submitted":
        return merged, Outcome.INVALID, f"cannot reject a {current} workflow"
    new_rank = workflow_rank(event.state, event.attempt, event.round)
    old_rank = workflow_rank(current, view.attempt, view.round)
    if new_rank == old_rank and event.state == current:
        return merged, Outcome.DUPLICATE, ""
    if new_rank <= old_rank:
        return merged, Outcome.STALE, ""
    terminal = event.state in TERMINAL_STATES
    moved = msgspec.structs.replace(
        merged,
        state=event.state,
        attempt=max(view.attempt, event.attempt),
        round=event.round,
        reason=event.reason,
        error_class=event.error_class,
        next_attempt_at=event.next_attempt_at if event.state == "retrying" else None,
        finished_at=event.at if terminal else None,
    )
    return moved, Outcome.APPLIED, ""


def _find_step(view: WorkflowView, name: str) -> tuple[list[StepView], int]:
    steps = list(view.steps)
    for i, step in enumerate(steps):
        if step.name == name:
            return steps, i
    steps.append(StepView(name=name))
    return steps, len(steps) - 1


def _with_step(view: WorkflowView, steps: list[StepView]) -> WorkflowView:
    return msgspec.structs.replace(view, steps=_order_steps(steps, view.plan))


def _apply_step(view: WorkflowView, event: StepTransition) -> tuple[WorkflowView, Outcome, str]:
    steps, i = _find_step(view, event.step)
    step = steps[i]
    new_rank = step_rank(event.state, event.attempt, event.step_attempt)
    old_rank = step_rank(step.state, step.attempt, step.step_attempt)
    active = event.state in _STEP_ACTIVE
    later = step.state_at is None or event.at > step.state_at
    if new_rank > old_rank or (new_rank == old_rank and active and later):
        same_attempt = (event.attempt, event.step_attempt) == (step.attempt, step.step_attempt)
        started = step.started_at if same_attempt else None
        if active:
            started = event.at if started is None else min(started, event.at)
        finished = _STEP_PHASE[event.state] == 2
        steps[i] = msgspec.structs.replace(
            step,
            state=event.state,
            attempt=event.attempt,
            state_at=event.at,
            started_at=started,
            finished_at=event.at if finished else None,
            exit_code=event.exit_code if finished else None,
            duration_s=event.duration_s if finished else None,
            cache_hit=event.cache_hit,
            reason=event.reason,
            error_class=event.error_class,
            step_attempt=event.step_attempt,
            attempt_reason=event.attempt_reason,
        )
        return _with_step(view, steps), Outcome.APPLIED, ""
    if (
        active
        and event.attempt == step.attempt
        and event.step_attempt == step.step_attempt
        and (step.started_at is None or event.at < step.started_at)
    ):
        steps[i] = msgspec.structs.replace(step, started_at=event.at)
        return _with_step(view, steps), Outcome.MERGED, ""
    if new_rank == old_rank and event.state == step.state:
        return view, Outcome.DUPLICATE, ""
    if new_rank == old_rank and _STEP_PHASE[event.state] == 2:
        return view, Outcome.INVALID, f"step {event.step} already {step.state}"
    return view, Outcome.STALE, ""


def _message_key(item: dict[str, Any]) -> tuple[float, str, bytes]:
    return (
        float(item.get("at", 0.0)),
        str(item.get("step", "")),
        msgspec.json.encode(item.get("message"), order="sorted"),
    )


def _apply_progress(
    view: WorkflowView, event: StepProgress, messages_kept: int
) -> tuple[WorkflowView, Outcome, str]:
    steps, i = _find_step(view, event.step)
    step = steps[i]
    outcome = Outcome.DUPLICATE
    new_view = view
    if event.percent is not None:
        mine = (event.attempt, event.at)
        theirs = (step.progress_attempt, step.progress_at if step.progress_at is not None else -1.0)
        if mine > theirs:
            steps[i] = msgspec.structs.replace(
                step, percent=event.percent, progress_at=event.at, progress_attempt=event.attempt
            )
            new_view = _with_step(view, steps)
            outcome = Outcome.APPLIED
        elif mine < theirs:
            outcome = Outcome.STALE
    elif i == len(view.steps):
        new_view = _with_step(view, steps)
        outcome = Outcome.MERGED
    if event.message is not None:
        item = {"step": event.step, "at": event.at, "message": event.message}
        by_key = {_message_key(m): m for m in new_view.messages}
        key = _message_key(item)
        if key not in by_key:
            by_key[key] = item
            kept = [by_key[k] for k in sorted(by_key)][-messages_kept:] if messages_kept else []
            if kept != new_view.messages:
                new_view = msgspec.structs.replace(new_view, messages=kept)
                outcome = Outcome.APPLIED
    return new_view, outcome, ""


def derive(view: WorkflowView) -> WorkflowView:
    """Recompute :attr:`~WorkflowView.progress` and :attr:`~WorkflowView.current_step`.

    A step counts as done when it succeeded or was skipped (in any attempt) or
    finished otherwise in the current attempt; a running step adds its
    reported percentage.
    """
    done = 0.0
    current: StepView | None = None
    for step in view.steps:
        if step.state in _STEP_DONE or (
            _STEP_PHASE[step.state] == 2 and step.attempt >= view.attempt
        ):
            done += 1.0
        elif step.state in _STEP_ACTIVE and step.attempt >= view.attempt:
            if step.percent is not None and step.progress_attempt == step.attempt:
                done += step.percent / 100.0
            if current is None or (step.started_at or 0.0, step.name) > (
                current.started_at or 0.0,
                current.name,
            ):
                current = step
    if view.state == "succeeded":
        progress = 1.0
    elif view.steps:
        progress = min(1.0, done / len(view.steps))
    else:
        progress = 0.0
    name = current.name if current is not None and view.state not in TERMINAL_STATES else None
    if progress == view.progress and name == view.current_step:
        return view
    return msgspec.structs.replace(view, progress=progress, current_step=name)


def apply(view: WorkflowView | None, event: StatusEvent, *, messages_kept: int = 20) -> Applied:
    """Fold one event into a workflow's view.

    Args:
        view: the current view, or ``None`` for a workflow not seen before.
        event: a status event of that workflow.
        messages_kept: how many structured step messages the view keeps.

    Returns:
        The new view and what the event did. When nothing changed the view is
        returned unchanged and :attr:`Applied.changed` is false, so the caller
        need not write it.

    Raises:
        ValueError: the event belongs to another workflow.
    """
    base = view if view is not None else _empty(event)
    if event.workflow_id != base.workflow_id:
        raise ValueError(f"event of {event.workflow_id} applied to {base.workflow_id}")
    if isinstance(event, WorkflowTransition):
        new, outcome, detail = _apply_transition(base, event)
    elif isinstance(event, StepTransition):
        new, outcome, detail = _apply_step(base, event)
    else:
        new, outcome, detail = _apply_progress(base, event, messages_kept)
    if event.at < new.created_at:
        new = msgspec.structs.replace(new, created_at=event.at)
    new = derive(new)
    changed = view is None or new != view
    if not changed:
        return Applied(view=base, outcome=outcome, changed=False, detail=detail)
    if view is None and outcome is not Outcome.INVALID:
        outcome = Outcome.APPLIED
    elif outcome in (Outcome.DUPLICATE, Outcome.STALE):
        outcome = Outcome.MERGED
    new = msgspec.structs.replace(
        new, events=base.events + 1, updated_at=max(base.updated_at, event.at)
    )
    finished = base.state not in TERMINAL_STATES and new.state in TERMINAL_STATES
    return Applied(view=new, outcome=outcome, changed=True, finished=finished, detail=detail)


def fold(events: list[StatusEvent], *, messages_kept: int = 20) -> WorkflowView | None:
    """Apply ``events`` in order to an unseen workflow; return the final view."""
    view: WorkflowView | None = None
    for event in events:
        view = apply(view, event, messages_kept=messages_kept).view
    return view
