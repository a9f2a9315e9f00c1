"""The pipeline runner actor in-process on a real nats-server: runs, events, results, cache."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import nats.js.errors
import pytest
from nats.js.errors import KeyNotFoundError

from actors.pipeline_runner import PipelineRunner
from actors.pipeline_runner.cache import StepCache
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.topology import BREAKERS, CHECKPOINTS, PIPELINES, STATUS_EVENTS, STEP_CACHE, WORKFLOWS
from protocols.breakers import BreakerStatus, breaker_kv_key
from protocols.pipelines import (
    CANCEL_SUBJECT,
    RESULT_SUBJECT,
    CachedStep,
    CancelRun,
    GetResult,
    PipelineResult,
    RunCheckpoint,
    StepResult,
    StepSpec,
)
from protocols.status import StepProgress, StepTransition, WorkflowTransition, WorkflowView
from tests.actors.pipeline_runner.conftest import (
    make_run,
    processes_with,
    publish,
    status_events,
    stored_result,
    wait_result,
)

pytestmark = pytest.mark.integration


async def test_run_passes_outputs_between_steps_and_stores_the_result(
    bus: Bus, runner: PipelineRunner
) -> None:
    """Outputs of one step are the next step's inputs; every step is in the result."""
    steps = [
        StepSpec(name="extract", run="printf 'a\\nb\\nc\\n' > data.txt", outputs=["data.txt"]),
        StepSpec(
            name="transform",
            run="tr a-z A-Z < data.txt > up.txt",
            needs=["extract"],
            inputs=["data.txt"],
            outputs=["up.txt"],
        ),
        StepSpec(
            name="report",
            run="wc -l < up.txt > report.txt; cat up.txt",
            needs=["transform"],
            inputs=["up.txt"],
            outputs=["report.txt"],
        ),
    ]
    await publish(bus, make_run("wf-pass", steps))
    result = await wait_result(bus, "wf-pass")
    assert result.state == "succeeded", result
    assert [s.name for s in result.steps] == ["extract", "transform", "report"]
    assert result.steps[2].stdout_tail == "A\nB\nC"
    report = result.steps[2].artifacts[0]
    data = await runner.context.store.download(report)
    assert data.strip() == b"3"
    assert result.backend == "local"
    reply = await bus.request(RESULT_SUBJECT, GetResult(workflow_id="wf-pass"), PipelineResult)
    assert reply == result


async def test_result_endpoint_answers_not_found_for_an_unknown_workflow(
    bus: Bus, runner: PipelineRunner
) -> None:
    """GetResult for a workflow without a result is a typed not_found error."""
    with pytest.raises(NotFound):
        await bus.request(RESULT_SUBJECT, GetResult(workflow_id="nope"), PipelineResult)


async def test_status_events_follow_the_run_and_report_progress(
    bus: Bus, runner: PipelineRunner
) -> None:
    """preparing, running, step transitions, progress lines and a terminal transition."""
    steps = [StepSpec(name="work", run="echo '::progress 40'; echo '::message {\"k\": 1}'; exit 3")]
    await publish(bus, make_run("wf-events", steps))
    result = await wait_result(bus, "wf-events")
    assert result.state == "failed"
    assert result.steps[0].exit_code == 3
    assert result.error_class == "permanent"
    events = await status_events(bus, "wf-events")
    workflow = [e.state for e in events if isinstance(e, WorkflowTransition)]
    assert workflow == ["preparing", "running", "failed"]
    step = [(e.state, e.exit_code) for e in events if isinstance(e, StepTransition)]
    assert step == [("running", None), ("failed", 3)]
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert [p.percent for p in progress] == [40.0, None]
    assert progress[1].message == {"k": 1}


async def test_dependants_of_a_failed_step_are_skipped_and_independent_steps_run(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A failure skips what needs it, not what does not."""
    # A failure stops steps still running, so "bad" fails only once "other" has ended and
    # been reaped by the runner (its pid no longer exists), however fast steps start.
    gate = tmp_path / "other.pid"
    steps = [
        StepSpec(
            name="bad",
            run=f"until [ -s {gate} ]; do sleep 0.01; done; "
            f"while kill -0 $(cat {gate}) 2>/dev/null; do sleep 0.01; done; exit 1",
        ),
        StepSpec(name="after", run="true", needs=["bad"]),
        StepSpec(name="other", run=f"echo $$ > {gate}.tmp && mv {gate}.tmp {gate}"),
    ]
    await publish(bus, make_run("wf-skip", steps))
    result = await wait_result(bus, "wf-skip")
    states = {s.name: s.state for s in result.steps}
    assert states == {"bad": "failed", "after": "skipped", "other": "succeeded"}
    assert result.state == "failed"


async def test_second_identical_step_is_served_from_the_cache(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """Same command, env and inputs: the second workflow does not execute the step."""
    counter = tmp_path / "count"
    step = StepSpec(name="s", run=f"echo x >> {counter}; echo hi > out.txt", outputs=["out.txt"])
    await publish(bus, make_run("wf-c1", [step]))
    first = await wait_result(bus, "wf-c1")
    await publish(bus, make_run("wf-c2", [step]))
    second = await wait_result(bus, "wf-c2")
    assert not first.steps[0].cache_hit
    assert second.steps[0].cache_hit
    assert second.steps[0].artifacts == first.steps[0].artifacts
    assert counter.read_text() == "x\n"
    stats = runner.stats_data()["pipeline-runner"]
    assert stats["cache_hits"] == 1
    assert stats["cache_misses"] == 1


async def test_a_step_cache_entry_is_stored_with_one_write_to_the_cache_bucket(
    bus: Bus, runner: PipelineRunner
) -> None:
    """Storing a step's cache entry is one message of its KV stream; no object store is written."""
    stream = f"KV_{STEP_CACHE.name}"
    before = (await bus.js.stream_info(stream)).state.last_seq
    await publish(bus, make_run("wf-one-write", [StepSpec(name="s", run="echo one")]))
    assert (await wait_result(bus, "wf-one-write")).state == "succeeded"
    assert (await bus.js.stream_info(stream)).state.last_seq - before == 1
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.stream_info(f"OBJ_{STEP_CACHE.name}")


async def test_cancel_kills_the_step_processes_and_ends_cancelled(
    bus: Bus, runner: PipelineRunner
) -> None:
    """CancelRun stops a running workflow: processes gone, state cancelled."""
    marker = "troupe-cancel-marker-71"
    steps = [
        StepSpec(name="long", run=f"sleep 30 # {marker}"),
        StepSpec(name="never", run="true", needs=["long"]),
    ]
    await publish(bus, make_run("wf-cancel", steps))

    async def started() -> bool:
        return bool(processes_with(marker))

    await eventually(started, timeout=10)
    await bus.publish(CANCEL_SUBJECT, CancelRun(workflow_id="wf-cancel", reason="user"))
    result = await wait_result(bus, "wf-cancel")
    assert result.state == "cancelled"
    assert result.reason == "user"
    assert {s.name: s.state for s in result.steps} == {"long": "cancelled", "never": "cancelled"}
    assert processes_with(marker) == []
    events = await status_events(bus, "wf-cancel")
    assert [e.state for e in events if isinstance(e, WorkflowTransition)][-1] == "cancelled"


async def test_step_timeout_kills_children_and_fails_the_run_and_deadline_times_it_out(
    bus: Bus, runner: PipelineRunner
) -> None:
    """A step's own time-out fails the run (class timeout); the workflow deadline times it out."""
    marker = "troupe-timeout-marker-72"
    steps = [
        StepSpec(name="slow", run=f"(sleep 30 # {marker}\n) & sleep 30 # {marker}", timeout=0.5)
    ]
    await publish(bus, make_run("wf-timeout", steps))
    deadline_steps = [StepSpec(name="slow", run=f"sleep 30 # {marker}-d")]
    await publish(bus, make_run("wf-deadline", deadline_steps, deadline=time.time() + 1.0))
    timed = await wait_result(bus, "wf-timeout")
    assert timed.state == "failed"
    assert timed.steps[0].state == "timed_out"
    assert timed.error_class == "timeout"
    late = await wait_result(bus, "wf-deadline")
    assert late.state == "timed_out"
    assert late.reason == "workflow deadline passed"
    assert processes_with(marker) == []


async def test_run_of_a_workflow_already_cancelled_is_acknowledged_without_running(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A terminal workflow view makes the runner skip the run."""
    kv = await bus.key_value(WORKFLOWS)
    view = WorkflowView(workflow_id="wf-gone", state="cancelled", created_at=1.0, updated_at=1.0)
    await kv.put("wf-gone", msgspec.msgpack.encode(view))
    side = tmp_path / "ran"
    await publish(bus, make_run("wf-gone", [StepSpec(name="s", run=f"touch {side}")]))

    async def skipped() -> bool:
        return runner.context.counters.get("runs_skipped", 0) == 1

    await eventually(skipped, timeout=10)
    assert not side.exists()
    assert await stored_result(bus, "wf-gone") is None


async def test_a_first_delivery_reads_its_result_and_view_once_with_the_lease_held(
    bus: Bus, runner: PipelineRunner
) -> None:
    """A run delivered for the first time looks for a stored result and an ended view once."""
    store = runner.context.store
    reads: list[str] = []
    read_result, read_view = store.result, store.view

    async def result(workflow_id: str) -> PipelineResult | None:
        reads.append("result")
        return await read_result(workflow_id)

    async def view(workflow_id: str) -> WorkflowView | None:
        reads.append("view")
        return await read_view(workflow_id)

    store.result = result  # type: ignore[method-assign]
    store.view = view  # type: ignore[method-assign]
    await publish(bus, make_run("wf-first", [StepSpec(name="s", run="true", cache=False)]))
    assert (await wait_result(bus, "wf-first")).state == "succeeded"
    assert reads == ["result", "view"]


async def test_open_breaker_fails_the_step_fast_with_circuit_open(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A step whose image breaker is open is not executed."""
    kv = await bus.key_value(BREAKERS)
    status = BreakerStatus(key="image:broken:1", state="forced_open", since=time.time())
    await kv.put(breaker_kv_key(status.key), msgspec.msgpack.encode(status))
    side = tmp_path / "ran"

    async def seen() -> bool:
        return runner._view is not None and not runner._view.allows("image:broken:1")

    await eventually(seen)
    await publish(
        bus, make_run("wf-open", [StepSpec(name="s", run=f"touch {side}", image="broken:1")])
    )
    result = await wait_result(bus, "wf-open")
    assert result.state == "failed"
    assert result.reason.startswith("step s: circuit_open: breaker image:broken:1 is open")
    assert result.steps[0].error_class == "unavailable"
    assert not side.exists()


async def test_transient_failure_with_a_retry_policy_is_retried_through_jetstream(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A flaky step retried by its policy: shown retrying, earlier steps not run again."""
    first, flaky = tmp_path / "first", tmp_path / "flaky"
    steps = [
        StepSpec(name="first", run=f"echo 1 >> {first}", cache=False),
        StepSpec(
            name="flaky",
            needs=["first"],
            retry="quick",
            cache=False,
            run=f"echo 1 >> {flaky}; [ $(wc -l < {flaky}) -ge 2 ] || exit 75",
        ),
    ]
    await publish(bus, make_run("wf-retry", steps))
    result = await wait_result(bus, "wf-retry")
    assert result.state == "succeeded"
    assert first.read_text() == "1\n"
    assert flaky.read_text() == "1\n1\n"
    events = await status_events(bus, "wf-retry")
    states = [e.state for e in events if isinstance(e, WorkflowTransition)]
    assert "retrying" in states
    assert states[-1] == "succeeded"


async def test_step_with_a_retry_policy_waits_for_an_open_breaker_to_half_open(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """With a policy that retries ``unavailable``, an open breaker delays the step, not fails it."""
    kv = await bus.key_value(BREAKERS)
    opened = time.time()
    status = BreakerStatus(
        key="image:mending:1", state="open", since=opened, open_until=opened + 1.5
    )
    await kv.put(breaker_kv_key(status.key), msgspec.msgpack.encode(status))
    side = tmp_path / "ran"

    async def seen() -> bool:
        return runner._view is not None and not runner._view.allows("image:mending:1")

    await eventually(seen)
    step = StepSpec(name="s", run=f"touch {side}", image="mending:1", retry="quick", cache=False)
    await publish(bus, make_run("wf-wait-breaker", [step]))

    async def retrying() -> WorkflowTransition | None:
        events = await status_events(bus, "wf-wait-breaker")
        found = [e for e in events if isinstance(e, WorkflowTransition) and e.state == "retrying"]
        return found[0] if found else None

    announced = await eventually(retrying, timeout=10)
    assert announced.next_attempt_at is not None
    assert announced.next_attempt_at >= opened + 1.5 - 0.05
    assert not side.exists()
    closed = BreakerStatus(key="image:mending:1", state="closed", since=time.time())
    await kv.put(breaker_kv_key(closed.key), msgspec.msgpack.encode(closed))
    result = await wait_result(bus, "wf-wait-breaker")
    assert result.state == "succeeded"
    assert side.exists()


async def test_a_one_step_run_writes_its_checkpoint_when_the_step_starts_and_ends_only(
    bus: Bus, runner: PipelineRunner
) -> None:
    """A one-step run costs three checkpoint writes: step started, step recorded, purged."""
    stream = f"KV_{CHECKPOINTS.name}"
    await publish(bus, make_run("wf-cp-warm", [StepSpec(name="s", run="true", cache=False)]))
    await wait_result(bus, "wf-cp-warm")

    async def all_acked() -> bool:
        info = await bus.js.consumer_info(PIPELINES.name, "pipeline-runner")
        return (info.num_pending, info.num_ack_pending) == (0, 0)

    await eventually(all_acked)
    before = (await bus.js.stream_info(stream)).state.last_seq
    await publish(bus, make_run("wf-cp", [StepSpec(name="s", run="true", cache=False)]))
    assert (await wait_result(bus, "wf-cp")).state == "succeeded"
    await eventually(all_acked)
    assert (await bus.js.stream_info(stream)).state.last_seq - before == 3


class _HeldCache(StepCache):
    """The shared step cache with its writes held back until released (a slow store)."""

    def __init__(self, store: TypedBucket[CachedStep], release: asyncio.Event) -> None:
        super().__init__(store)
        self._release = release

    async def put(self, key: str, result: StepResult, *, template: str | None = None) -> None:
        await self._release.wait()
        await super().put(key, result, template=template)


async def test_a_step_is_announced_and_recorded_while_its_cache_entry_is_written(
    bus: Bus, runner: PipelineRunner, cache_bucket: TypedBucket[CachedStep]
) -> None:
    """The cache write runs beside the step's announcement and checkpoint, not before them;
    the run's result waits for it, so an entry is shared before its result is stored."""
    release = asyncio.Event()
    runner.context.cache = _HeldCache(cache_bucket, release)
    await publish(bus, make_run("wf-held", [StepSpec(name="s", run="echo held")]))
    checkpoints = await bus.key_value(CHECKPOINTS)

    async def recorded() -> bool:
        try:
            entry = await checkpoints.get("wf-held")
        except KeyNotFoundError:
            return False
        checkpoint = msgspec.msgpack.decode(entry.value or b"", type=RunCheckpoint)
        return [s.name for s in checkpoint.steps] == ["s"]

    await eventually(recorded, timeout=20)
    announced = [e for e in await status_events(bus, "wf-held") if isinstance(e, StepTransition)]
    assert [e.state for e in announced][-1] == "succeeded"
    assert await stored_result(bus, "wf-held") is None  # its cache write is still held
    release.set()
    result = await wait_result(bus, "wf-held")
    assert result.state == "succeeded"
    entries = await cache_bucket.keys()
    assert len(entries) == 1
    assert await StepCache(cache_bucket).get(entries[0]) is not None


async def test_a_step_whose_start_cannot_be_announced_does_not_execute(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A step starts only once its ``running`` is stored, so history reports every execution;
    its intent stays, and once the status stream takes events again it runs as ``runner_lost``."""
    side = tmp_path / "attempts"
    await bus.js.delete_stream(STATUS_EVENTS.name)
    step = StepSpec(name="s", run=f'echo "$TROUPE_ATTEMPT" >> {side}', cache=False)
    await publish(bus, make_run("wf-unannounced", [step]))
    consumer = await bus.js.consumer_info(PIPELINES.name, "pipeline-runner")
    delivered = consumer.delivered.consumer_seq if consumer.delivered else 0

    async def handed_back() -> bool:
        info = await bus.js.consumer_info(PIPELINES.name, "pipeline-runner")
        return info.num_redelivered > 0 or (
            info.delivered is not None and info.delivered.consumer_seq > delivered + 1
        )

    await eventually(handed_back, timeout=30)
    assert not side.exists()
    checkpoints = await bus.key_value(CHECKPOINTS)
    entry = await checkpoints.get("wf-unannounced")
    checkpoint = msgspec.msgpack.decode(entry.value or b"", type=RunCheckpoint)
    assert checkpoint.steps == []
    assert checkpoint.in_flight == {"s": 1}
    await bus.ensure_stream(STATUS_EVENTS)
    result = await wait_result(bus, "wf-unannounced", timeout=90)
    assert result.state == "succeeded"
    assert [(s.attempt, s.attempt_reason) for s in result.steps] == [(2, "runner_lost")]
    assert side.read_text().split() == ["2"]
    running = [
        (e.step_attempt, e.attempt_reason)
        for e in await status_events(bus, "wf-unannounced")
        if isinstance(e, StepTransition) and e.state == "running"
    ]
    assert running == [(2, "runner_lost")]
