"""Workflow event histories as the task manager and pipeline runner emit them, for tests."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from protocols.status import (
    StatusEvent,
    StepProgress,
    StepTransition,
    WorkflowTransition,
    WorkflowView,
)

STEP_NAMES = ("build", "test", "deploy")


def history(
    workflow_id: str,
    t0: float,
    *,
    outcome: str = "succeeded",
    steps: tuple[str, ...] = STEP_NAMES,
    attempts: int = 1,
    template: str = "ci",
    deadline: float | None = None,
    messages: bool = True,
) -> list[StatusEvent]:
    """Return the events of one workflow run in the order producers send them.

    ``outcome`` is the final state; ``attempts`` > 1 inserts ``retrying`` between
    runs (each earlier attempt's last step fails).
    """
    t = t0
    events: list[StatusEvent] = []

    def at() -> float:
        nonlocal t
        t += 1.0
        return t

    def wf(state: str, **kw: Any) -> None:
        events.append(
            WorkflowTransition(workflow_id=workflow_id, state=state, at=at(), source="test", **kw)  # type: ignore[arg-type]
        )

    wf("submitted", template=template, trace_id="0" * 32)
    if outcome == "rejected":
        wf("rejected", reason="no such template")
        return events
    wf("queued", steps=list(steps), deadline=deadline)
    wf("preparing")
    for attempt in range(1, attempts + 1):
        wf("running", attempt=attempt)
        last_attempt = attempt == attempts
        for i, step in enumerate(steps):
            events.append(
                StepTransition(
                    workflow_id=workflow_id, step=step, state="running", at=at(), attempt=attempt
                )
            )
            events.append(
                StepProgress(
                    workflow_id=workflow_id,
                    step=step,
                    at=at(),
                    percent=50.0,
                    attempt=attempt,
                    message={"n": attempt, "step": step} if messages else None,
                )
            )
            fails = i == len(steps) - 1 and (not last_attempt or outcome == "failed")
            events.append(
                StepTransition(
                    workflow_id=workflow_id,
                    step=step,
                    state="failed" if fails else "succeeded",
                    at=at(),
                    attempt=attempt,
                    exit_code=1 if fails else 0,
                    duration_s=1.0,
                    cache_hit=attempt > 1 and not fails,
                )
            )
        if not last_attempt:
            wf("retrying", attempt=attempt, next_attempt_at=t + 5.0, reason="step failed")
    if outcome == "cancelled":
        wf("cancelled", reason="by user")
    elif outcome == "timed_out":
        wf("timed_out", reason="deadline passed", attempt=attempts)
    else:
        wf(outcome, attempt=attempts, reason="" if outcome == "succeeded" else "step failed")
    return events


def project(view: WorkflowView | None) -> dict[str, Any] | None:
    """Return the order-independent part of a view (drops counters, times of application)."""
    if view is None:
        return None
    data: dict[str, Any] = msgspec.to_builtins(view)
    for field in ("events", "updated_at", "eta_s"):
        data.pop(field)
    return data


@st.composite
def histories(draw: st.DrawFn) -> list[StatusEvent]:
    """A valid history of one workflow with any outcome, steps and attempts."""
    outcome = draw(st.sampled_from(["succeeded", "failed", "cancelled", "timed_out", "rejected"]))
    n_steps = draw(st.integers(min_value=0, max_value=3))
    attempts = draw(st.integers(min_value=1, max_value=3))
    return history(
        "wf-1",
        1000.0,
        outcome=outcome,
        steps=STEP_NAMES[:n_steps],
        attempts=attempts,
        deadline=draw(st.none() | st.just(5000.0)),
    )


@st.composite
def scrambled(draw: st.DrawFn, events: list[StatusEvent]) -> list[StatusEvent]:
    """``events`` reordered, with some of them delivered more than once."""
    shuffled = list(draw(st.permutations(events)))
    copies = draw(st.lists(st.sampled_from(events), max_size=len(events))) if events else []
    for copy in copies:
        shuffled.insert(draw(st.integers(min_value=0, max_value=len(shuffled))), copy)
    return shuffled


async def send_all(bus: Any, events: list[StatusEvent]) -> None:
    """Publish ``events`` on their workflows' status subjects, as producers do."""
    from protocols.status import event_subject

    for event in events:
        await bus.send(event_subject(event.workflow_id), event)
