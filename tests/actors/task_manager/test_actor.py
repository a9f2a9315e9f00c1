"""The task manager on a real server: status events, runs, rejections, idempotency, cancel."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.runtime import TypedBucket
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encode
from actors.runtime.errors import Conflict, NotFound
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.status_tracker.client import get_workflow
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from actors.task_manager.store import TaskStore
from actors.topology import PIPELINES, RESULTS, STATUS_EVENTS, TASK_IDS, TASKS
from protocols import pipelines
from protocols.pipelines import CancelRun, PipelineResult, PipelineRun, PipelineSpec, StepSpec
from protocols.status import StatusEvent, StepTransition, WorkflowTransition, event_subject
from protocols.tasks import (
    CANCEL_SUBJECT,
    SUBMIT_SUBJECT,
    TASKS_BUCKET,
    CancelAccepted,
    CancelTask,
    TaskRecord,
    TaskState,
    TaskSubmitted,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def _read(bus: Bus, stream: str, subject: str, message_type: type[T]) -> list[T]:
    """Every message stored in ``stream`` on ``subject``, oldest first."""
    try:
        await bus.js.stream_info(stream)
    except Exception:
        return []
    sub = await bus.js.pull_subscribe(subject, stream=stream)
    try:
        pending = (await sub.consumer_info()).num_pending
        found: list[T] = []
        while len(found) < pending:
            for msg in await sub.fetch(pending - len(found), timeout=5.0):
                found.append(Codec.of(message_type).decode(msg.data, "application/msgpack"))
                await msg.ack()
        return found
    finally:
        await sub.unsubscribe()


async def _events(bus: Bus, workflow_id: str) -> list[WorkflowTransition]:
    return await _read(bus, STATUS_EVENTS.name, event_subject(workflow_id), WorkflowTransition)


async def _runs(bus: Bus) -> list[PipelineRun]:
    # The work-queue stream would lose messages to a second consumer: count via stream info
    # and read them by sequence instead.
    try:
        info = await bus.js.stream_info(PIPELINES.name)
    except Exception:
        return []
    if info.state.messages == 0:
        return []
    runs = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(PIPELINES.name, seq)
        runs.append(Codec.of(PipelineRun).decode(msg.data or b""))
    return runs


async def _ended(bus: Bus, workflow_id: str, state: str) -> list[WorkflowTransition]:
    async def check() -> list[WorkflowTransition] | None:
        events = await _events(bus, workflow_id)
        return events if any(e.state == state for e in events) else None

    return await eventually(check, timeout=10.0)


async def _submit(bus: Bus, task: TaskSubmitted, *, msg_id: str | None = "default") -> int:
    ack = await bus.send(SUBMIT_SUBJECT, task, msg_id=task.task_id if msg_id else None)
    return ack.seq


async def _record_writes(bus: Bus) -> int:
    """How many writes the task records' bucket has taken (its stream's last sequence)."""
    return (await bus.js.stream_info(f"KV_{TASKS_BUCKET}")).state.last_seq


async def _handled(bus: Bus, seq: int) -> None:
    """Wait until the task manager has acknowledged the submission at stream sequence ``seq``."""

    async def acknowledged() -> bool:
        info = await bus.js.consumer_info(TASKS.name, "task-manager")
        return info.ack_floor.stream_seq >= seq

    await eventually(acknowledged, timeout=10.0)


async def test_submit_reports_submitted_then_queued_and_publishes_the_planned_run(
    bus: Bus, manager: TaskManager
) -> None:
    """A valid task gets submitted, queued (steps, deadline) and one PipelineRun."""
    await _submit(bus, TaskSubmitted(task_id="wf-ok", template="two", params={"n": "5"}))
    events = await _ended(bus, "wf-ok", "queued")
    assert [e.state for e in events] == ["submitted", "queued"]
    submitted, queued = events
    assert submitted.template == "two"
    assert submitted.source == "task_manager"
    assert queued.steps == ["first", "second"]
    assert queued.deadline == 1_000.0 + 90
    runs = await eventually(lambda: _runs(bus))
    assert len(runs) == 1
    run = runs[0]
    assert run.workflow_id == "wf-ok"
    assert run.order == [["first"], ["second"]]
    assert run.pipeline.steps[0].run == "echo 5 > n.txt"
    assert run.deadline == queued.deadline
    record = await (await TaskStore.open(bus)).get("wf-ok")
    assert record is not None
    assert record.record.state == "queued"


async def test_a_valid_task_is_stored_once_already_queued_before_its_run_is_published(
    bus: Bus, manager: TaskManager
) -> None:
    """Accepting a valid task writes its record once, born queued, and then publishes the run."""
    at_publish: list[TaskRecord | None] = []
    store = await TaskStore.open(bus)

    async def on_run(msg: Any) -> None:
        stored = await store.get("wf-once-written")
        at_publish.append(stored.record if stored is not None else None)

    await bus.nc.subscribe(pipelines.RUN_SUBJECT, cb=on_run)
    before = await _record_writes(bus)
    await _submit(bus, TaskSubmitted(task_id="wf-once-written", template="two"))
    await eventually(lambda: _true(manager.counts["queued"] == 1))
    await eventually(lambda: _true(len(at_publish) == 1))
    assert await _record_writes(bus) - before == 1
    (record,) = at_publish
    assert record is not None
    assert record.state == "queued"
    assert record.accepted_at == 1_000.0
    assert record.submission == TaskSubmitted(task_id="wf-once-written", template="two")
    assert [e.state for e in await _events(bus, "wf-once-written")] == ["submitted", "queued"]
    assert manager.counts["accepted"] == 1


async def test_submit_renders_an_inline_pipeline(bus: Bus, manager: TaskManager) -> None:
    """An inline definition is rendered with the task's parameters and planned."""
    inline = PipelineSpec(
        name="inline",
        params=[msgspec.convert({"name": "who", "default": "x"}, pipelines.ParamSpec)],
        steps=[
            StepSpec(name="b", run="echo {{ who }}", needs=["a"]),
            StepSpec(name="a", run="true"),
        ],
    )
    await _submit(bus, TaskSubmitted(task_id="wf-inline", pipeline=inline, params={"who": "bo"}))
    await _ended(bus, "wf-inline", "queued")
    (run,) = await eventually(lambda: _runs(bus))
    assert run.order == [["a"], ["b"]]
    assert run.pipeline.steps[0].run == "echo bo"
    assert run.template == "inline"


CYCLE = PipelineSpec(
    name="c",
    steps=[StepSpec(name="a", run="x", needs=["b"]), StepSpec(name="b", run="x", needs=["a"])],
)
UNKNOWN_DEP = PipelineSpec(name="u", steps=[StepSpec(name="a", run="x", needs=["zz"])])
DUPLICATE = PipelineSpec(name="d", steps=[StepSpec(name="a", run="x"), StepSpec(name="a", run="y")])
MISSING_INPUT = PipelineSpec(name="m", steps=[StepSpec(name="a", run="x", inputs=["in.csv"])])

REJECTED: dict[str, tuple[TaskSubmitted, str]] = {
    "r-template": (
        TaskSubmitted(task_id="r-template", template="nope"),
        "unknown_template: no template 'nope'",
    ),
    "r-missing": (
        TaskSubmitted(task_id="r-missing", template="hello", pipeline=DUPLICATE),
        "invalid_task: ",
    ),
    "r-neither": (TaskSubmitted(task_id="r-neither"), "invalid_task: "),
    "r-type": (
        TaskSubmitted(task_id="r-type", template="two", params={"n": "many"}),
        "invalid_parameter: parameter 'n' expects int, got str 'many'",
    ),
    "r-unknown-param": (
        TaskSubmitted(task_id="r-unknown-param", template="two", params={"m": 1}),
        "unknown_parameter: parameter 'm'",
    ),
    "r-cycle": (
        TaskSubmitted(task_id="r-cycle", pipeline=CYCLE),
        "cycle: steps depend on each other: a -> b -> a",
    ),
    "r-dep": (
        TaskSubmitted(task_id="r-dep", pipeline=UNKNOWN_DEP),
        "unknown_dependency: step 'a' needs 'zz'",
    ),
    "r-dup": (
        TaskSubmitted(task_id="r-dup", pipeline=DUPLICATE),
        "duplicate_step: step name 'a' is used twice",
    ),
    "r-input": (
        TaskSubmitted(task_id="r-input", pipeline=MISSING_INPUT),
        "missing_input: step 'a' reads 'in.csv'",
    ),
}


async def test_invalid_tasks_are_rejected_with_a_precise_reason_and_nothing_runs(
    bus: Bus, manager: TaskManager
) -> None:
    """Every validation failure ends the workflow rejected, with its reason; no run is published."""
    store = await TaskStore.open(bus)
    for task, _ in REJECTED.values():
        await _submit(bus, task)
    for workflow_id, (_, reason) in REJECTED.items():
        events = await _ended(bus, workflow_id, "rejected")
        assert [e.state for e in events] == ["submitted", "rejected"]
        assert events[-1].reason.startswith(reason), (workflow_id, events[-1].reason)
        stored = await store.get(workflow_id)
        assert stored is not None
        assert (stored.record.state, stored.record.reason) == ("rejected", events[-1].reason)
    assert await _runs(bus) == []
    assert manager.counts["rejected"] == len(REJECTED)


async def test_a_missing_required_parameter_is_rejected(
    bus: Bus, manager: TaskManager, templates_dir: Any
) -> None:
    """A template parameter without default and without value rejects the task."""
    (templates_dir / "need.toml").write_text(
        'name = "need"\n[[params]]\nname = "who"\n[[steps]]\nname = "a"\nrun = "echo {{ who }}"\n'
    )
    await _submit(bus, TaskSubmitted(task_id="r-required", template="need"))
    events = await _ended(bus, "r-required", "rejected")
    assert events[-1].reason == "missing_parameter: required parameter 'who' has no value"


async def test_the_same_key_twice_makes_one_workflow_and_one_run(
    bus: Bus, manager: TaskManager
) -> None:
    """Re-sends inside the stream window and past it (no Nats-Msg-Id) are both dropped."""
    task = TaskSubmitted(task_id="wf-once", template="two")
    await _submit(bus, task)
    await _submit(bus, task)  # deduplicated by the stream
    await _ended(bus, "wf-once", "queued")
    await _submit(bus, task, msg_id=None)  # as if the window had passed
    await eventually(lambda: _true(manager.counts["duplicates"] == 1))
    assert len(await _runs(bus)) == 1
    assert [e.state for e in await _events(bus, "wf-once")] == ["submitted", "queued"]
    assert manager.counts["accepted"] == 1


async def _true(value: bool) -> bool:
    return value


async def test_a_second_submission_that_would_be_rejected_is_dropped_as_a_duplicate(
    bus: Bus, manager: TaskManager
) -> None:
    """An invalid task reusing a queued task's id past the window is dropped, not rejected."""
    await _submit(bus, TaskSubmitted(task_id="wf-kept", template="two"))
    await _ended(bus, "wf-kept", "queued")
    await _submit(bus, TaskSubmitted(task_id="wf-kept", template="nope"), msg_id=None)
    await eventually(lambda: _true(manager.counts["duplicates"] == 1))
    assert [e.state for e in await _events(bus, "wf-kept")] == ["submitted", "queued"]
    stored = await (await TaskStore.open(bus)).get("wf-kept")
    assert stored is not None
    assert stored.record.state == "queued"
    assert manager.counts["rejected"] == 0


async def test_a_redelivered_task_completes_the_interrupted_attempt_once(
    bus: Bus, manager_factory: Any
) -> None:
    """A crash after claiming and publishing, before the ack, still yields exactly one run."""
    await bus.ensure_stream(TASKS)
    await bus.ensure_stream(PIPELINES)
    task = TaskSubmitted(task_id="wf-crash", template="two")
    seq = await _submit(bus, task)
    # The state an earlier attempt left behind: claimed, queued, run published, never acked.
    kv = await bus.key_value(TASK_IDS)
    await kv.create(
        "wf-crash",
        encode(TaskRecord(task_id="wf-crash", state="queued", accepted_at=5.0, sequence=seq)),
    )
    await bus.send(
        pipelines.RUN_SUBJECT,
        PipelineRun(workflow_id="wf-crash", pipeline=CYCLE, order=[]),
        msg_id="wf-crash",
    )
    writes = await _record_writes(bus)
    async with manager_factory().running(bus):
        await _ended(bus, "wf-crash", "queued")
        await _handled(bus, seq)
    runs = await _runs(bus)
    assert [r.workflow_id for r in runs] == ["wf-crash"]
    queued = (await _events(bus, "wf-crash"))[-1]
    assert queued.deadline == 5.0 + 90  # counted from the first acceptance
    assert await _record_writes(bus) == writes  # the record was queued already


async def test_a_redelivery_moves_a_record_left_accepted_to_queued_and_publishes_one_run(
    bus: Bus, manager_factory: Any
) -> None:
    """A record an interrupted attempt left accepted is moved to queued, then the run goes out."""
    await bus.ensure_stream(TASKS)
    task = TaskSubmitted(task_id="wf-half", template="two")
    seq = await _submit(bus, task)
    kv = await bus.key_value(TASK_IDS)
    await kv.create(
        "wf-half",
        encode(TaskRecord(task_id="wf-half", state="accepted", accepted_at=7.0, sequence=seq)),
    )
    actor = manager_factory()
    async with actor.running(bus):
        await _handled(bus, seq)
    assert [e.state for e in await _events(bus, "wf-half")] == ["submitted", "queued"]
    (run,) = await _runs(bus)
    assert run.workflow_id == "wf-half"
    assert run.deadline == 7.0 + 90
    stored = await (await TaskStore.open(bus)).get("wf-half")
    assert stored is not None
    assert (stored.record.state, stored.record.accepted_at) == ("queued", 7.0)
    assert (actor.counts["accepted"], actor.counts["queued"]) == (0, 1)


@pytest.mark.parametrize("state", ["cancelled", "rejected"])
async def test_a_redelivery_of_a_task_already_ended_reports_and_publishes_nothing(
    bus: Bus, manager_factory: Any, state: TaskState
) -> None:
    """A record left cancelled or rejected ends the redelivery: no event, no run, no write."""
    await bus.ensure_stream(TASKS)
    seq = await _submit(bus, TaskSubmitted(task_id="wf-ended", template="two"))
    kv = await bus.key_value(TASK_IDS)
    record = TaskRecord(task_id="wf-ended", state=state, accepted_at=1.0, sequence=seq)
    await kv.create("wf-ended", encode(record))
    writes = await _record_writes(bus)
    async with manager_factory().running(bus):
        await _handled(bus, seq)
    assert await _events(bus, "wf-ended") == []
    assert await _runs(bus) == []
    assert await _record_writes(bus) == writes


async def test_a_second_submission_with_a_claimed_key_is_dropped(
    bus: Bus, manager_factory: Any
) -> None:
    """A record left by another message (other sequence) makes a submission a duplicate."""
    await bus.ensure_stream(TASKS)
    kv = await bus.key_value(TASK_IDS)
    await kv.create(
        "wf-old",
        encode(TaskRecord(task_id="wf-old", state="queued", accepted_at=1.0, sequence=999)),
    )
    await _submit(bus, TaskSubmitted(task_id="wf-old", template="two"))
    actor = manager_factory()
    async with actor.running(bus):
        await eventually(lambda: _true(actor.counts["duplicates"] == 1))
    assert await _events(bus, "wf-old") == []
    assert await _runs(bus) == []


async def test_cancel_broadcasts_to_runners_and_reports_cancelled(
    bus: Bus, manager: TaskManager
) -> None:
    """Cancelling a queued workflow sends CancelRun to every runner and records cancelled."""
    seen: list[CancelRun] = []

    async def on_cancel(msg: Any) -> None:
        seen.append(Codec.of(CancelRun).decode(msg.data))

    await bus.nc.subscribe(pipelines.CANCEL_SUBJECT, cb=on_cancel)
    await _submit(bus, TaskSubmitted(task_id="wf-stop", template="two"))
    await _ended(bus, "wf-stop", "queued")
    reply = await bus.request(
        CANCEL_SUBJECT, CancelTask(workflow_id="wf-stop", reason="enough"), CancelAccepted
    )
    assert reply.workflow_id == "wf-stop"
    events = await _ended(bus, "wf-stop", "cancelled")
    assert events[-1].reason == "enough"
    await eventually(lambda: _true(len(seen) == 1))
    assert seen[0].workflow_id == "wf-stop"
    record = await (await TaskStore.open(bus)).get("wf-stop")
    assert record is not None
    assert record.record.state == "cancelled"


async def test_a_cancel_between_the_claim_and_the_publish_ends_the_workflow_cancelled_unrun(
    bus: Bus, templates_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel after the claim, before the run is published: cancelled, and no step starts."""
    ran = tmp_path / "ran"
    inline = PipelineSpec(name="touch", steps=[StepSpec(name="touch", run=f"touch {ran}")])
    manager = TaskManager(config=TaskManagerConfig(template_dirs=(templates_dir,)))
    runner = PipelineRunner(
        config=RunnerConfig(
            workspace_root=tmp_path / "ws", backend="local", step_user="", lease_ttl=2
        )
    )
    report = manager._report
    answers: list[CancelAccepted] = []

    async def cancel_first(workflow_id: str, state: Any, **fields: Any) -> None:
        # The record is claimed (queued) and the run not yet published: cancel now.
        if state == "submitted" and not answers:
            cancel = CancelTask(workflow_id=workflow_id, reason="not now")
            answers.append(await bus.request(CANCEL_SUBJECT, cancel, CancelAccepted))
        await report(workflow_id, state, **fields)

    monkeypatch.setattr(manager, "_report", cancel_first)
    async with StatusTracker().running(bus), runner.running(bus), manager.running(bus):
        await _submit(bus, TaskSubmitted(task_id="wf-race", pipeline=inline))
        await eventually(lambda: _true(manager.counts["queued"] == 1))
        # The task manager does not see the cancel: the run is published all the same.
        assert (await bus.js.stream_info(PIPELINES.name)).state.last_seq == 1
        results = await TypedBucket.bind(bus, RESULTS, PipelineResult)

        async def runner_done() -> str | None:
            """How the runner ended the run: skipped it, or stored its result's state."""
            if runner.context.counters.get("runs_skipped", 0) == 1:
                return "skipped"
            entry = await results.get_or_none("wf-race")
            return None if entry is None else entry.value.state

        outcome = await eventually(runner_done, timeout=20.0)
        assert outcome in ("skipped", "cancelled")
        view = await eventually(
            lambda: _cancelled_view(bus, "wf-race"), timeout=10.0, ignoring=(NotFound,)
        )
    assert view.reason == "not now"
    assert not ran.exists()
    assert [a.workflow_id for a in answers] == ["wf-race"]
    stored = await (await TaskStore.open(bus)).get("wf-race")
    assert stored is not None
    assert stored.record.state == "cancelled"
    events = await _read(bus, STATUS_EVENTS.name, event_subject("wf-race"), StatusEvent)
    workflow = [e.state for e in events if isinstance(e, WorkflowTransition)]
    assert not {"succeeded", "failed", "timed_out"} & set(workflow), workflow
    # Stored before anything the runner said: the tracker, keeping a terminal state,
    # never showed the workflow preparing or running.
    assert not {"preparing", "running"} & set(workflow[: workflow.index("cancelled")]), workflow
    steps = [e.state for e in events if isinstance(e, StepTransition)]
    assert set(steps) <= {"cancelled"}, steps


async def _cancelled_view(bus: Bus, workflow_id: str) -> Any:
    view = await get_workflow(bus, workflow_id)
    return view if view.state == "cancelled" else None


async def test_cancel_of_an_unknown_workflow_is_not_found(bus: Bus, manager: TaskManager) -> None:
    """No record, no workflow: NotFound."""
    with pytest.raises(NotFound, match="ghost"):
        await bus.request(CANCEL_SUBJECT, CancelTask(workflow_id="ghost"), CancelAccepted)


async def test_cancel_of_a_rejected_workflow_conflicts(bus: Bus, manager: TaskManager) -> None:
    """A rejected workflow never ran, so cancelling it is a conflict."""
    await _submit(bus, TaskSubmitted(task_id="wf-rej", template="nope"))
    await _ended(bus, "wf-rej", "rejected")
    with pytest.raises(Conflict, match="rejected"):
        await bus.request(CANCEL_SUBJECT, CancelTask(workflow_id="wf-rej"), CancelAccepted)


async def test_a_task_requiring_a_capability_without_routing_is_rejected(
    bus: Bus, manager_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With capability routing off the task is rejected as no_capable_agent."""
    actor = manager_factory()
    actor.config = dataclasses.replace(actor.config, dispatch=None)
    async with actor.running(bus):
        await _submit(bus, TaskSubmitted(task_id="wf-agent", template="two", requires="text.stats"))
        events = await _ended(bus, "wf-agent", "rejected")
    assert events[-1].reason.startswith("no_capable_agent: ")
    assert await _runs(bus) == []


async def test_a_task_requiring_a_capability_goes_to_the_dispatcher(
    bus: Bus, manager_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a dispatcher installed the task is handed to it, not to a pipeline runner."""
    calls: list[tuple[str, str | None]] = []

    actor = manager_factory()
    async with actor.running(bus):
        assert actor.agents is not None

        async def dispatch(task: TaskSubmitted, workflow_id: str) -> None:
            calls.append((workflow_id, task.requires))

        monkeypatch.setattr(actor.agents, "dispatch", dispatch)
        await _submit(bus, TaskSubmitted(task_id="wf-agent", template="two", requires="text.stats"))
        await eventually(lambda: _true(calls == [("wf-agent", "text.stats")]))
        await eventually(lambda: _true(actor.counts["dispatched"] == 1))
    assert await _runs(bus) == []
    record = await (await TaskStore.open(bus)).get("wf-agent")
    assert record is not None
    assert record.record.state == "dispatched"


# -- submissions that do not decode ---------------------------------------------------


async def _dead_lettered(bus: Bus) -> list[dict[str, str]]:
    """Headers of every dead-lettered submission, oldest first."""
    from protocols.errors import DEAD_LETTER_STREAM, dead_letter_subject

    try:
        info = await bus.js.stream_info(DEAD_LETTER_STREAM)
    except Exception:
        return []
    found = []
    if info.state.messages == 0:
        return []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(DEAD_LETTER_STREAM, seq)
        if msg.subject == dead_letter_subject(TASKS.name):
            found.append(dict(msg.headers or {}))
    return found


async def _submit_json(bus: Bus, body: object, msg_id: str | None = None) -> None:
    headers = {"Content-Type": "application/json"}
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    await bus.js.publish(SUBMIT_SUBJECT, msgspec.json.encode(body), headers=headers)


async def test_invalid_submit_with_a_readable_task_id_is_rejected_and_dead_lettered(
    bus: Bus, manager: TaskManager
) -> None:
    """A submit that fails validation ends rejected (invalid_task: why) and is dead-lettered."""
    await _submit_json(bus, {"task_id": "bad-body", "template": 42})
    events = await _ended(bus, "bad-body", "rejected")
    assert [e.state for e in events] == ["submitted", "rejected"]
    assert events[-1].reason.startswith("invalid_task: ")
    assert "template" in events[-1].reason
    stored = await (await TaskStore.open(bus)).get("bad-body")
    assert stored is not None
    assert stored.record.state == "rejected"
    assert await eventually(lambda: _dead_lettered(bus))


async def test_invalid_submit_without_a_task_id_is_rejected_under_its_msg_id(
    bus: Bus, manager: TaskManager
) -> None:
    """With no usable task_id in the body, the Nats-Msg-Id header names the workflow."""
    await _submit_json(bus, {"template": "two", "params": "n=1"}, msg_id="by-header")
    events = await _ended(bus, "by-header", "rejected")
    assert events[-1].reason.startswith("invalid_task: ")


async def test_invalid_submit_never_rejects_an_accepted_task_with_the_same_id(
    bus: Bus, manager: TaskManager
) -> None:
    """A later invalid message reusing a live task's id is dead-lettered; the task stands."""
    await _submit(bus, TaskSubmitted(task_id="taken", template="two"))
    await _ended(bus, "taken", "queued")
    await _submit_json(bus, {"task_id": "taken", "template": 42}, msg_id="taken-again")
    await eventually(lambda: _dead_lettered(bus))
    assert all(e.state != "rejected" for e in await _events(bus, "taken"))
    stored = await (await TaskStore.open(bus)).get("taken")
    assert stored is not None
    assert stored.record.state == "queued"
