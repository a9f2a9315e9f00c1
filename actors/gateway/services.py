"""What the HTTP API and the MCP server do, once: a thin facade over the actors' clients.

Every answer comes from an actor over NATS (the status tracker, the pipeline
runners, the breaker supervisor, the agent registry) or from JetStream the
actors write (the status stream for histories and live events, the runners'
lease bucket for running steps, the artifact store). Templates and the inputs
a re-run repeats come from the task manager, whichever way a workflow was
submitted (:mod:`actors.gateway.submissions`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from actors.agent_registry.client import find_agents, list_agents
from actors.gateway.auth import TokenVerifier
from actors.gateway.events import EventHub, StreamedEvent
from actors.gateway.logtail import LogTails
from actors.gateway.schemas import (
    Execution,
    ExecutionList,
    History,
    HistoryEntry,
    StepLogs,
    SubmitRequest,
    Submitted,
    TemplateInfo,
    TemplateList,
)
from actors.gateway.submissions import Submissions
from actors.gateway.tokenstore import TokenStore
from actors.pipeline_runner.client import open_artifact, stop_execution
from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.kv import TypedBucket
from actors.schedules.client import ScheduleStore
from actors.task_manager.client import get_task, get_template, list_templates
from protocols import breakers, pipelines, status, tasks
from protocols.agents import AgentList, FindAgents
from protocols.breakers import BreakerList
from protocols.pipelines import ArtifactRef, PipelineResult, StepLease
from protocols.status import WorkflowList, WorkflowView
from protocols.tasks import TaskSubmitted

if TYPE_CHECKING:  # the dashboard imports this module
    from actors.gateway.dashboard.perfwatch import PerfWatch

__all__ = ["Services"]

_STEP_ENDED = frozenset({"succeeded", "failed", "skipped", "cancelled", "timed_out"})


@dataclass
class Services:
    """Everything the gateway's doors (HTTP, MCP) may ask, each method one actor call.

    Attributes:
        bus: the gateway's connection.
        verifier: token verification and scope checks.
        tokens: the token store (the gateway issues tokens itself).
        hub: live status events.
        submissions: what each workflow was submitted with (from the task manager).
        leases: the runners' lease bucket (running steps).
        tails: the last lines of running steps (``None``: a running step's
            logs are not available).
        schedules: the schedules (``None``: no schedules bucket here).
        recent: the newest workflow views, kept live from a watch of the workflows
            bucket while the dashboard's performance page is read (``None``: the
            page always asks the status tracker).
    """

    bus: Bus
    verifier: TokenVerifier
    tokens: TokenStore
    hub: EventHub
    submissions: Submissions
    leases: TypedBucket[StepLease] | None = None
    tails: LogTails | None = None
    schedules: ScheduleStore | None = None
    recent: PerfWatch | None = None

    # -- workflows -----------------------------------------------------------------

    async def submit(self, request: SubmitRequest, *, key: str | None = None) -> Submitted:
        """Submit a workflow; a known idempotency key creates nothing new.

        Args:
            request: template or inline pipeline, parameters and labels.
            key: idempotency key from a header (``request.idempotency_key`` wins).

        Raises:
            BadRequest: neither or both of template and pipeline, or a bad key.
        """
        if (request.template is None) == (request.pipeline is None):
            raise BadRequest("give exactly one of 'template' and 'pipeline'")
        task_id = request.idempotency_key or key or uuid.uuid4().hex
        try:
            task = TaskSubmitted(
                task_id=task_id,
                template=request.template,
                pipeline=request.pipeline,
                params=dict(request.params),
                requires=request.requires,
                labels=dict(request.labels),
                submitted_at=time.time(),
            )
            task = msgspec.convert(msgspec.to_builtins(task), TaskSubmitted)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"invalid submission: {exc}") from None
        return await self._send(task)

    async def _send(self, task: TaskSubmitted, rerun_of: str | None = None) -> Submitted:
        trace_id = telemetry.current_trace_id()
        # One JetStream write, as a submit straight over NATS: the task manager
        # keeps the submission in its task record.
        ack = await self.bus.send(tasks.SUBMIT_SUBJECT, task, msg_id=task.task_id)
        return Submitted(
            workflow_id=task.task_id,
            duplicate=bool(ack.duplicate),
            trace_id=trace_id,
            rerun_of=rerun_of,
        )

    async def get(self, workflow_id: str) -> WorkflowView:
        """Return a workflow's current view.

        Raises:
            NotFound: no such workflow.
        """
        return await self.bus.request(
            status.GET_SUBJECT, status.GetWorkflow(workflow_id=workflow_id), WorkflowView
        )

    async def list(self, query: status.ListWorkflows) -> WorkflowList:
        """Return a page of workflows, newest first."""
        return await self.bus.request(status.LIST_SUBJECT, query, WorkflowList)

    async def result(self, workflow_id: str) -> PipelineResult:
        """Return a finished workflow's stored result.

        Raises:
            NotFound: no result (yet).
        """
        return await self.bus.request(
            pipelines.RESULT_SUBJECT,
            pipelines.GetResult(workflow_id=workflow_id),
            PipelineResult,
        )

    async def artifact(
        self, workflow_id: str, name: str, step: str | None = None
    ) -> tuple[ArtifactRef, AsyncIterator[bytes]]:
        """Return an artifact's reference and an iterator over its bytes, streamed from the store.

        Raises:
            NotFound: no such result or artifact.
            ArtifactCorrupt: the stored object is not the referenced content
                (also raised by the iterator before the last chunk).
        """
        result = await self.result(workflow_id)
        matches = [
            ref
            for s in result.steps
            for ref in s.artifacts
            if ref.name == name and (step is None or s.name == step)
        ]
        if not matches:
            raise NotFound(f"workflow {workflow_id} has no artifact {name!r}")
        ref = matches[-1]
        return ref, await open_artifact(self.bus, ref)

    async def history(self, workflow_id: str) -> History:
        """Return every status event of a workflow, oldest first.

        Raises:
            NotFound: the status stream holds nothing for it.
        """
        items: list[HistoryEntry] = []
        async for event in self.hub.history(workflow_id):
            items.append(HistoryEntry(seq=event.seq, event=event.to_json()["event"]))
        if not items:
            raise NotFound(f"no history of workflow {workflow_id}")
        return History(workflow_id=workflow_id, items=items)

    async def logs(self, workflow_id: str, step: str) -> StepLogs:
        """Return a step's output: the tails it left in the result, or its lines so far.

        While the workflow runs there is no result yet: the answer is what the
        step printed so far (its last lines, see :mod:`actors.gateway.logtail`),
        with ``running`` set while the step itself has not ended.

        Raises:
            NotFound: no such workflow, or no such step in its result or plan.
        """
        try:
            result = await self.result(workflow_id)
        except NotFound:
            return await self._live_logs(workflow_id, step)
        for found in reversed(result.steps):
            if found.name == step:
                return StepLogs(
                    workflow_id=workflow_id,
                    step=step,
                    state=found.state,
                    exit_code=found.exit_code,
                    stdout=found.stdout_tail,
                    stderr=found.stderr_tail,
                    reason=found.reason,
                )
        raise NotFound(f"workflow {workflow_id} has no step {step!r} in its result")

    async def _live_logs(self, workflow_id: str, step: str) -> StepLogs:
        view = await self.get(workflow_id)
        if view.state in status.TERMINAL_STATES:
            raise NotFound(f"workflow {workflow_id} is {view.state} and has no result")
        found = next((s for s in view.steps if s.name == step), None)
        if found is None:
            raise NotFound(f"workflow {workflow_id} has no step {step!r}")
        tail = self.tails.tail(workflow_id, step) if self.tails is not None else None
        state = found.state
        if state == "pending" and tail is not None:
            # The view follows the status events; output proves the step started.
            state = "running"
        return StepLogs(
            workflow_id=workflow_id,
            step=step,
            state=state,
            exit_code=found.exit_code,
            stdout=tail.text("stdout") if tail else "",
            stderr=tail.text("stderr") if tail else "",
            reason=found.reason,
            running=state not in _STEP_ENDED,
            dropped=tail.dropped if tail else 0,
        )

    async def follow(
        self, workflow_id: str | None, *, after: int | None = None
    ) -> AsyncIterator[StreamedEvent]:
        """Return a workflow's events (``None``: every workflow's) from ``after`` on.

        The event hub reads the status stream, and the firehose's starting
        point is fixed, before this returns: what happens once the caller's
        stream is open is in it.
        """
        await self.hub.ensure_reading()
        if workflow_id is None and after is None:
            after = await self.hub.now()
        return self.hub.follow(workflow_id, after=after)

    async def cancel(self, workflow_id: str, reason: str = "cancelled by user") -> str:
        """Cancel a workflow; return its id.

        Raises:
            RequestError: unknown or finished workflow.
        """
        accepted = await self.bus.request(
            tasks.CANCEL_SUBJECT,
            tasks.CancelTask(workflow_id=workflow_id, reason=reason),
            tasks.CancelAccepted,
        )
        return accepted.workflow_id

    async def rerun(self, workflow_id: str) -> Submitted:
        """Submit the same inputs again as a new workflow labelled ``rerun_of``.

        The inputs are the submission the task manager recorded, however the
        workflow was submitted (CLI, gateway, raw NATS, a schedule).

        Raises:
            NotFound: no such task, or its submission was not kept.
        """
        record = await get_task(self.bus, workflow_id)
        old = record.submission
        if old is None:
            # Records written before the task manager kept submissions.
            entry = await self.submissions.get_or_none(workflow_id)
            if entry is None:
                raise NotFound(f"the inputs of workflow {workflow_id} were not kept")
            old = entry.value
        task = msgspec.structs.replace(
            old,
            task_id=uuid.uuid4().hex,
            labels={**old.labels, "rerun_of": workflow_id},
            submitted_at=time.time(),
        )
        return await self._send(task, rerun_of=workflow_id)

    # -- catalogue -----------------------------------------------------------------

    async def templates(self) -> TemplateList:
        """Return every template with its parameters, as the task manager knows them."""
        found = await list_templates(self.bus)
        return TemplateList(items=[_template(t) for t in found.items])

    async def template(self, name: str) -> TemplateInfo:
        """Return one template, as the task manager knows it.

        Raises:
            NotFound: no such template.
        """
        return _template(await get_template(self.bus, name))

    async def agents(self, capability: str | None = None) -> AgentList:
        """Return live agents (with ``capability``: those that have it, least loaded first)."""
        if capability:
            return await find_agents(self.bus, FindAgents(capability=capability))
        return await list_agents(self.bus)

    async def breakers(self, prefix: str = "") -> BreakerList:
        """Return every breaker (whose key starts with ``prefix``)."""
        return await self.bus.request(
            breakers.LIST_SUBJECT, breakers.ListBreakers(prefix=prefix), breakers.BreakerList
        )

    async def control_breaker(self, key: str, action: str) -> BreakerList:
        """Force open, disable or reset a breaker; return its new state."""
        control = msgspec.convert({"key": key, "action": action}, breakers.BreakerControl)
        return await self.bus.request(breakers.CONTROL_SUBJECT, control, BreakerList)

    async def executions(self) -> ExecutionList:
        """Return the steps running now, from the runners' step leases."""
        items: list[Execution] = []
        if self.leases is not None:
            for key in await self.leases.keys():
                entry = await self.leases.get_or_none(key)
                if entry is None or not entry.value.step:
                    continue
                lease = entry.value
                items.append(
                    Execution(
                        workflow_id=lease.workflow_id,
                        step=lease.step,
                        runner=lease.runner,
                        attempt=lease.attempt,
                        started_at=lease.acquired_at,
                    )
                )
        return ExecutionList(items=sorted(items, key=lambda e: e.started_at))

    async def stop_execution(self, workflow_id: str, step: str) -> ExecutionList:
        """Ask the runner executing a step to stop it; its workflow then ends ``cancelled``.

        Returns:
            The step that was asked to stop.

        Raises:
            NotFound: the step is not executing now (or no runner ever ran here).
        """
        if self.leases is None:
            raise NotFound(f"step {step!r} of workflow {workflow_id} is not executing now")
        lease = await stop_execution(self.bus, workflow_id, step, leases=self.leases)
        return ExecutionList(
            items=[
                Execution(
                    workflow_id=lease.workflow_id,
                    step=lease.step,
                    runner=lease.runner,
                    attempt=lease.attempt,
                    started_at=lease.acquired_at,
                )
            ]
        )


def _template(found: tasks.TemplateInfo) -> TemplateInfo:
    return TemplateInfo(
        name=found.name, description=found.description, params=found.params, steps=found.steps
    )
