"""Breaker scopes of step execution, through a runner, a tracker and a breaker supervisor."""

from __future__ import annotations

import itertools

from actors.breaker_supervisor.client import list_breakers
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from protocols.breakers import BreakerStatus
from protocols.pipelines import StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result


async def _breaker(bus: Bus, key: str) -> BreakerStatus | None:
    found = [s for s in (await list_breakers(bus, key)).items if s.key == key]
    return found[0] if found else None


async def test_failing_user_commands_never_open_the_shared_backend_breaker(
    bus: Bus, workflow_actors: object
) -> None:
    """Six steps exiting 75 and one timing out leave backend:local closed; a bystander runs."""
    for i in range(6):
        await publish(bus, make_run(f"wf-exit75-{i}", [StepSpec(name="s", run="exit 75")]))
        assert (await wait_result(bus, f"wf-exit75-{i}")).state == "failed"
    slow = StepSpec(name="s", run="sleep 30", timeout=0.3)
    await publish(bus, make_run("wf-own-timeout", [slow]))
    assert (await wait_result(bus, "wf-own-timeout")).state == "failed"

    async def all_counted() -> BreakerStatus | None:
        status = await _breaker(bus, "backend:local")
        return status if status is not None and status.calls >= 7 else None

    status = await eventually(all_counted, timeout=10)
    assert status.state == "closed"
    assert status.failure_rate == 0.0
    await publish(bus, make_run("wf-bystander", [StepSpec(name="hello", run="echo hi")]))
    assert (await wait_result(bus, "wf-bystander")).state == "succeeded"


async def test_an_opt_in_step_breaker_counts_its_own_failures_and_names_itself(
    bus: Bus, workflow_actors: object
) -> None:
    """breaker: step opens step:PIPELINE/STEP after five failures; the refusal names it."""
    step = StepSpec(name="s", run="exit 3", breaker="step", cache=False)
    for i in range(5):
        await publish(bus, make_run(f"wf-own-breaker-{i}", [step]))
        await wait_result(bus, f"wf-own-breaker-{i}")

    async def opened() -> BreakerStatus | None:
        status = await _breaker(bus, "step:test/s")
        return status if status is not None and status.state == "open" else None

    await eventually(opened, timeout=10)

    tries = itertools.count()

    async def refused() -> str | None:
        # The runner's view may lag the supervisor by a moment: submit until refused.
        wf = f"wf-own-breaker-refused-{next(tries)}"
        await publish(bus, make_run(wf, [step]))
        result = await wait_result(bus, wf)
        return result.reason if "circuit_open" in result.reason else None

    reason = await eventually(refused, timeout=15)
    assert "circuit_open: breaker step:test/s is open; half-opens at " in reason
    backend = await _breaker(bus, "backend:local")
    assert backend is not None
    assert backend.state == "closed"
