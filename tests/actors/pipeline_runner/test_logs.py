"""Live step output: lines published as a step prints them, bounded, followed until the end."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.pipeline_runner import PipelineRunner
from actors.pipeline_runner.client import follow_logs, get_logs
from actors.pipeline_runner.logs import LogPublisher
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import ManualClock, eventually
from actors.status_tracker import StatusTracker
from actors.status_tracker.client import get_workflow
from protocols.pipelines import StepOutput, StepSpec, logs_subject
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result

pytestmark = pytest.mark.integration


async def _collect(bus: Bus, subject: str) -> tuple[list[dict[str, object]], Subscription]:
    seen: list[dict[str, object]] = []

    async def on_msg(msg: Msg) -> None:
        seen.append(json.loads(msg.data))

    return seen, await bus.nc.subscribe(subject, cb=on_msg)


async def test_lines_are_published_in_json_and_bounded_in_rate_and_length(bus: Bus) -> None:
    """Over the burst lines are dropped and counted on the next published line; lines are cut."""
    clock = ManualClock()
    seen, sub = await _collect(bus, logs_subject("wf-pub"))
    live = LogPublisher(bus, "wf-pub", "s", 2, clock=clock, rate=10.0, burst=2, max_line=5)
    live.start()
    for text in ("one", "two", "three", "four"):
        live.line("stdout", text)
    clock.advance(0.1)  # one token back
    live.line("stderr", "abcdefgh")
    await live.close()
    await bus.nc.flush()
    await eventually(lambda: len(seen) == 3, timeout=5)
    await sub.unsubscribe()
    assert [(m["line"], m["stream"], m["seq"], m["dropped"]) for m in seen] == [
        ("one", "stdout", 1, 0),
        ("two", "stdout", 2, 0),
        ("abcde", "stderr", 3, 2),
    ]
    assert {(m["workflow_id"], m["step"], m["attempt"]) for m in seen} == {("wf-pub", "s", 2)}
    assert (live.published, live.dropped) == (3, 2)


async def test_a_running_steps_output_is_followed_until_the_workflow_ends(
    bus: Bus, runner: PipelineRunner
) -> None:
    """follow_logs yields each line while the step runs and returns once the workflow ends."""
    gate = runner.config.workspace_root.parent / "gate"
    # The step ticks until the follower has seen a tick, so it is followed while it runs.
    script = f"while [ ! -e {gate} ]; do echo tick; sleep 0.05; done; echo oops >&2; echo second"
    async with StatusTracker().running(bus):
        await publish(bus, make_run("wf-logs", [StepSpec(name="talk", run=script)]))

        async def known() -> bool:
            return (await get_workflow(bus, "wf-logs")).state == "running"

        await eventually(known, timeout=10, ignoring=(NotFound,))
        with pytest.raises(NotFound, match="no result"):
            await get_logs(bus, "wf-logs")
        lines: list[StepOutput] = []

        async def follow() -> None:
            async for out in follow_logs(bus, "wf-logs", poll=0.2):
                lines.append(out)
                if out.line == "tick" and not gate.exists():
                    gate.touch()

        await asyncio.wait_for(follow(), timeout=20)
        result = await wait_result(bus, "wf-logs")
    assert result.state == "succeeded"
    # Two pipes: their lines may interleave either way.
    assert sorted((o.stream, o.line) for o in lines if o.line != "tick") == [
        ("stderr", "oops"),
        ("stdout", "second"),
    ]
    assert lines[0].line == "tick"
    assert [o.seq for o in lines] == sorted(o.seq for o in lines)
    (talk,) = await get_logs(bus, "wf-logs", "talk")
    assert talk.stdout_tail.splitlines()[-1] == "second"
    assert talk.stderr_tail == "oops"
    with pytest.raises(NotFound, match="no step 'nope'"):
        await get_logs(bus, "wf-logs", "nope")


async def test_a_step_that_prints_nothing_costs_no_publishing_task(bus: Bus) -> None:
    """The publishing task starts with the first line; without one, close has nothing to stop."""
    before = len(asyncio.all_tasks())
    live = LogPublisher(bus, "wf-quiet", "s", 1, clock=ManualClock()).start()
    assert len(asyncio.all_tasks()) == before
    await live.close()
    assert live.published == 0
    talkative = LogPublisher(bus, "wf-talk", "s", 1, clock=ManualClock()).start()
    talkative.line("stdout", "hello")
    assert len(asyncio.all_tasks()) == before + 1
    await talkative.close()
    assert talkative.published == 1
