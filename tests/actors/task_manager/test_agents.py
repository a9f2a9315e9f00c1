"""Capability routing on a real nats-server: placement, re-dispatch on departure, deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.agent_registry.client import DispatchConfig
from actors.agent_registry.config import RegistryConfig
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.sdk import Agent, Task
from actors.task_manager.actor import TaskManager
from actors.task_manager.agents import NO_CAPABLE_AGENT, RESULTS_DURABLE, AgentDispatcher
from actors.task_manager.config import TaskManagerConfig
from actors.topology import AGENT_RESULTS, RESULTS
from protocols.pipelines import PipelineResult
from protocols.status import StatusEvent, WorkflowTransition
from protocols.tasks import TaskSubmitted

pytestmark = pytest.mark.integration

INTERVAL = 0.25
FAST = DispatchConfig(deadline_s=1.0, poll_interval_s=0.1, departure_grace_s=2.0)


@pytest.fixture
async def routing(bus: Bus) -> AsyncIterator[AgentDispatcher]:
    """A registry and a task manager (with its dispatcher) running in this process."""
    registry = AgentRegistry(config=RegistryConfig(sweep_interval_s=0.05, expiry_grace_s=0.2))
    manager = TaskManager(config=TaskManagerConfig(dispatch=FAST))
    async with registry.running(bus), manager.running(bus):
        assert manager.agents is not None
        yield manager.agents


@pytest.fixture
async def transitions(bus: Bus) -> AsyncIterator[list[WorkflowTransition]]:
    """Workflow transitions published on the status subjects, in arrival order."""
    seen: list[WorkflowTransition] = []
    codec = Codec.of(StatusEvent)

    async def record(msg: Any) -> None:
        event = codec.decode(msg.data)
        if isinstance(event, WorkflowTransition):
            seen.append(event)

    sub = await bus.nc.subscribe("troupe.status.events.>", cb=record)
    yield seen
    await sub.unsubscribe()


def stats_agent(agent_id: str, gate: asyncio.Event | None = None) -> Agent:
    agent = Agent(agent_id, capabilities=["text.stats@1.2"], interval=INTERVAL, ttl_multiple=4)

    @agent.task("text.stats")
    async def stats(task: Task) -> Mapping[str, Any]:
        if gate is not None:
            await gate.wait()
        return {"words": len(str(task.params["text"]).split()), "agent": agent_id}

    return agent


def task(task_id: str, requires: str = "text.stats>=1.2") -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, requires=requires, params={"text": "to be or not"})


def states(seen: list[WorkflowTransition], workflow_id: str) -> list[str]:
    return [t.state for t in seen if t.workflow_id == workflow_id]


async def test_task_is_placed_on_a_capable_agent_and_succeeds(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """A routed task runs on a live capable agent; the workflow goes queued, running, succeeded."""
    async with stats_agent("stats-1").running(bus):
        await eventually(lambda: _async("stats-1" in routing.index))
        await routing.dispatch(task("wf-1"), "wf-1")
        await routing.dispatch(task("wf-1"), "wf-1")  # a redelivery changes nothing
        await eventually(lambda: _async("succeeded" in states(transitions, "wf-1")))
    assert states(transitions, "wf-1") == ["queued", "running", "succeeded"]
    assert routing.open == {}


async def test_workflow_fails_with_no_capable_agent_after_the_deadline(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """Nobody offers the capability (at that version): the workflow fails at the deadline."""
    async with stats_agent("stats-1").running(bus):
        await routing.dispatch(task("wf-2", requires="text.stats>=2"), "wf-2")
        failed = await eventually(
            lambda: _async(
                [t for t in transitions if t.workflow_id == "wf-2" and t.state == "failed"]
            ),
            timeout=FAST.deadline_s + 2,
        )
    assert failed[0].reason == NO_CAPABLE_AGENT
    assert states(transitions, "wf-2") == ["queued", "failed"]


async def test_waiting_task_is_placed_when_a_capable_agent_arrives(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """Within the deadline, an agent that joins later still gets the task."""
    await routing.dispatch(task("wf-3"), "wf-3")
    async with stats_agent("late-1").running(bus):
        await eventually(lambda: _async("succeeded" in states(transitions, "wf-3")))


async def test_task_of_a_departed_agent_completes_on_another(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """The holder leaves mid-task: the task is re-dispatched with the same key and completes."""
    never = asyncio.Event()
    stuck = stats_agent("stuck-1", gate=never)
    await stuck.start(bus)
    await eventually(lambda: _async("stuck-1" in routing.index))
    await routing.dispatch(task("wf-4"), "wf-4")
    await eventually(lambda: _async(stuck.load == 1))
    async with stats_agent("spare-1").running(bus):
        await eventually(lambda: _async("spare-1" in routing.index))
        await stuck.stop(grace=0.05)  # leaves without finishing
        await eventually(lambda: _async("succeeded" in states(transitions, "wf-4")))
    assert states(transitions, "wf-4") == ["queued", "running", "retrying", "running", "succeeded"]
    assert [t.attempt for t in transitions if t.workflow_id == "wf-4"][-1] == 2
    assert routing.redispatched == 1


async def test_malformed_requirement_fails_the_workflow(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """A requirement that does not parse fails the workflow at once."""
    await routing.dispatch(task("wf-5", requires="text stats"), "wf-5")
    await eventually(lambda: _async(states(transitions, "wf-5") == ["failed"]))


async def test_every_ending_stores_a_result_before_the_terminal_transition(
    bus: Bus, routing: AgentDispatcher, transitions: list[WorkflowTransition]
) -> None:
    """Succeeded, no capable agent, malformed requirement: each workflow has its result."""
    results = await TypedBucket.bind(bus, RESULTS, PipelineResult)
    async with stats_agent("stats-1").running(bus):
        await eventually(lambda: _async("stats-1" in routing.index))
        await routing.dispatch(task("wf-6"), "wf-6")
        await routing.dispatch(task("wf-7", requires="text.stats>=2"), "wf-7")
        await routing.dispatch(task("wf-8", requires="text stats"), "wf-8")
        for workflow_id in ("wf-6", "wf-7", "wf-8"):

            def ended(w: str = workflow_id) -> bool:
                return states(transitions, w)[-1:] in (["succeeded"], ["failed"])

            await eventually(ended, timeout=FAST.deadline_s + 5)
            # The result was written before the terminal transition was published.
            assert await results.get_or_none(workflow_id) is not None
    ok = (await results.get("wf-6")).value
    assert (ok.state, ok.steps[0].agent_id, ok.steps[0].output) == (
        "succeeded",
        "stats-1",
        {"words": 4, "agent": "stats-1"},
    )
    late = (await results.get("wf-7")).value
    assert (late.state, late.reason, late.steps[0].agent_id) == ("failed", NO_CAPABLE_AGENT, "")
    bad = (await results.get("wf-8")).value
    assert (bad.state, bad.error_class, bad.steps) == ("failed", "permanent", [])


async def _async(value: object) -> object:
    return value


async def test_dispatcher_handlers_are_the_task_managers(bus: Bus) -> None:
    """The results consumer and both watches run as the task manager's handlers, in STATS."""
    manager = TaskManager(config=TaskManagerConfig(dispatch=FAST))
    async with manager.running(bus):
        stats = json.loads(
            (await bus.nc.request("$SRV.STATS.task_manager", b"", timeout=10.0)).data
        )
        info = await bus.js.consumer_info(AGENT_RESULTS.name, RESULTS_DURABLE)
    names = {e["name"] for e in stats["endpoints"]}
    assert {RESULTS_DURABLE, "watch-troupe-agent-tasks", "watch-troupe-agents"} <= names
    assert info.config.durable_name == RESULTS_DURABLE


async def test_no_dispatch_config_turns_routing_off(bus: Bus) -> None:
    """Without dispatch settings the task manager adds no agent handlers."""
    manager = TaskManager(config=TaskManagerConfig(dispatch=None))
    async with manager.running(bus):
        assert manager.agents is None
        assert all("agent" not in getattr(h.spec, "durable", "") for h in manager.handlers)
