"""Workflow throughput on one node vs a three-node R3 cluster, and with 1, 2, 4 runners.

Each configuration is a fresh troupe started as ``troupe up`` starts it (the
actors a workflow passes through, each its own process; the gateway, which a
workflow submitted over NATS does not pass, is left out):

* ``one node``: the embedded nats-server, one pipeline runner;
* ``cluster R3, N runners``: ``troupe up --cluster 3`` (:class:`ClusterTroupe`,
  workflow data replicated three times) with N = 1, 2 and 4 pipeline runners.

A client keeps ``IN_FLIGHT`` one-step ``local`` workflows (step ``true``, each
with its own environment so none is a step-cache hit) in flight, ``N_WORKFLOWS``
in all after ``WARMUP`` unmeasured ones, and takes a workflow as done when the
status tracker publishes its ``succeeded`` view. It reports workflows/s of each
configuration, then the ratios: cluster / one node, and 2 and 4 runners / 1
runner on the cluster. On a small machine every process shares the same cores,
so the ratios show the cost of replication and how far runner replicas help
there, not what separate machines would give.

``BENCH_CLUSTER_N`` sets how many workflows each configuration runs.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from actors.cli.init import troupe_topology
from actors.runtime.bus import Bus
from actors.runtime.cluster import ClusterTroupe
from actors.runtime.launcher import Member, Troupe
from actors.runtime.server import free_port
from benchmarks.bench_e2e import WORKFLOW_ACTORS, _Finishes
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.status import UPDATES_SUBJECTS
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

Report = Callable[..., None]

N_WORKFLOWS = int(os.environ.get("BENCH_CLUSTER_N") or 120)
IN_FLIGHT = 16
WARMUP = 4
RUNNERS = (1, 2, 4)


def _task(workflow_id: str) -> TaskSubmitted:
    step = StepSpec(name="noop", run=["true"], env={"BENCH_ID": workflow_id}, timeout=30)
    pipeline = PipelineSpec(name="bench-cluster", steps=[step], backend="local")
    return TaskSubmitted(task_id=workflow_id, pipeline=pipeline, submitted_at=time.time())


async def _throughput(troupe: Troupe) -> float:
    """Workflows/s of ``troupe`` at ``IN_FLIGHT`` in flight."""
    await troupe.wait_ready(timeout=120)
    bus = await Bus.connect(troupe.client_config())
    try:
        finishes = _Finishes(bus)
        sub = await bus.nc.subscribe(UPDATES_SUBJECTS, cb=finishes.on_update)
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(workflow_id: str) -> None:
            async with slots:
                task = _task(workflow_id)
                await bus.send(SUBMIT_SUBJECT, task, msg_id=workflow_id)
                state = await finishes.wait(workflow_id)
                if state != "succeeded":
                    raise RuntimeError(f"{workflow_id} ended {state}")

        run = uuid.uuid4().hex[:8]
        await asyncio.gather(*(one(f"warm-{run}-{i}") for i in range(WARMUP)))
        started = time.perf_counter()
        await asyncio.gather(*(one(f"bench-{run}-{i}") for i in range(N_WORKFLOWS)))
        elapsed = time.perf_counter() - started
        await sub.unsubscribe()
    finally:
        await bus.close()
    return N_WORKFLOWS / elapsed


def _members(runners: int) -> list[Member]:
    members = [Member.builtin(name) for name in WORKFLOW_ACTORS]
    return members + [Member.builtin("pipeline_runner")] * (runners - 1)


async def _one_node(state: Path) -> float:
    members = _members(1)
    troupe = Troupe(
        members, state_dir=state, port=free_port(), topology=troupe_topology(members, state)
    )
    async with troupe:
        return await _throughput(troupe)


async def _cluster(state: Path, runners: int) -> float:
    members = _members(runners)
    troupe = ClusterTroupe(
        members,
        state_dir=state,
        nodes=3,
        topology=troupe_topology(members, state).with_replicas(3),
    )
    async with troupe:
        return await _throughput(troupe)


async def run(report: Report) -> None:
    """Measure every configuration and report workflows/s and the ratios."""
    with tempfile.TemporaryDirectory(prefix="troupe-bench-cluster-") as tmp:
        note = f"{N_WORKFLOWS} one-step workflows, {IN_FLIGHT} in flight"
        single = await _one_node(Path(tmp) / "single")
        report("one node, 1 runner: workflows/s", single, "wf/s", note)
        clustered: dict[int, float] = {}
        for runners in RUNNERS:
            clustered[runners] = await _cluster(Path(tmp) / f"cluster-{runners}", runners)
            report(
                f"cluster R3, {runners} runner(s): workflows/s", clustered[runners], "wf/s", note
            )
        report("cluster R3 / one node (1 runner each)", clustered[1] / single, "ratio")
        for runners in RUNNERS[1:]:
            report(
                f"cluster R3: {runners} runners / 1 runner",
                clustered[runners] / clustered[1],
                "ratio",
                f"{os.cpu_count()} CPUs shared by every process",
            )
