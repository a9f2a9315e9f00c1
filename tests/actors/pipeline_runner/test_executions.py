"""Running steps across runners: listed from their step leases, stopped by their runner."""

from __future__ import annotations

import socket

import pytest

from actors.pipeline_runner import PipelineRunner
from actors.pipeline_runner.client import list_executions, stop_execution
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from protocols.pipelines import StepLease, StepSpec
from tests.actors.pipeline_runner.conftest import make_run, processes_with, publish, wait_result

pytestmark = pytest.mark.integration


async def test_a_running_step_is_listed_then_stopped_and_its_workflow_ends_cancelled(
    bus: Bus, runner: PipelineRunner
) -> None:
    """A sleeping step is listed with runner, host and backend; stop kills it: cancelled."""
    marker = "troupe-executions-marker-23"
    steps = [
        StepSpec(name="nap", run=f"sleep 30 # {marker}"),
        StepSpec(name="after", run="true", needs=["nap"]),
    ]
    await publish(bus, make_run("wf-exec", steps))

    async def listed() -> StepLease | None:
        found = [e for e in await list_executions(bus) if e.workflow_id == "wf-exec"]
        return found[0] if found and processes_with(marker) else None

    lease = await eventually(listed, timeout=10)
    assert (lease.step, lease.attempt, lease.backend) == ("nap", 1, "local")
    assert lease.runner == runner.runner_id
    assert lease.host == socket.gethostname()
    assert lease.acquired_at > 0

    asked = await stop_execution(bus, "wf-exec", "nap")
    assert asked.runner == runner.runner_id
    result = await wait_result(bus, "wf-exec")
    assert result.state == "cancelled"
    assert result.reason == "step nap stopped by an operator"
    assert {s.name: s.state for s in result.steps} == {"nap": "cancelled", "after": "cancelled"}
    assert processes_with(marker) == []

    async def gone() -> bool:
        return not [e for e in await list_executions(bus) if e.workflow_id == "wf-exec"]

    await eventually(gone, timeout=10)


async def test_stopping_a_step_that_is_not_executing_is_not_found(bus: Bus) -> None:
    """No lease for the step: NotFound, and nothing is asked of any runner."""
    assert await list_executions(bus) == []
    with pytest.raises(NotFound, match="is not executing now"):
        await stop_execution(bus, "wf-none", "nap")
