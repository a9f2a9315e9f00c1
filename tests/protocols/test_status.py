"""The status wire contract: subjects, round trips, defaults and schemas."""

from __future__ import annotations

import re

import msgspec
import pytest

from protocols import status
from protocols.base import type_id
from protocols.status import (
    StatusEvent,
    StepProgress,
    StepTransition,
    TemplateDurations,
    WorkflowTransition,
    WorkflowView,
)


def test_subjects_are_per_workflow_and_captured_by_the_stream() -> None:
    """Events and updates of one workflow have their own subject under the wildcards."""
    assert status.event_subject("wf-1") == "troupe.status.events.wf-1"
    assert status.update_subject("wf-1") == "troupe.status.updates.wf-1"
    assert status.EVENTS_SUBJECTS.removesuffix(">") in status.event_subject("x")
    assert status.UPDATES_SUBJECTS.removesuffix(">") in status.update_subject("x")


def test_durations_key_is_a_valid_kv_key() -> None:
    """Plain template names are kept, others hashed to a stable valid key."""
    assert status.durations_key("ci-build_2") == "ci-build_2"
    hashed = status.durations_key("my template: v2")
    assert hashed.startswith("h.")
    assert hashed == status.durations_key("my template: v2")
    assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", hashed)


def test_dedup_ids_are_one_per_workflow_and_state() -> None:
    """A producer's transition and a sweep's deadline event have stable, distinct dedup ids."""
    assert status.transition_msg_id("wf-1", "queued") == "wf-1.queued"
    assert status.transition_msg_id("wf-1", "queued") != status.transition_msg_id("wf-2", "queued")
    assert status.deadline_msg_id("wf-1") == "wf-1.deadline"
    assert status.deadline_msg_id("wf-1") != status.transition_msg_id("wf-1", "timed_out")


@pytest.mark.parametrize(
    "event",
    [
        WorkflowTransition(
            workflow_id="w", state="queued", at=1.0, source="tm", steps=["a"], deadline=9.0
        ),
        StepTransition(workflow_id="w", step="a", state="succeeded", at=2.0, exit_code=0),
        StepProgress(workflow_id="w", step="a", at=3.0, percent=42.0, message={"k": "v"}),
    ],
)
def test_status_events_round_trip_through_the_union(event: StatusEvent) -> None:
    """Every event decodes back as itself through the tagged union, in both encodings."""
    for enc, dec in (
        (msgspec.msgpack.encode, msgspec.msgpack.decode),
        (msgspec.json.encode, msgspec.json.decode),
    ):
        assert dec(enc(event), type=StatusEvent) == event


def test_progress_percent_is_bounded() -> None:
    """A percentage outside 0-100 does not validate."""
    data = msgspec.json.encode(
        {"type": type_id(StepProgress), "workflow_id": "w", "step": "a", "at": 1.0, "percent": 101}
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(data, type=StepProgress)


def test_view_defaults_describe_a_fresh_workflow() -> None:
    """A new view has no steps, no progress and attempt 1."""
    view = WorkflowView(workflow_id="w", state="submitted", created_at=1.0, updated_at=1.0)
    assert (view.attempt, view.progress, view.steps, view.plan, view.events) == (1, 0.0, [], [], 0)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(view), type=WorkflowView) == view


def test_terminal_states_are_workflow_states() -> None:
    """Terminal states are a subset of the lifecycle, and the non-terminal ones lead there."""
    assert set(status.WORKFLOW_STATES) > status.TERMINAL_STATES
    assert status.WORKFLOW_STATES[0] == "submitted"


def test_type_ids_are_versioned() -> None:
    """Every status message carries a troupe.status.v1 type id."""
    for cls in (
        WorkflowTransition,
        StepTransition,
        StepProgress,
        WorkflowView,
        TemplateDurations,
        status.GetWorkflow,
        status.ListWorkflows,
        status.WorkflowList,
    ):
        assert type_id(cls).startswith("troupe.status.v1.")


def test_list_limit_is_bounded_and_schemas_build() -> None:
    """ListWorkflows rejects a page size over 1000; every message has a JSON Schema."""
    bad = msgspec.json.encode({"type": type_id(status.ListWorkflows), "limit": 5000})
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(bad, type=status.ListWorkflows)
    for cls in (WorkflowView, status.WorkflowList, TemplateDurations):
        assert msgspec.json.schema(cls)
