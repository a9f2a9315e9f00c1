"""Two replicas of every actor, one of each SIGKILLed mid-run: nothing lost or doubled.

``troupe up --replicas`` runs two processes of each of the six actors. Workflows
whose steps append a ``start`` and an ``end`` line to one side-effect file per
step (named by ``TROUPE_STEP_KEY``) are submitted; once some have finished and
others still run, one process of every actor is SIGKILLed at the same moment.
The chaos checker then gives each workflow its verdict: every one must end
``succeeded``, none lost, no step executed twice at the same time, and any
re-execution must be one the troupe reported (a runner lost mid-step).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from actors.roster import ACTORS
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.runtime.launcher import ping_actors
from actors.runtime.testing import eventually
from actors.topology import RESULTS
from protocols.pipelines import PipelineResult
from tests.chaos.checker import BAD, classify, collect, table
from tests.chaos.harness import Cluster, _submit, pipeline

pytestmark = [pytest.mark.integration, pytest.mark.processes, pytest.mark.chaos]

REPLICAS = 2
"""Processes of every actor."""

WORKFLOWS = 60
"""Workflows submitted."""

KILL_AFTER = 12
"""Workflows finished before one process of each actor is killed."""


def replicas_arg() -> str:
    """``--replicas`` value running :data:`REPLICAS` processes of every built-in actor."""
    return ",".join(f"{name}={REPLICAS}" for name in ACTORS)


async def finished(bus: Bus, ids: list[str]) -> int:
    """Return how many of ``ids`` have a stored result."""
    results = await TypedBucket.bind(bus, RESULTS, PipelineResult)
    keys = set(await results.keys())
    return sum(wf in keys for wf in ids)


@pytest.mark.timeout(420)
async def test_killing_one_replica_of_every_actor_mid_run_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """With two of each actor and one of each SIGKILLed, all succeed, none twice at once."""
    side = tmp_path / "side"
    side.mkdir()
    cluster = Cluster(tmp_path, lease_ttl=2, up_args=("--replicas", replicas_arg()))
    await asyncio.to_thread(cluster.start)
    ids = [f"replica-{i:03d}" for i in range(WORKFLOWS)]
    killed: dict[str, int] = {}
    try:
        admin = cluster.admin()

        async def all_replicas() -> bool:
            counts = await ping_actors(admin.for_client(), timeout=0.5)
            return all(counts.get(name, 0) >= REPLICAS for name in ACTORS)

        await eventually(all_replicas, timeout=120.0, interval=0.5, what="two of every actor")
        bus = await Bus.connect(admin)
        try:
            submitting = asyncio.create_task(
                _submit(bus, ids, pipeline(side, steps=2, seconds=0.3), rate=15.0)
            )

            async def mid_run() -> bool:
                done = await finished(bus, ids)
                return KILL_AFTER <= done < WORKFLOWS

            await eventually(mid_run, timeout=180.0, interval=0.1, what="some workflows done")
            for name in ACTORS:
                pids = cluster.pids(name)
                assert len(pids) == REPLICAS, (name, pids)
                os.kill(pids[0], signal.SIGKILL)
                killed[name] = pids[0]
            await submitting
            seen = await collect(bus, ids, side, timeout=240.0)
        finally:
            await bus.close()
    finally:
        await asyncio.to_thread(cluster.stop)
    counts, text = table(seen)
    bad = {verdict: n for verdict, n in counts.items() if verdict in BAD and n}
    reasons = sorted(
        {
            f"{r.reason} / {[(st.reason, st.stderr_tail[-200:]) for st in r.steps]}"
            for r in seen.results.values()
            if r.state != "succeeded"
        }
    )
    assert not bad, f"{text}\nkilled: {killed}\nreasons: {reasons[:5]}"
    assert {classify(wf, seen) for wf in ids} <= {"ok", "re-executed-after-runner-loss"}
    assert sorted(killed) == sorted(ACTORS)
    assert all(view.attempt == 1 for view in seen.views.values()), "a workflow ran twice"
