"""The backend rollout flag steers a running runner without a restart.

No Dagger engine runs here, so the runner's Dagger backend is swapped for a
test backend that records what it was given and succeeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from actors.feature_flags.client import FlagStore
from actors.pipeline_runner import PipelineRunner
from actors.pipeline_runner.backends.base import StepExecution, StepRequest, StopSignal
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from protocols.flags import BACKEND_FLAG, Flag
from protocols.pipelines import StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result


@dataclass
class RecordingBackend:
    """Stands in for Dagger: records each workflow whose step it ran, and succeeds."""

    name: str = "dagger"
    ran: list[str] = field(default_factory=list)

    async def execute(
        self, request: StepRequest, stop: StopSignal, events: object
    ) -> StepExecution:
        """Record the workflow and succeed at once."""
        self.ran.append(request.workflow_id)
        return StepExecution(state="succeeded", exit_code=0)

    async def close(self) -> None:
        """Nothing to release."""


async def test_backend_flag_change_reaches_a_running_runner_within_a_second(
    bus: Bus, runner: PipelineRunner
) -> None:
    """At 100 % auto pipelines go to the flag's backend; set to 0 they run locally again."""
    recording = RecordingBackend()
    runner.context.backends.dagger = recording  # type: ignore[assignment]
    flags = await FlagStore.bind(bus)
    step = [StepSpec(name="only", run="true")]

    await flags.set(
        Flag(name=BACKEND_FLAG, rollout=100.0, on="dagger", off="local"), by="test", at=time.time()
    )

    async def seen(rollout: float) -> bool | None:
        flag = runner.flags.get(BACKEND_FLAG)
        return True if flag is not None and flag.rollout == rollout else None

    await eventually(lambda: seen(100.0), timeout=15.0, interval=0.01)
    await publish(bus, make_run("wf-flag-on", step, backend="auto"))
    on = await wait_result(bus, "wf-flag-on")
    assert (on.state, on.backend) == ("succeeded", "dagger")
    assert recording.ran == ["wf-flag-on"]

    await flags.set(
        Flag(name=BACKEND_FLAG, rollout=0.0, on="dagger", off="local"), by="test", at=time.time()
    )
    await eventually(lambda: seen(0.0), timeout=15.0, interval=0.01)
    await publish(bus, make_run("wf-flag-off", step, backend="auto"))
    off = await wait_result(bus, "wf-flag-off")
    assert (off.state, off.backend) == ("succeeded", "local")
    assert recording.ran == ["wf-flag-on"]


async def test_a_pipeline_naming_its_backend_ignores_the_flag(
    bus: Bus, runner: PipelineRunner
) -> None:
    """An explicit backend in the pipeline wins over the rollout flag."""
    flags = await FlagStore.bind(bus)
    await flags.set(
        Flag(name=BACKEND_FLAG, rollout=100.0, on="dagger", off="local"), by="test", at=time.time()
    )
    await eventually(
        lambda: _has(runner, BACKEND_FLAG), timeout=15.0, interval=0.01, what="flag seen"
    )
    await publish(bus, make_run("wf-flag-explicit", [StepSpec(name="only", run="true")]))
    result = await wait_result(bus, "wf-flag-explicit")
    assert (result.state, result.backend) == ("succeeded", "local")


async def _has(runner: PipelineRunner, name: str) -> bool | None:
    return True if runner.flags.get(name) is not None else None
