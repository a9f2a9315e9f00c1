"""``troupe logs``: stored tails of an ended workflow, live lines of a running one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.logs import format_line
from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.status_tracker.client import get_workflow
from protocols.pipelines import StepOutput, StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result


def test_format_line_prefixes_the_step_and_notes_dropped_lines() -> None:
    """``STEP | line`` when several steps are followed; dropped lines are announced first."""
    out = StepOutput(
        workflow_id="wf", step="build", attempt=1, stream="stdout", line="hi", seq=3, at=1.0
    )
    assert format_line(out, prefix=True) == "build | hi"
    assert format_line(out, prefix=False) == "hi"
    dropped = StepOutput(
        workflow_id="wf",
        step="b",
        attempt=1,
        stream="stdout",
        line="x",
        seq=9,
        at=1.0,
        dropped=4,
    )
    assert format_line(dropped, prefix=False) == "[4 lines dropped]\nx"


@pytest.mark.integration
async def test_logs_follows_a_running_step_then_prints_the_stored_tails(
    bus: Bus, nats_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """--follow prints lines while the step runs and returns at the end; then the tails."""
    gate = tmp_path / "gate"
    script = f"while [ ! -e {gate} ]; do echo tick; sleep 0.05; done; echo done-now"
    config = RunnerConfig(
        workspace_root=tmp_path / "ws", backend="local", kill_grace=0.5, step_user="", lease_ttl=2
    )
    argv = ["--nats-url", nats_url]
    async with StatusTracker().running(bus), PipelineRunner(config=config).running(bus):
        await publish(bus, make_run("wf-cli-logs", [StepSpec(name="talk", run=script)]))

        async def running() -> bool:
            return (await get_workflow(bus, "wf-cli-logs")).state == "running"

        await eventually(running, timeout=10, ignoring=(NotFound,))
        code = await asyncio.to_thread(main, ["logs", "wf-cli-logs", *argv])
        assert code == 1
        assert "has no result yet" in capfd.readouterr().err
        follower = asyncio.create_task(
            asyncio.to_thread(main, ["logs", "wf-cli-logs", "--follow", *argv])
        )

        def ticked() -> bool:
            # The step ticks until the follower has printed a tick.
            if "talk | tick" in capfd.readouterr().out:
                gate.touch()
            return gate.exists()

        await eventually(ticked, timeout=15)
        assert await asyncio.wait_for(follower, timeout=20) == 0
        assert "talk | done-now" in capfd.readouterr().out
        await wait_result(bus, "wf-cli-logs")
        code = await asyncio.to_thread(main, ["logs", "wf-cli-logs", "--step", "talk", *argv])
    assert code == 0
    assert capfd.readouterr().out.splitlines()[-1] == "done-now"
