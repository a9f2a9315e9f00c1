"""Results of agent tasks: their pipeline-shaped form, first-result-wins storage, reports."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from actors.gateway.mcp.models import from_result
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec
from actors.runtime.testing import eventually
from actors.task_manager.agent_results import (
    AGENT_BACKEND,
    AgentReports,
    AgentResults,
    agent_result,
)
from actors.topology import STATUS_EVENTS
from protocols.agents import AgentAssignment, TaskResult
from protocols.status import StatusEvent, StepTransition, WorkflowTransition

ASSIGNED = AgentAssignment(
    workflow_id="wf-1",
    task_id="wf-1",
    capability="text.stats",
    state="assigned",
    agent_id="stats-1",
    attempt=2,
    assigned_at=110.0,
    created_at=100.0,
)


def report(ok: bool = True, agent_id: str = "stats-1") -> TaskResult:
    return TaskResult(
        workflow_id="wf-1",
        message_id="wf-1",
        agent_id=agent_id,
        ok=ok,
        output={"words": 4} if ok else {},
        error="" if ok else "nothing to count",
        error_class=None if ok else "permanent",
    )


def test_a_success_is_one_step_named_after_the_capability_with_the_agent_output() -> None:
    """The step carries the agent, its output, the attempt and the time since placement."""
    result = agent_result(ASSIGNED, "succeeded", 115.0, result=report())
    assert (result.state, result.backend, result.reason) == ("succeeded", AGENT_BACKEND, "")
    assert (result.started_at, result.finished_at, result.attempt) == (100.0, 115.0, 2)
    [step] = result.steps
    assert (step.name, step.state, step.agent_id, step.output) == (
        "text.stats",
        "succeeded",
        "stats-1",
        {"words": 4},
    )
    assert (step.duration_s, step.attempt, step.attempt_reason) == (5.0, 2, "retry")


def test_a_failure_carries_the_agent_error_and_its_class() -> None:
    """The agent's error is the step's and the run's reason."""
    result = agent_result(ASSIGNED, "failed", 115.0, result=report(ok=False))
    [step] = result.steps
    assert (step.state, step.reason, step.error_class) == (
        "failed",
        "nothing to count",
        "permanent",
    )
    assert (result.reason, result.error_class) == ("nothing to count", "permanent")
    assert step.output == {}


def test_a_task_no_agent_took_fails_with_the_given_reason_and_no_agent() -> None:
    """Without a report the reason given is used and no agent is named."""
    waiting = AgentAssignment(
        workflow_id="wf-2", task_id="wf-2", capability="text.stats", created_at=100.0
    )
    result = agent_result(
        waiting, "failed", 160.0, reason="no_capable_agent", error_class="unavailable"
    )
    [step] = result.steps
    assert (step.agent_id, step.reason, step.error_class) == ("", "no_capable_agent", "unavailable")
    assert step.duration_s == 0.0
    assert result.backend_note == "no agent took the task"


def test_the_mcp_result_shows_the_agent_and_its_output() -> None:
    """MCP ``get_result`` answers with the agent id and output of the step."""
    out = from_result(agent_result(ASSIGNED, "succeeded", 115.0, result=report()))
    assert (out.steps[0].agent_id, out.steps[0].output) == ("stats-1", {"words": 4})


@pytest.mark.integration
async def test_the_first_stored_result_wins(bus: Bus) -> None:
    """A later result of the same workflow (a re-dispatched copy) does not replace the first."""
    results = await AgentResults.bind(bus)
    first = agent_result(ASSIGNED, "succeeded", 115.0, result=report())
    late = agent_result(ASSIGNED, "succeeded", 120.0, result=report(agent_id="spare-1"))
    assert await results.store(first) == first
    assert await results.store(late) == first


@pytest.mark.integration
async def test_ending_reports_the_stored_result_even_when_a_later_one_differs(bus: Bus) -> None:
    """After a crash mid-way, a different late result is reported as the stored one."""
    await bus.ensure_stream(STATUS_EVENTS)
    results = await AgentResults.bind(bus)
    reports = AgentReports(bus, "test", results)
    seen: list[StatusEvent] = []
    codec = Codec.of(StatusEvent)

    async def record(msg: Msg) -> None:
        seen.append(codec.decode(msg.data))

    sub = await bus.nc.subscribe("troupe.status.events.wf-1", cb=record)
    await results.store(agent_result(ASSIGNED, "failed", 115.0, result=report(ok=False)))
    await reports.end(ASSIGNED, "succeeded", 120.0, result=report())
    await eventually(lambda: len(seen) == 2)
    await sub.unsubscribe()
    step, workflow = seen
    assert isinstance(step, StepTransition)
    assert isinstance(workflow, WorkflowTransition)
    assert (step.state, workflow.state, workflow.reason) == ("failed", "failed", "nothing to count")
