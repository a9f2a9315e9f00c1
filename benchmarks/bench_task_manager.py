"""Task manager: tasks planned per second by one in-process manager, and the cost of planning.

* ``tasks/s``: a backlog of valid tasks (the bundled ``data-pipeline`` template)
  is published first; one in-process task manager then drains it. Each task is
  a KV create, render, plan, two status events, a KV update and a
  de-duplicated ``PipelineRun`` publish, every one acknowledged by JetStream.
* ``render+plan``: the pure part of one task (render the template, plan the
  graph), without I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.testing import nats_server
from actors.task_manager import TaskManager, TaskManagerConfig, TemplateRegistry, plan
from actors.topology import PIPELINES, TASKS
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

Report = Callable[..., None]

TASKS_N = 500
PURE_N = 2_000


def _pure(report: Report) -> None:
    registry = TemplateRegistry.default(env={})
    template = registry.get("data-pipeline")
    started = time.perf_counter()
    for i in range(PURE_N):
        plan(template.render({"rows": str(i)}))
    took = time.perf_counter() - started
    report(
        "task_manager render+plan",
        took / PURE_N * 1e6,
        "us",
        "data-pipeline template, 3 steps, pure",
    )


async def _throughput(report: Report, url: str) -> None:
    bus = await Bus.connect(ConnectionConfig(url=url))
    try:
        await bus.ensure_stream(TASKS)
        await bus.ensure_stream(PIPELINES)
        await asyncio.gather(
            *(
                bus.send(
                    SUBMIT_SUBJECT,
                    TaskSubmitted(task_id=f"bench-{i}", template="data-pipeline"),
                    msg_id=f"bench-{i}",
                )
                for i in range(TASKS_N)
            )
        )
        manager = TaskManager(config=TaskManagerConfig())
        started = time.perf_counter()
        async with manager.running(bus):
            deadline = started + 120
            while time.perf_counter() < deadline:
                info = await bus.js.stream_info(PIPELINES.name)
                if info.state.messages >= TASKS_N:
                    break
                await asyncio.sleep(0.01)
            took = time.perf_counter() - started
        report(
            "task_manager tasks/s",
            TASKS_N / took,
            "tasks/s",
            f"{TASKS_N} queued tasks -> PipelineRun, one in-process manager, "
            "JetStream file storage",
        )
    finally:
        await bus.close()


async def run(report: Report) -> None:
    """Measure and report."""
    _pure(report)
    with nats_server() as server:
        await _throughput(report, server.url)
