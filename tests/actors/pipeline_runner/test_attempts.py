"""Specification of a step attempt: intent and lease stored before it starts, undone after."""

from __future__ import annotations

import pytest

from actors.pipeline_runner.attempts import Holder, StepAttempts
from actors.pipeline_runner.backends import StopSignal
from actors.pipeline_runner.leases import LeaseKeeper, LeaseLost, Leases
from actors.pipeline_runner.store import RunStore
from actors.runtime.bus import Bus
from actors.runtime.clock import system_clock
from actors.runtime.kv import TypedBucket
from actors.topology import LEASES
from protocols.pipelines import RunCheckpoint, StepLease, StepResult, step_key

pytestmark = pytest.mark.integration


async def _attempts(bus: Bus, workflow_id: str) -> tuple[StepAttempts, Leases, RunStore]:
    store = await RunStore.open(bus)
    leases = Leases(await TypedBucket.bind(bus, LEASES, StepLease), ttl=10, clock=system_clock)
    keeper = LeaseKeeper(leases, lambda lease, why: None)
    holder = Holder(runner="r1", token=7, leases=leases, keeper=keeper)
    attempts = StepAttempts(workflow_id, store, holder, StopSignal(), system_clock)
    attempts.checkpoint = RunCheckpoint(
        workflow_id=workflow_id, attempt=1, started_at=system_clock.time(), backend="local"
    )
    return attempts, leases, store


async def test_a_step_starts_with_its_intent_and_its_lease_both_stored(bus: Bus) -> None:
    """Once begun, the checkpoint has the attempt in flight and the step lease names it."""
    attempts, leases, store = await _attempts(bus, "wf-begin")
    attempt = await attempts.begin("s", backend="local")
    entry = await store.checkpoint_entry("wf-begin")
    assert entry is not None
    assert entry.value.in_flight == {"s": 1}
    assert entry.value.step_attempts == {"s": 1}
    lease = await leases.holder(step_key("wf-begin", "s"))
    assert lease is not None
    assert (lease.runner, lease.token, lease.attempt, lease.step) == ("r1", 7, 1, "s")
    assert attempt.lease is not None


async def test_a_finished_step_is_recorded_and_its_lease_released(bus: Bus) -> None:
    """Its result is in the checkpoint, it is out of flight, and nobody holds its lease."""
    attempts, leases, store = await _attempts(bus, "wf-finish")
    await attempts.begin("s", backend="local")
    await attempts.finish(StepResult(name="s", state="succeeded", exit_code=0, backend="local"))
    entry = await store.checkpoint_entry("wf-finish")
    assert entry is not None
    assert entry.value.in_flight == {}
    assert [s.name for s in entry.value.steps] == ["s"]
    assert await leases.holder(step_key("wf-finish", "s")) is None


async def test_a_fenced_run_starts_no_step_and_keeps_no_step_lease(bus: Bus) -> None:
    """Another runner wrote the checkpoint: begin fails and the lease taken beside it is gone."""
    attempts, leases, store = await _attempts(bus, "wf-fenced")
    other = RunCheckpoint(workflow_id="wf-fenced", attempt=1, started_at=0.0, backend="local")
    await store.put_checkpoint(other)  # this run believes no checkpoint exists yet
    with pytest.raises(LeaseLost):
        await attempts.begin("s", backend="local")
    assert attempts.fenced
    assert await leases.holder(step_key("wf-fenced", "s")) is None
    entry = await store.checkpoint_entry("wf-fenced")
    assert entry is not None
    assert entry.value.in_flight == {}


async def test_an_attempt_is_announced_with_its_intent_and_a_failed_announcement_starts_none(
    bus: Bus,
) -> None:
    """The announcement gets the attempt's number and reason; if it fails, begin fails, the
    lease taken beside it is gone and the intent stays (the step runs again as runner_lost)."""
    attempts, leases, store = await _attempts(bus, "wf-announce")
    announced: list[tuple[int, str]] = []

    async def started(number: int, reason: str) -> None:
        announced.append((number, reason))

    await attempts.begin("s", backend="local", announce=started)
    assert announced == [(1, "first")]

    async def refused(number: int, reason: str) -> None:
        raise RuntimeError("status stream unavailable")

    with pytest.raises(RuntimeError, match="status stream unavailable"):
        await attempts.begin("t", backend="local", announce=refused)
    assert await leases.holder(step_key("wf-announce", "t")) is None
    entry = await store.checkpoint_entry("wf-announce")
    assert entry is not None
    assert entry.value.in_flight == {"s": 1, "t": 1}
