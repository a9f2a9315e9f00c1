"""The task manager actor: tasks in, validated and planned pipeline runs out.

It consumes :class:`~protocols.tasks.TaskSubmitted` from the work-queue stream
``TROUPE_TASKS`` and, for each task:

1. renders the template (or the inline pipeline) with the task's parameters and
   plans its step graph;
2. claims the task id in the ``troupe-tasks`` bucket (``kv.create``), the record
   born ``queued`` when the plan succeeded and ``accepted`` when it failed: a
   second submission with the same id (past the stream's de-duplication window)
   is dropped, while a redelivery of the same message (same stream sequence,
   after a crash) is handled again from the start;
3. when the plan failed, reports ``submitted`` then ``rejected`` with a precise
   reason, and nothing runs;
4. reports ``submitted`` and ``queued`` (the planned steps and the deadline),
   then publishes the :class:`~protocols.pipelines.PipelineRun` with
   ``Nats-Msg-Id`` = workflow id, so a redelivered task never produces a second
   run. A valid task thus costs one write to the bucket.

Every status event carries a ``Nats-Msg-Id`` too, so re-handling a task after a
crash repeats no event inside the status stream's window. Tasks that name a
required capability are not planned here: claimed as ``accepted``, they go to the
agent dispatcher (``actors.task_manager.agents``) instead of a pipeline runner.
The cancel endpoint stores the record as ``cancelled``, broadcasts
:class:`~protocols.pipelines.CancelRun` to every runner (which stop a run
published after it too) and reports ``cancelled``. The task record keeps the
submission, which :mod:`~actors.task_manager.queries` answers (for re-runs) with
the templates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock
from actors.runtime.codec import Codec, Encoding, encoding_of
from actors.runtime.errors import BadRequest, Conflict, DeadLetter, NotFound, Unavailable
from actors.runtime.handlers import MessageContext, RequestContext, consumer, endpoint
from actors.runtime.overlap import overlapped
from actors.runtime.telemetry import current_trace_id
from actors.task_manager.agents import AgentDispatcher
from actors.task_manager.config import TaskManagerConfig
from actors.task_manager.definitions import to_document
from actors.task_manager.errors import TaskRejected
from actors.task_manager.plan import plan
from actors.task_manager.queries import TaskQueries
from actors.task_manager.schedules import ScheduleFirings
from actors.task_manager.store import StoredRecord, TaskStore
from actors.task_manager.templates import TemplateRegistry, bundled_templates_dir, render
from actors.topology import (
    AGENT_RESULTS_CONSUMER,
    PIPELINES,
    SCHEDULE_FIRINGS,
    STATUS_EVENTS,
    TASK_IDS,
    TASKS,
)
from protocols import headers, pipelines, tasks
from protocols.ids import ID_PATTERN
from protocols.pipelines import PipelineRun, PipelineSpec
from protocols.status import (
    WorkflowState,
    WorkflowTransition,
    event_subject,
    transition_msg_id,
)
from protocols.tasks import CancelAccepted, CancelTask, TaskRecord, TaskSubmitted

__all__ = ["TaskManager", "prepare"]

log = logging.getLogger(__name__)


_SUBMIT: Codec[TaskSubmitted] = Codec.of(TaskSubmitted)


class _TaskIdOnly(msgspec.Struct):
    """The one field of a submission read when the rest does not decode."""

    task_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]


def _readable_task_id(
    raw: msgspec.Raw, encoding: Encoding, message_headers: Mapping[str, str]
) -> str | None:
    """Return the id of an undecodable submission: its valid ``task_id``, else its
    valid ``Nats-Msg-Id``, else ``None``."""
    try:
        found: _TaskIdOnly = Codec.of(_TaskIdOnly).decode(raw, encoding)
    except BadRequest:
        pass
    else:
        return found.task_id
    msg_id = message_headers.get(headers.MSG_ID, "")
    return msg_id if re.fullmatch(ID_PATTERN, msg_id) else None


def prepare(
    task: TaskSubmitted, templates: TemplateRegistry
) -> tuple[PipelineSpec, list[list[str]]]:
    """Render and plan the pipeline of ``task``.

    Returns:
        The rendered pipeline and its stages.

    Raises:
        TaskRejected: the task is invalid; its ``reason`` says why.
    """
    if task.template is not None and task.pipeline is not None:
        raise TaskRejected("invalid_task", "give a template or an inline pipeline, not both")
    if task.template is not None:
        pipeline = templates.render(task.template, task.params)
    elif task.pipeline is not None:
        pipeline = render(
            to_document(task.pipeline), task.params, source=f"pipeline {task.pipeline.name!r}"
        )
    else:
        raise TaskRejected("invalid_task", "the task names neither a template nor a pipeline")
    return pipeline, plan(pipeline)


class TaskManager(Actor):
    """Validates tasks, plans their pipelines and publishes the runs.

    Args:
        clock: time source (acceptance times, deadlines, event times).
        config: template directories; read from the environment when omitted.
    """

    name = "task_manager"
    event_loop = "uvloop"
    description = "Turns submitted tasks into validated, planned pipeline runs"
    streams = (STATUS_EVENTS, PIPELINES)
    buckets = (TASK_IDS,)
    consumers = (AGENT_RESULTS_CONSUMER,)

    def __init__(
        self, *, clock: Clock = system_clock, config: TaskManagerConfig | None = None
    ) -> None:
        super().__init__(clock=clock)
        self.config = config if config is not None else TaskManagerConfig.from_env()
        directories: list[Path] = []
        if self.config.bundled and (builtin := bundled_templates_dir()) is not None:
            directories.append(builtin)
        directories.extend(self.config.template_dirs)
        self.templates = TemplateRegistry(directories)
        self.agents: AgentDispatcher | None = None
        self._store: TaskStore | None = None
        self.counts: dict[str, int] = {
            "accepted": 0,
            "queued": 0,
            "rejected": 0,
            "duplicates": 0,
            "dispatched": 0,
            "cancelled": 0,
        }

    @property
    def store(self) -> TaskStore:
        """The task records (available once started)."""
        if self._store is None:
            raise RuntimeError("task manager is not running")
        return self._store

    async def on_start(self) -> None:
        """Open the task ids bucket, attach the agent dispatcher (unless routing is off) and
        serve the task record and template queries."""
        self._store = await TaskStore.open(self.bus)
        if self.config.dispatch is None:
            self.agents = None
            log.info("capability routing is off: tasks requiring a capability are rejected")
        else:
            dispatcher = AgentDispatcher(self, self.config.dispatch)
            await dispatcher.attach()
            self.agents = dispatcher
        self.schedules = ScheduleFirings(self.bus)
        await self.add_consumer(SCHEDULE_FIRINGS, self.schedules.fire, message_type=TaskSubmitted)
        queries = TaskQueries(self._store, self.templates, prepare)
        await self.add_endpoint(tasks.GET_SUBJECT, queries.get_task)
        await self.add_endpoint(tasks.TEMPLATE_LIST_SUBJECT, queries.list_templates)
        await self.add_endpoint(tasks.TEMPLATE_GET_SUBJECT, queries.get_template)
        await self.add_endpoint(tasks.VALIDATE_SUBJECT, queries.validate)
        log.info("task manager knows %d templates", len(self.templates))

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Counters of handled tasks, on the consumer's ``$SRV.STATS`` entry."""
        return {"task-manager": dict(self.counts), "templates": {"count": len(self.templates)}}

    # -- handlers --------------------------------------------------------------------

    @consumer(
        TASKS,
        durable="task-manager",
        options=lambda self: {
            "concurrency": self.config.concurrency,
            "ack_wait": self.config.ack_wait_s,
            "max_deliver": self.config.max_deliver,
        },
    )
    async def submit(self, raw: msgspec.Raw, ctx: MessageContext) -> None:
        """Handle one submitted task (idempotent end to end, see the module docstring).

        The body is decoded here rather than by the runtime, so that a task that
        fails decoding or validation still ends ``rejected`` (reason
        ``invalid_task: ...``) when its id can be read, from the body's
        ``task_id`` or the ``Nats-Msg-Id`` header, before it is dead-lettered.

        Raises:
            DeadLetter: the body is not a valid :class:`TaskSubmitted`.
        """
        encoding = encoding_of(ctx.headers)
        try:
            task = _SUBMIT.decode(raw, encoding)
        except BadRequest as exc:
            await self._reject_undecodable(raw, encoding, ctx, exc.message)
            raise DeadLetter(exc.message) from None
        await self._accept(task, ctx)

    async def _accept(self, task: TaskSubmitted, ctx: MessageContext) -> None:
        workflow_id = task.task_id
        label = task.template or (task.pipeline.name if task.pipeline else None)
        # A task for a pipeline runner is planned before it is claimed, so that a valid
        # one is stored once, already queued. A task for an agent, or one its plan
        # rejects, is claimed as accepted: either way the claim decides duplicates
        # before anything is reported.
        planned: tuple[PipelineSpec, list[list[str]]] | TaskRejected | None = None
        if not task.requires:
            try:
                planned = prepare(task, self.templates)
            except TaskRejected as exc:
                planned = exc
        stored, created = await self.store.claim(
            TaskRecord(
                task_id=workflow_id,
                state="queued" if isinstance(planned, tuple) else "accepted",
                accepted_at=self.clock.time(),
                sequence=ctx.sequence,
                template=label,
                submission=task,
            )
        )
        if not created:
            if stored.record.sequence != ctx.sequence:
                self.counts["duplicates"] += 1
                log.info("task %s already submitted; duplicate dropped", workflow_id)
                return
            if stored.record.state in ("rejected", "cancelled"):
                return
            log.info("task %s handled again after an interrupted attempt", workflow_id)
        else:
            self.counts["accepted"] += 1
        submitted = {
            "template": label,
            "trace_id": current_trace_id(),
            "labels": dict(task.labels),
        }
        if planned is None:
            await self._report(workflow_id, "submitted", **submitted)
            await self._dispatch(task, stored)
            return
        if isinstance(planned, TaskRejected):
            await self._report(workflow_id, "submitted", **submitted)
            await self._reject(stored, planned)
            return
        pipeline, stages = planned
        deadline = (
            stored.record.accepted_at + pipeline.timeout if pipeline.timeout is not None else None
        )
        queued = {
            "template": label,
            "steps": [name for stage in stages for name in stage],
            "deadline": deadline,
        }
        if stored.record.state != "accepted":
            # Claimed as queued (now, or by an interrupted attempt). A cancel from the
            # claim on is not seen here: the runners stop the run published below
            # (CancelRun, which each remembers, and the workflow's cancelled view).
            await overlapped(
                self._report(workflow_id, "submitted", **submitted),
                self._report(workflow_id, "queued", **queued),
            )
        else:
            # An interrupted attempt claimed the task as accepted (it could not plan the
            # task then, or was a task manager that claimed every task so): both
            # transitions and the record's move are in flight together (in this order);
            # the run is published only once all three are stored, and a cancel that
            # won the race stops it here.
            *_, moved = await overlapped(
                self._report(workflow_id, "submitted", **submitted),
                self._report(workflow_id, "queued", **queued),
                self.store.replace(stored, msgspec.structs.replace(stored.record, state="queued")),
            )
            if moved is None:
                latest = await self.store.get(workflow_id)
                if latest is None or latest.record.state == "cancelled":
                    log.info("task %s cancelled before its run was published", workflow_id)
                    return
        await self.bus.send(
            pipelines.RUN_SUBJECT,
            PipelineRun(
                workflow_id=workflow_id,
                pipeline=pipeline,
                order=stages,
                template=label,
                deadline=deadline,
            ),
            msg_id=workflow_id,
        )
        self.counts["queued"] += 1

    @endpoint(tasks.CANCEL_SUBJECT)
    async def cancel(self, request: CancelTask, ctx: RequestContext) -> CancelAccepted:
        """Cancel a workflow: tell every runner to stop it and report ``cancelled``.

        Raises:
            NotFound: no task has this id.
            Conflict: the task was rejected, so nothing runs.
            Unavailable: the record kept changing under us; try again.
        """
        workflow_id = request.workflow_id
        for _ in range(5):
            stored = await self.store.get(workflow_id)
            if stored is None:
                raise NotFound(f"no workflow {workflow_id!r}")
            if stored.record.state == "rejected":
                raise Conflict(f"workflow {workflow_id!r} was rejected ({stored.record.reason})")
            if stored.record.state == "cancelled":
                break
            cancelled = msgspec.structs.replace(
                stored.record, state="cancelled", reason=request.reason
            )
            if await self.store.replace(stored, cancelled) is not None:
                self.counts["cancelled"] += 1
                break
        else:
            raise Unavailable(f"workflow {workflow_id!r} is changing; try again")
        await self.bus.publish(
            pipelines.CANCEL_SUBJECT,
            pipelines.CancelRun(workflow_id=workflow_id, reason=request.reason),
        )
        await self._report(workflow_id, "cancelled", reason=request.reason)
        return CancelAccepted(workflow_id=workflow_id)

    # -- steps -----------------------------------------------------------------------

    async def _report(self, workflow_id: str, state: WorkflowState, **fields: Any) -> None:
        await self.bus.send(
            event_subject(workflow_id),
            WorkflowTransition(
                workflow_id=workflow_id,
                state=state,
                at=self.clock.time(),
                source=self.name,
                **fields,
            ),
            msg_id=transition_msg_id(workflow_id, state),
        )

    async def _reject_undecodable(
        self, raw: msgspec.Raw, encoding: Encoding, ctx: MessageContext, problem: str
    ) -> None:
        """Record ``rejected`` for a submit that does not decode, if its id can be read."""
        workflow_id = _readable_task_id(raw, encoding, ctx.headers)
        if workflow_id is None:
            log.warning("undecodable task without a readable id dead-lettered: %s", problem)
            return
        reason = f"invalid_task: {problem}"
        stored, created = await self.store.claim(
            TaskRecord(
                task_id=workflow_id,
                state="rejected",
                accepted_at=self.clock.time(),
                sequence=ctx.sequence,
                reason=reason,
            )
        )
        if not created and stored.record.sequence != ctx.sequence:
            # The id belongs to another submission: that task stands untouched.
            log.info("undecodable task reuses the id %s; dead-lettered only", workflow_id)
            return
        log.info("task %s rejected: %s", workflow_id, reason)
        await self._report(workflow_id, "submitted")
        await self._report(workflow_id, "rejected", reason=reason)
        if created:
            self.counts["rejected"] += 1

    async def _reject(self, stored: StoredRecord, problem: TaskRejected) -> None:
        record = stored.record
        log.info("task %s rejected: %s", record.task_id, problem.reason)
        await self._report(
            record.task_id, "rejected", template=record.template, reason=problem.reason
        )
        await self.store.replace(
            stored, msgspec.structs.replace(record, state="rejected", reason=problem.reason)
        )
        self.counts["rejected"] += 1

    async def _dispatch(self, task: TaskSubmitted, stored: StoredRecord) -> None:
        if self.agents is None:
            await self._reject(
                stored,
                TaskRejected(
                    "no_capable_agent",
                    f"no agent can take tasks requiring {task.requires!r}: "
                    "capability routing is off",
                ),
            )
            return
        await self.agents.dispatch(task, task.task_id)
        if stored.record.state == "accepted":
            await self.store.replace(
                stored, msgspec.structs.replace(stored.record, state="dispatched")
            )
        self.counts["dispatched"] += 1
