"""The backend rollout flag end to end: tasks through the running actors, audited changes.

A task manager, a pipeline runner, a status tracker and a breaker supervisor
run in-process on a real server. No Dagger engine runs here, so the runner's
two backends are swapped for test backends (named ``dagger`` and ``local``) that
record each workflow they were given and succeed without spawning anything: what
is under test is the choice, and a thousand real processes would only measure
the machine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from nats.js.errors import NoKeysError

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.feature_flags.client import FlagStore
from actors.feature_flags.state import share
from actors.gateway.actor import AUDIT
from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.pipeline_runner.backends.base import StepExecution, StepRequest, StopSignal
from actors.runtime.bus import Bus
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.task_manager.actor import TaskManager
from actors.task_manager.client import submit_task
from actors.topology import RESULTS
from protocols.flags import BACKEND_FLAG, Flag
from protocols.gateway import AUDIT_STREAM, AuditEvent
from protocols.pipelines import PipelineResult, PipelineSpec, StepSpec
from protocols.tasks import TaskSubmitted

pytestmark = pytest.mark.integration

ROLLOUT = 30.0
"""The share of workflows the flag sends to the chosen backend."""

WORKFLOWS = 1000
"""Workflows submitted while the flag is at :data:`ROLLOUT`."""

AFTER_ROLLBACK = 100
"""Workflows submitted once the flag is back at 0."""


@dataclass
class RecordingBackend:
    """Stands in for a backend: records each workflow whose step it ran, and succeeds."""

    name: str
    ran: list[str] = field(default_factory=list)

    async def execute(
        self, request: StepRequest, stop: StopSignal, events: object
    ) -> StepExecution:
        """Record the workflow and succeed at once."""
        self.ran.append(request.workflow_id)
        return StepExecution(state="succeeded", exit_code=0)

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class Troupe:
    """The in-process actors of one test and the test backends in the runner."""

    runner: PipelineRunner
    dagger: RecordingBackend
    local: RecordingBackend


@pytest.fixture(autouse=True)
def quick_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter fetches, so stopping the actors takes tenths of a second."""
    monkeypatch.setattr(ConsumerRuntime, "fetch_timeout", 0.2)


@pytest.fixture
async def troupe(bus: Bus, tmp_path: Path) -> AsyncIterator[Troupe]:
    """Task manager, runner (backends swapped for test backends), tracker and breakers."""
    config = RunnerConfig(
        workspace_root=tmp_path / "ws",
        backend="local",
        step_user="",
        concurrent_runs=16,
    )
    runner = PipelineRunner(config=config)
    dagger, local = RecordingBackend("dagger"), RecordingBackend("local")
    async with (
        BreakerSupervisor().running(bus),
        StatusTracker().running(bus),
        runner.running(bus),
        TaskManager().running(bus),
    ):
        backends = runner.context.backends
        await backends.local.close()
        backends.dagger = dagger  # type: ignore[assignment]
        backends.local = local  # type: ignore[assignment]
        yield Troupe(runner=runner, dagger=dagger, local=local)


ONE_STEP = PipelineSpec(name="rollout", steps=[StepSpec(name="only", run="true", cache=False)])
"""A pipeline naming no backend (``auto``), so the rollout flag picks one."""


async def submit_all(bus: Bus, ids: list[str]) -> None:
    """Submit one one-step workflow per id, as ``troupe submit`` would."""
    for wf in ids:
        await submit_task(bus, TaskSubmitted(task_id=wf, pipeline=ONE_STEP))


async def results_of(bus: Bus, ids: list[str], timeout: float) -> dict[str, PipelineResult]:
    """Wait until every workflow of ``ids`` has a stored result; return them by id."""
    kv = await bus.key_value(RESULTS)
    found: dict[str, PipelineResult] = {}
    decoder = msgspec.msgpack.Decoder(PipelineResult)

    async def all_stored() -> bool | None:
        keys = set(await kv.keys())
        for wf in ids:
            if wf not in found and wf in keys:
                entry = await kv.get(wf)
                found[wf] = decoder.decode(entry.value or b"")
        return True if len(found) == len(ids) else None

    await eventually(
        all_stored,
        timeout=timeout,
        interval=0.5,
        what="every result stored",
        ignoring=(NoKeysError,),
    )
    return found


async def set_rollout(bus: Bus, runner: PipelineRunner, rollout: float) -> None:
    """Set the backend flag to ``rollout`` and wait (bounded) until the runner sees it."""
    store = await FlagStore.bind(bus)
    flag = Flag(name=BACKEND_FLAG, rollout=rollout, on="dagger", off="local")
    await store.set(flag, by="operator", at=time.time())

    async def seen() -> bool | None:
        current = runner.flags.get(BACKEND_FLAG)
        return True if current is not None and current.rollout == rollout else None

    await eventually(seen, timeout=15.0, interval=0.01, what=f"runner sees rollout {rollout}")


async def test_thirty_percent_rollout_routes_thirty_percent_and_zero_rolls_back(
    bus: Bus, troupe: Troupe
) -> None:
    """At 30 % about 30 % of 1,000 workflows go to the chosen backend; at 0 none do."""
    await set_rollout(bus, troupe.runner, ROLLOUT)
    ids = [f"wf-rollout-{i:04d}" for i in range(WORKFLOWS)]
    await submit_all(bus, ids)
    results = await results_of(bus, ids, timeout=150.0)

    assert {r.state for r in results.values()} == {"succeeded"}
    chosen = sorted(wf for wf, r in results.items() if r.backend == "dagger")
    assert {r.backend for r in results.values()} == {"dagger", "local"}
    assert 0.25 * WORKFLOWS <= len(chosen) <= 0.35 * WORKFLOWS, len(chosen)
    assert sorted(troupe.dagger.ran) == chosen
    assert sorted(troupe.local.ran) == sorted(set(ids) - set(chosen))
    assert chosen == sorted(wf for wf in ids if share(BACKEND_FLAG, wf) < ROLLOUT)

    await set_rollout(bus, troupe.runner, 0.0)
    later = [f"wf-rollback-{i:03d}" for i in range(AFTER_ROLLBACK)]
    await submit_all(bus, later)
    after = await results_of(bus, later, timeout=60.0)
    assert {(r.state, r.backend) for r in after.values()} == {("succeeded", "local")}
    assert len(troupe.dagger.ran) == len(chosen)
    assert sorted(troupe.local.ran[-AFTER_ROLLBACK:]) == later


async def test_every_flag_change_is_an_audit_event_kept_by_the_audit_stream(
    bus: Bus, troupe: Troupe
) -> None:
    """Setting, changing and removing the flag leaves one audit event each, in order."""
    await bus.ensure_stream(AUDIT)
    await set_rollout(bus, troupe.runner, 30.0)
    await set_rollout(bus, troupe.runner, 0.0)
    store = await FlagStore.bind(bus)
    assert await store.remove(BACKEND_FLAG, by="operator", at=time.time())
    await eventually(
        lambda: _absent(troupe.runner), timeout=15.0, interval=0.01, what="runner sees removal"
    )

    sub = await bus.js.subscribe("troupe.audit.flags.>", ordered_consumer=True, stream=AUDIT_STREAM)
    decoder = msgspec.msgpack.Decoder(AuditEvent)
    try:
        got = []
        for _ in range(3):
            msg = await sub.next_msg(timeout=5.0)
            got.append((msg.subject, decoder.decode(msg.data)))
    finally:
        await sub.unsubscribe()
    assert [subject for subject, _ in got] == [
        "troupe.audit.flags.set",
        "troupe.audit.flags.set",
        "troupe.audit.flags.rm",
    ]
    assert {(e.action, e.target, e.name) for _, e in got} == {
        ("flags set", BACKEND_FLAG, "operator"),
        ("flags rm", BACKEND_FLAG, "operator"),
    }
    info = await bus.js.stream_info(AUDIT_STREAM)
    assert info.state.messages == 3


async def _absent(runner: PipelineRunner) -> bool | None:
    return True if runner.flags.get(BACKEND_FLAG) is None else None
