"""Each actor's configuration reaches the consumers it creates on the server.

The options of a declared handler are per instance: two actors of one class
with different configurations create consumers with different settings, read
back here with ``consumer_info`` from a real server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.breaker_supervisor.actor import DURABLE as BREAKER_DURABLE
from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.breaker_supervisor.config import SupervisorConfig
from actors.pipeline_runner.actor import PipelineRunner
from actors.pipeline_runner.config import RunnerConfig
from actors.runtime.bus import Bus
from actors.status_tracker.actor import StatusTracker
from actors.status_tracker.config import TrackerConfig
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from actors.topology import BREAKER_REPORTS, PIPELINES, STATUS_EVENTS, TASKS

pytestmark = pytest.mark.integration


async def test_runner_config_reaches_its_consumer(bus: Bus, tmp_path: Path) -> None:
    """RunnerConfig(concurrent_runs=1, ack_wait=5, max_deliver=3) is what the server holds."""
    config = RunnerConfig(workspace_root=tmp_path, concurrent_runs=1, ack_wait=5.0, max_deliver=3)
    runner = PipelineRunner(config=config)
    async with runner.running(bus):
        info = await bus.js.consumer_info(PIPELINES.name, "pipeline-runner")
        (spec,) = [
            r.spec for r in runner.handlers if getattr(r.spec, "durable", "") == "pipeline-runner"
        ]
    assert info.config.ack_wait == 5.0
    # The runtime asks for one delivery more, to dead-letter a message that crashed it.
    assert info.config.max_deliver == 3 + 1
    assert spec.concurrency == 1  # type: ignore[union-attr]


async def test_status_tracker_config_reaches_its_consumer(bus: Bus) -> None:
    """TrackerConfig's concurrency, ack wait and deliveries reach the apply consumer."""
    tracker = StatusTracker(config=TrackerConfig(concurrency=2, ack_wait_s=7.0, max_deliver=4))
    async with tracker.running(bus):
        info = await bus.js.consumer_info(STATUS_EVENTS.name, "status-tracker")
        (spec,) = [
            r.spec for r in tracker.handlers if getattr(r.spec, "durable", "") == "status-tracker"
        ]
    assert (info.config.ack_wait, info.config.max_deliver) == (7.0, 4 + 1)
    assert spec.concurrency == 2  # type: ignore[union-attr]


async def test_breaker_supervisor_config_reaches_its_consumer(bus: Bus) -> None:
    """SupervisorConfig's consumer settings reach the reports consumer."""
    supervisor = BreakerSupervisor(
        config=SupervisorConfig(concurrency=3, ack_wait_s=9.0, max_deliver=6)
    )
    async with supervisor.running(bus):
        info = await bus.js.consumer_info(BREAKER_REPORTS.name, BREAKER_DURABLE)
    assert (info.config.ack_wait, info.config.max_deliver) == (9.0, 6 + 1)


async def test_task_manager_config_reaches_its_consumer(bus: Bus) -> None:
    """TaskManagerConfig's consumer settings reach the submit consumer."""
    manager = TaskManager(config=TaskManagerConfig(concurrency=2, ack_wait_s=11.0, max_deliver=7))
    async with manager.running(bus):
        info = await bus.js.consumer_info(TASKS.name, "task-manager")
    assert (info.config.ack_wait, info.config.max_deliver) == (11.0, 7 + 1)
