"""``troupe executions``: list the running steps and stop one against a real runner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.executions import format_table
from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from protocols.pipelines import StepLease, StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result


def test_format_table_shows_workflow_step_backend_host_and_running_time() -> None:
    """One row per running step under a header; an empty registry says so."""
    lease = StepLease(
        workflow_id="wf-1",
        runner="h-1-ab",
        token=3,
        step="build",
        attempt=2,
        acquired_at=100.0,
        host="h",
        backend="local",
    )
    lines = format_table([lease], now=112.5).splitlines()
    assert lines[0].split() == [
        "WORKFLOW",
        "STEP",
        "ATTEMPT",
        "BACKEND",
        "HOST",
        "RUNNER",
        "RUNNING",
    ]
    assert lines[1].split() == ["wf-1", "build", "2", "local", "h", "h-1-ab", "12.5s"]
    assert format_table([], now=0.0) == "no steps are running"


@pytest.mark.integration
async def test_executions_command_lists_a_running_step_and_stops_it(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ls shows the sleeping step; stop ends its workflow cancelled; a second stop exits 1."""

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["executions", *argv, "--nats-url", nats_url])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    config = RunnerConfig(
        workspace_root=tmp_path / "ws", backend="local", kill_grace=0.5, step_user="", lease_ttl=2
    )
    async with PipelineRunner(config=config).running(bus):
        code, out = await cli()
        assert (code, out.strip()) == (0, "no steps are running")
        await publish(bus, make_run("wf-cli-exec", [StepSpec(name="nap", run="sleep 30")]))

        async def listed() -> str | None:
            code, out = await cli("ls")
            return out if code == 0 and "wf-cli-exec" in out else None

        out = await eventually(listed, timeout=10)
        assert out.splitlines()[1].split()[:4] == ["wf-cli-exec", "nap", "1", "local"]
        code, out = await cli("stop", "wf-cli-exec")
        assert code == 2
        assert "WORKFLOW and STEP are required" in out
        code, out = await cli("stop", "wf-cli-exec", "nap")
        assert code == 0
        assert "to stop step nap of workflow wf-cli-exec" in out
        result = await wait_result(bus, "wf-cli-exec")
        assert result.state == "cancelled"

        async def released() -> bool:
            code, out = await cli("stop", "wf-cli-exec", "nap")
            return code == 1 and "is not executing now" in out

        await eventually(released, timeout=10)
