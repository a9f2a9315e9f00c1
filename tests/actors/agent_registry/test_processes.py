"""Real processes, killed for real: an agent and the registry SIGKILLed mid-flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.agent_registry.config import DispatchConfig
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.testing import eventually
from actors.sdk import Agent, Task
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from protocols.agents import LIST_SUBJECT, AgentJoined, AgentLeft, AgentList, ListAgents
from protocols.status import StatusEvent, WorkflowTransition
from protocols.tasks import TaskSubmitted

pytestmark = [pytest.mark.integration, pytest.mark.processes, pytest.mark.chaos]

ROOT = Path(__file__).resolve().parents[3]
INTERVAL = 0.25


@contextmanager
def spawn(
    args: list[str], log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a Python process from the repository root; kill it at the end whatever happened."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=out,
            stderr=out,
            env={**os.environ, **(env or {})},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def listed(bus: Bus) -> list[str] | None:
    try:
        reply = await bus.request(LIST_SUBJECT, ListAgents(), AgentList, timeout=0.5)
    except Exception:
        return None
    return sorted(v.info.agent_id for v in reply.agents if v.presence == "live")


async def test_registry_killed_and_restarted_rebuilds_its_index_from_the_bucket(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """After SIGKILL, a new registry answers with every agent before any new heartbeat."""
    # Slow heartbeats: nothing new reaches the bucket between restart and the first answer.
    agents = [
        Agent(f"keeper-{i}", capabilities=["keep"], interval=5.0, ttl_multiple=4) for i in range(5)
    ]
    expected = sorted(a.agent_id for a in agents)
    run = ["-m", "actors", "run", "agent_registry", "--nats-url", nats_url]
    for agent in agents:
        await agent.start(bus)
    try:
        with spawn(run, tmp_path / "registry.log") as first:
            assert await eventually(lambda: _equal(listed(bus), expected), timeout=20)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        with spawn(run, tmp_path / "registry.log"):
            restarted = await eventually(lambda: listed(bus), timeout=20, interval=0.02)
            assert restarted == expected
    finally:
        await asyncio.gather(*(a.stop(grace=0.1) for a in agents))


async def test_killed_agent_leaves_within_ttl_and_its_task_completes_elsewhere(
    bus: Bus,
    nats_url: str,
    tmp_path: Path,
    registry: AgentRegistry,
    presence: list[AgentJoined | AgentLeft],
) -> None:
    """SIGKILL the task holder: agent.left within TTL + one interval; a peer completes it."""
    seen: list[WorkflowTransition] = []
    codec = Codec.of(StatusEvent)

    async def record(msg: Any) -> None:
        event = codec.decode(msg.data)
        if isinstance(event, WorkflowTransition):
            seen.append(event)

    await bus.nc.subscribe("troupe.status.events.>", cb=record)
    spare = Agent("spare-1", capabilities=["text.stats@1.2"], interval=INTERVAL)

    @spare.task("text.stats")
    async def stats(task: Task) -> Mapping[str, Any]:
        return {"agent": "spare-1", "words": len(str(task.params["text"]).split())}

    slow = [
        "examples/agents/textstats.py",
        "--nats-url",
        nats_url,
        "--id",
        "doomed-1",
        "--interval",
        str(INTERVAL),
        "--ttl-multiple",
        "4",
        "--delay",
        "60",
    ]
    config = DispatchConfig(deadline_s=10.0, poll_interval_s=0.1)
    manager = TaskManager(config=TaskManagerConfig(dispatch=config))
    async with manager.running(bus):
        dispatcher = manager.agents
        assert dispatcher is not None
        with spawn(slow, tmp_path / "agent.log") as doomed:
            await eventually(lambda: _async("doomed-1" in registry.index), timeout=20)
            await dispatcher.dispatch(
                TaskSubmitted(task_id="wf-kill", requires="text.stats", params={"text": "a b"}),
                "wf-kill",
            )
            await eventually(
                lambda: _async(
                    (e := registry.index.get("doomed-1")) is not None and e.info.load == 1
                )
            )
            async with spare.running(bus):
                await eventually(lambda: _async("spare-1" in registry.index))
                doomed.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                ttl = 1.0  # ceil(0.25 * 4)
                left = await eventually(
                    lambda: _async([e for e in presence if isinstance(e, AgentLeft)]),
                    timeout=ttl + INTERVAL + 2,
                    interval=0.01,
                )
                detected = time.monotonic() - killed
                done = await eventually(
                    lambda: _async(
                        [t for t in seen if t.workflow_id == "wf-kill" and t.state == "succeeded"]
                    ),
                    timeout=10,
                )
    assert left[0].agent_id == "doomed-1"
    assert left[0].reason == "expired"
    assert detected <= ttl + INTERVAL + 0.5
    assert done[0].attempt == 2
    assert dispatcher.redispatched == 1


async def _equal(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def _async(value: object) -> object:
    return value
