"""End to end: an agent-routed workflow on a ``troupe up`` stores a result like a pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors.cli import main
from actors.pipeline_runner.client import get_result
from actors.runtime.access import agent_user
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import read_passwords
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from actors.sdk import Agent, Task
from actors.status_tracker.client import get_workflow
from actors.task_manager.client import submit_task
from protocols.pipelines import PipelineResult
from protocols.tasks import TaskSubmitted
from tests.actors.conftest import RunningTroupe, session_state_env

pytestmark = [pytest.mark.integration, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[3]
AGENT = "results-e2e"


async def _login(troupe: RunningTroupe, user: str) -> Bus:
    password = read_passwords(troupe.state_dir, [user])[user]
    return await Bus.connect(
        ConnectionConfig(url=troupe.url, user=user, password=password, connect_timeout=10.0)
    )


@pytest.fixture
async def client(troupe_up: RunningTroupe) -> AsyncIterator[Bus]:
    """A bus logged in to the session's troupe as ``client``."""
    bus = await _login(troupe_up, "client")
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def agent(troupe_up: RunningTroupe) -> AsyncIterator[Agent]:
    """An SDK agent with ``text.wc``, logged in as its own issued user."""
    add = ["agents", "add", AGENT, "--state-dir", str(troupe_up.state_dir)]
    assert await asyncio.to_thread(main, add) == 0
    bus = await _login(troupe_up, agent_user(AGENT))
    worker = Agent(AGENT, capabilities=["text.wc@1.0"], interval=0.5)

    @worker.task("text.wc")
    async def words(task: Task) -> Mapping[str, Any]:
        text = str(task.params["text"])
        if text == "fail":
            raise ValueError("nothing to count")
        return {"words": len(text.split())}

    try:
        async with worker.running(bus):
            yield worker
    finally:
        await bus.close()


async def _word_count(bus: Bus, text: str, *, ends: str) -> PipelineResult:
    """Submit a ``text.wc`` task for ``text``; wait for it to end ``ends`` and return its result.

    The result must be stored by the time the workflow is seen in its final state.
    """
    workflow_id = f"agent-{uuid.uuid4().hex[:8]}"
    task = TaskSubmitted(task_id=workflow_id, requires="text.wc", params={"text": text})
    assert await submit_task(bus, task)

    async def ended() -> bool:
        return (await get_workflow(bus, workflow_id)).state == ends

    await eventually(ended, timeout=30, ignoring=(NotFound,))
    return await eventually(lambda: get_result(bus, workflow_id), timeout=5, ignoring=(NotFound,))


def _troupe_result(
    troupe: RunningTroupe, workflow_id: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env.update(session_state_env())
    env["TROUPE_NATS_URL"] = troupe.url
    return subprocess.run(
        [sys.executable, "-m", "actors", "result", workflow_id, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )


async def test_an_agent_task_stores_its_output_as_the_workflow_result(
    troupe_up: RunningTroupe, client: Bus, agent: Agent
) -> None:
    """``troupe result`` shows the agent's output, its id and success for an agent task."""
    result = await _word_count(client, "to be or not", ends="succeeded")
    workflow_id = result.workflow_id
    assert result.state == "succeeded"
    assert result.backend == "agent"
    [step] = result.steps
    assert (step.name, step.state, step.agent_id) == ("text.wc", "succeeded", AGENT)
    assert step.output == {"words": 4}
    ran = await asyncio.to_thread(_troupe_result, troupe_up, workflow_id, "--json")
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["steps"][0]["output"] == {"words": 4}
    assert shown["steps"][0]["agent_id"] == AGENT
    ran = await asyncio.to_thread(_troupe_result, troupe_up, workflow_id)
    assert ran.returncode == 0, ran.stderr
    assert f"workflow {workflow_id}: succeeded (backend agent" in ran.stdout
    assert f"text.wc: handled by agent {AGENT}" in ran.stdout
    assert 'text.wc output: {"words": 4}' in ran.stdout


async def test_a_failed_agent_task_stores_the_agent_error_as_the_result(
    troupe_up: RunningTroupe, client: Bus, agent: Agent
) -> None:
    """A handler that raises leaves a ``failed`` result naming the agent and its error."""
    result = await _word_count(client, "fail", ends="failed")
    assert result.state == "failed"
    [step] = result.steps
    assert (step.state, step.agent_id) == ("failed", AGENT)
    assert "nothing to count" in step.reason
    assert "nothing to count" in result.reason
