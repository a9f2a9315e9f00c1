"""Specification of run and step leases: one execution of a workflow at a time, with fencing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.pipeline_runner import PipelineRunner
from actors.pipeline_runner.leases import Lease, LeaseHeld, LeaseKeeper, LeaseLost, Leases
from actors.runtime.bus import Bus
from actors.runtime.clock import system_clock
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.topology import LEASES, PIPELINES
from protocols.pipelines import RUN_SUBJECT, StepLease, StepSpec, run_lease_key
from tests.actors.pipeline_runner.conftest import make_run, wait_result

pytestmark = pytest.mark.integration


async def _leases(bus: Bus, ttl: float = 2.0) -> Leases:
    return Leases(await TypedBucket.bind(bus, LEASES, StepLease), ttl=ttl, clock=system_clock)


def _lease(runner: str, workflow_id: str = "wf") -> StepLease:
    return StepLease(workflow_id=workflow_id, runner=runner, token=0)


async def test_a_live_lease_cannot_be_acquired_twice(bus: Bus) -> None:
    """The second acquirer is told who holds the lease; after release it gets it."""
    leases = await _leases(bus)
    first = await leases.acquire("wf", _lease("a"))
    with pytest.raises(LeaseHeld) as held:
        await leases.acquire("wf", _lease("b"))
    assert held.value.holder is not None
    assert held.value.holder.runner == "a"
    await leases.release(first)
    second = await leases.acquire("wf", _lease("b"))
    assert second.revision > first.revision, "the fencing token grows"


async def test_a_lease_expires_when_its_holder_stops_renewing(bus: Bus) -> None:
    """An unrenewed lease is gone after its TTL; renewing it then reports it lost."""
    leases = await _leases(bus, ttl=1)
    lease = await leases.acquire("wf", _lease("a"))
    await leases.wait_free("wf", poll=0.1)
    with pytest.raises(LeaseLost):
        await leases.renew(lease)


async def test_the_keeper_renews_and_reports_a_lease_taken_over(bus: Bus) -> None:
    """A kept lease outlives its TTL; one that someone else took is reported lost."""
    leases = await _leases(bus, ttl=1)
    lost: list[str] = []
    keeper = LeaseKeeper(leases, lambda lease, why: lost.append(lease.key))
    kept = await leases.acquire("kept", _lease("a"))
    taken = await leases.acquire("taken", _lease("a"))
    keeper.hold(kept)
    keeper.hold(taken)
    keeper.start()
    try:
        first = kept.revision
        await eventually(lambda: kept.revision > first + 1, timeout=10, what="two renewals")
        await leases.bucket.delete("taken")
        await eventually(lambda: lost == ["taken"], timeout=10)
        assert await leases.holder("kept") is not None
    finally:
        await keeper.stop()


def test_a_lease_ttl_below_one_second_is_refused() -> None:
    """The server counts TTLs in whole seconds."""
    with pytest.raises(ValueError, match="ttl"):
        Leases(None, ttl=0.5, clock=system_clock)  # type: ignore[arg-type]


async def test_two_deliveries_of_one_workflow_execute_it_once(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """A workflow delivered twice at once (a redelivery after a restart) runs once."""
    effects = tmp_path / "effects"
    run = make_run(
        "wf-twice", [StepSpec(name="s", run=f"echo 1 >> {effects}; sleep 1", cache=False)]
    )
    await bus.ensure_stream(PIPELINES)
    await asyncio.gather(
        bus.send(RUN_SUBJECT, run, msg_id="wf-twice:a"),
        bus.send(RUN_SUBJECT, run, msg_id="wf-twice:b"),
    )
    await wait_result(bus, "wf-twice")

    async def both_acknowledged() -> bool:
        info = await bus.js.consumer_info(PIPELINES.name, "pipeline-runner")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(both_acknowledged, timeout=30)
    assert effects.read_text() == "1\n"
    assert runner.stats_data()["pipeline-runner"]["runs_waited"] >= 1


async def test_a_run_whose_lease_another_runner_holds_waits_then_runs_once(
    bus: Bus, runner: PipelineRunner, tmp_path: Path
) -> None:
    """While another runner's run lease is live the run does not execute; then it does."""
    effects = tmp_path / "effects"
    leases = await _leases(bus, ttl=30)
    other: Lease = await leases.acquire(run_lease_key("wf-held"), _lease("other", "wf-held"))
    run = make_run("wf-held", [StepSpec(name="s", run=f"echo 1 >> {effects}", cache=False)])
    await bus.ensure_stream(PIPELINES)
    await bus.send(RUN_SUBJECT, run, msg_id="wf-held:1")
    await eventually(
        lambda: runner.stats_data()["pipeline-runner"].get("runs_waited", 0) >= 1, timeout=20
    )
    assert not effects.exists(), "executed beside the lease holder"
    await leases.release(other)
    result = await wait_result(bus, "wf-held", timeout=30)
    assert result.state == "succeeded"
    assert effects.read_text() == "1\n"
