"""Capability routing on a real nats-server: placement, re-dispatch on departure, deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.agent_registry.config import DispatchConfig, RegistryConfig
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.testing import eventually
from actors.sdk import Agent, Task
from actors.task_manager.agents import NO_CAPABLE_AGENT, AgentDispatcher
from protocols.status import StatusEvent, WorkflowTransition
from protocols.tasks import TaskSubmitted

pytestmark = pytest.mark.integration

INTERVAL = 0.25
FAST = DispatchConfig(deadline_s=1.0, poll_interval_s=0.1, departure_grace_s=2.0)


@pytest.fixture
async def routing(bus: Bus) -> AsyncIterator[AgentDispatcher]:
    """A registry and a dispatcher running in this process."""
    registry = AgentRegistry(config=RegistryConfig(sweep_interval_s=0.05, expiry_grace_s=0.2))
    async with registry.running(bus), AgentDispatcher(bus, config=FAST) as dispatcher:
        yield dispatcher


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


async def _async(value: object) -> object:
    return value
