"""Workflows on a three-node loopback NATS cluster (R3) while nodes die.

The troupe runs as :class:`~actors.runtime.cluster.ClusterTroupe` (what
``troupe up --cluster 3`` runs): three nodes with route authorization, the
actors as processes with the full server list, workflow data replicated three
times. Every workflow's steps write their start and end to side-effect files;
:mod:`tests.chaos.checker` gives each one verdict, and a run passes with
nothing lost, failed, unexpected or executed twice at once.

``TROUPE_CLUSTER_WORKFLOWS`` sets how many workflows the node-killing run
submits (default 300, in ``make test``; fewer for a quick local run).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.cli.init import troupe_topology
from actors.runtime.access import ADMIN
from actors.runtime.bus import Bus
from actors.runtime.cluster import ClusterTroupe
from actors.runtime.errors import Unavailable
from actors.runtime.kv import TypedBucket
from actors.runtime.launcher import Member
from actors.runtime.testing import eventually
from actors.task_manager.client import submit_task
from actors.topology import RESULTS
from protocols.pipelines import PipelineResult
from protocols.tasks import TaskSubmitted
from tests.chaos.checker import BAD, classify, collect, table
from tests.chaos.harness import pipeline

pytestmark = [pytest.mark.cluster, pytest.mark.processes, pytest.mark.integration]

ACTORS = ["task_manager", "pipeline_runner", "status_tracker", "breaker_supervisor"]
WORKFLOWS = int(os.environ.get("TROUPE_CLUSTER_WORKFLOWS") or 300)
KILL_EVERY = 3.0
"""Seconds between two node kills."""


@pytest.fixture
async def troupe(tmp_path: Path) -> AsyncIterator[ClusterTroupe]:
    """Four actors on a three-node cluster, workflow data at R3, steps run locally."""
    members = [Member.builtin(name) for name in ACTORS]
    env = {
        **os.environ,
        "TROUPE_ACTORS": "",
        "TROUPE_NATS_URL": "",
        "TROUPE_RUNNER_BACKEND": "local",
        "TROUPE_RUNNER_LEASE_TTL": "2",
        "TROUPE_RUNNER_ACK_WAIT": "5",
        "TROUPE_RUNNER_MAX_DELIVER": "1000",
        "TROUPE_STEP_USER": "",  # steps write the side-effect files of the test
        "TROUPE_WORKSPACES": str(tmp_path / "ws"),
    }
    state_dir = tmp_path / "state"
    troupe = ClusterTroupe(
        members,
        state_dir=state_dir,
        nodes=3,
        env=env,
        grace=5.0,
        topology=troupe_topology(members, state_dir).with_replicas(3),
    )
    async with troupe:
        await troupe.wait_ready(timeout=90.0)
        yield troupe


async def _admin(troupe: ClusterTroupe) -> Bus:
    """An admin connection that, like an actor's, fails over to another node and reconnects."""
    return await Bus.connect(troupe.client_config(ADMIN), name="cluster-test")


def _task(workflow_id: str, side: Path) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=workflow_id, pipeline=pipeline(side, 2, 0.1), submitted_at=time.time()
    )


async def _submit_until_accepted(bus: Bus, task: TaskSubmitted, timeout: float = 60.0) -> None:
    """Submit, retrying while the cluster answers with a retryable error (same id: no double)."""

    async def accepted() -> bool:
        await submit_task(bus, task)
        return True

    await eventually(accepted, timeout=timeout, interval=0.2, ignoring=(Unavailable,))


async def _settled(bus: Bus) -> None:
    """Wait until the results bucket answers again after the last node kill."""

    async def answers() -> bool:
        await TypedBucket.bind(bus, RESULTS, PipelineResult)
        return True

    await eventually(answers, timeout=60.0, interval=0.5, ignoring=(Exception,))


@pytest.mark.timeout(600)
async def test_workflows_all_succeed_while_a_random_node_is_sigkilled_every_few_seconds(
    troupe: ClusterTroupe, tmp_path: Path
) -> None:
    """Random node SIGKILLs every 3 s during the run: none lost, none doubled, all succeeded."""
    side = tmp_path / "side"
    side.mkdir()
    ids = [f"cluster-{i:04d}" for i in range(WORKFLOWS)]
    rng = random.Random(16)
    kills: list[str] = []
    submitted = asyncio.Event()
    bus = await _admin(troupe)
    try:

        async def submit_all() -> None:
            for workflow_id in ids:
                await _submit_until_accepted(bus, _task(workflow_id, side))
            submitted.set()

        async def killer() -> None:
            # Kill until every workflow is in, at least three times, one node at a time:
            # the next kill waits until every node is back and ready (a node killed
            # again and again waits longer before each restart).
            while not submitted.is_set() or len(kills) < 3:
                await asyncio.sleep(KILL_EVERY)
                await eventually(
                    lambda: all(troupe.node_ready(n.name) for n in troupe.nodes),
                    timeout=120.0,
                    interval=0.1,
                    what="every node back and ready",
                )
                node = rng.choice(troupe.nodes)
                if troupe.kill_node(node.name):
                    kills.append(node.name)

        await asyncio.gather(submit_all(), killer())
        await _settled(bus)
        seen = await collect(bus, ids, side, timeout=360.0)
    finally:
        await bus.close()
    counts, text = table(seen)
    bad = [seen.results.get(w) or w for w in ids if classify(w, seen) in BAD][:2]
    assert not {v: n for v, n in counts.items() if v in BAD and n}, f"{text}\n{kills}\n{bad}"
    assert {view.state for view in seen.views.values()} == {"succeeded"}
    assert len(seen.views) == WORKFLOWS
    restarts = {name: c.restarts for name, c in troupe.restarts().items() if "nats" in name}
    assert sum(restarts.values()) >= len(kills), restarts


@pytest.mark.timeout(180)
async def test_without_quorum_submits_fail_retryably_and_everything_completes_after_recovery(
    troupe: ClusterTroupe, tmp_path: Path
) -> None:
    """2 of 3 nodes down: a submit fails with Unavailable (retryable) within its timeout;
    after recovery the accepted and the re-sent workflows all succeed, once each."""
    side = tmp_path / "side"
    side.mkdir()
    before = [f"quorum-before-{i}" for i in range(5)]
    during = [f"quorum-during-{i}" for i in range(3)]
    bus = await _admin(troupe)
    try:
        for workflow_id in before:
            await _submit_until_accepted(bus, _task(workflow_id, side))
        await troupe.stop_node("n2")
        await troupe.stop_node("n3")
        refused: list[float] = []
        for workflow_id in during:
            started = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                await submit_task(bus, _task(workflow_id, side))
            refused.append(time.monotonic() - started)
            assert caught.value.retryable
        # Bounded (no hang), generously: a loaded machine stretches every wait.
        assert max(refused) < bus.request_timeout + 30.0, refused
        await troupe.start_node("n2")
        await troupe.start_node("n3")
        for workflow_id in during:
            await _submit_until_accepted(bus, _task(workflow_id, side))
        await _settled(bus)
        seen = await collect(bus, before + during, side, timeout=120.0)
    finally:
        await bus.close()
    counts, text = table(seen)
    assert not {v: n for v, n in counts.items() if v in BAD and n}, text
    assert {seen.views[w].state for w in before + during} == {"succeeded"}
