"""Capability routing: hand a task that requires a capability to a live agent, and see it done.

:class:`AgentDispatcher` keeps every open agent task as an
:class:`~protocols.agents.AgentAssignment` in the ``troupe-agent-tasks``
bucket (revision-checked, so task manager replicas never both act on one):

* ``dispatch`` records the task as ``waiting`` and tries to place it at once;
* a waiting task goes to the least-loaded capable agent the registry finds
  (the dispatcher's own view of the agents bucket if no registry answers):
  the assignment becomes ``assigned`` and a ``task`` envelope, ``message_id``
  = the task's idempotency key, goes to the agent's durable inbox;
* when the agents bucket shows that agent gone (key expired or deleted), the
  task goes back to ``waiting`` and on to another capable agent, with the
  same idempotency key (at-least-once);
* a task still waiting at its deadline fails the workflow with reason
  ``no_capable_agent``;
* the agent's :class:`~protocols.agents.TaskResult` (a JetStream stream, so it
  survives a restart of the task manager) finishes the workflow as
  ``succeeded`` or ``failed``; the first result wins, and the assignment stays
  as ``done`` (until the bucket's max age) so a repeated dispatch changes nothing;
* every way the workflow ends stores its result in the results bucket first,
  shaped like a pipeline's (:mod:`actors.task_manager.agent_results`).

Status events: ``queued`` while waiting, ``running`` (attempt *n*) once
placed, ``retrying`` when the holder departs, then ``succeeded``/``failed``.

The dispatcher is part of an actor (the task manager): :meth:`AgentDispatcher.attach`,
called from the actor's ``on_start``, adds its handlers through the runtime —
a watch of the assignments bucket (the local mirror of open tasks), a watch of
the agents bucket (presence), the results consumer — and spawns its loop, so
they stop with the actor and show in ``$SRV.STATS``. The pure logic lives in
:mod:`actors.task_manager.routing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

import nats.errors

from actors.agent_registry.client import (
    DispatchConfig,
    PresenceEvent,
    PresenceFeed,
    find_agents,
    parse_requirement,
)
from actors.runtime.actor import Actor
from actors.runtime.errors import Conflict, RequestError
from actors.runtime.handlers import ConsumerSpec, MessageContext
from actors.runtime.kv import TypedBucket
from actors.runtime.watch import Entry
from actors.task_manager.agent_results import AgentReports, AgentResults
from actors.task_manager.routing import Presence, finished, held_counts, placed, released
from actors.topology import AGENT_ASSIGNMENTS, AGENT_INBOX, AGENT_RESULTS, STATUS_EVENTS
from protocols.agents import (
    AgentAssignment,
    AgentEnvelope,
    AgentView,
    FindAgents,
    TaskResult,
    inbox_subject,
    result_subject,
)
from protocols.status import StepTransition
from protocols.tasks import TaskSubmitted

__all__ = ["NO_CAPABLE_AGENT", "RESULTS_DURABLE", "AgentDispatcher", "DispatchConfig"]

log = logging.getLogger(__name__)

NO_CAPABLE_AGENT = "no_capable_agent"
"""Reason of a workflow that found no capable agent before its deadline."""

RESULTS_DURABLE = "task-manager-agent-results"
"""Durable consumer of agents' task results."""

_RESEND_WITHIN_S = 60.0
"""Assignments younger than this are sent again at start (a crash may have lost the send)."""


class AgentDispatcher:
    """Routes capability tasks to agents and follows them to completion.

    Create it with its owning actor and call :meth:`attach` from the actor's
    ``on_start``; it stops with the actor.

    Args:
        owner: the actor whose handlers and background tasks it adds.
        config: settings (from ``TROUPE_AGENT_*`` variables by default).
    """

    def __init__(self, owner: Actor, config: DispatchConfig | None = None) -> None:
        self.owner = owner
        self.config = config if config is not None else DispatchConfig.from_env()
        self.presence = Presence()
        self.open: dict[str, tuple[AgentAssignment, int]] = {}
        """Open assignments by workflow id, with their bucket revision."""
        self.redispatched = 0
        self._assignments: TypedBucket[AgentAssignment] | None = None
        self._reporter: AgentReports | None = None
        self._feed = PresenceFeed(self._on_presence)
        self._wake = asyncio.Event()
        self._mirror_ready = asyncio.Event()

    @property
    def index(self) -> Presence:
        """The agents this dispatcher sees (``agent_id in dispatcher.index``)."""
        return self.presence

    async def attach(self) -> None:
        """Add the watches, the results consumer and the dispatch loop to the owner."""
        owner, bus = self.owner, self.owner.bus
        for stream in (AGENT_INBOX, STATUS_EVENTS):
            await bus.ensure_stream(stream)
        self._mirror_ready.clear()
        self._assignments = await TypedBucket.bind(bus, AGENT_ASSIGNMENTS, AgentAssignment)
        self._reporter = AgentReports(bus, self.config.source, await AgentResults.bind(bus))
        await owner.add_watch(
            AGENT_ASSIGNMENTS,
            self._on_assignment,
            value_type=AgentAssignment,
            on_caught_up=self._caught_up,
        )
        await self._feed.attach(owner)
        await owner.add_consumer(
            ConsumerSpec(stream=AGENT_RESULTS, durable=RESULTS_DURABLE, concurrency=16),
            self._on_result,
            message_type=TaskResult,
        )
        owner.spawn(self._run(), name="agent-dispatch")

    # -- entry point -----------------------------------------------------------------

    async def dispatch(self, task: TaskSubmitted, workflow_id: str) -> None:
        """Record ``task`` as an open agent task and try to place it now.

        Idempotent: dispatching the same workflow again (a redelivery) changes nothing.
        A malformed ``requires`` fails the workflow at once.
        """
        assert task.requires is not None
        now = self.owner.clock.time()
        try:
            capability, min_version = parse_requirement(task.requires)
        except ValueError as exc:
            refused = AgentAssignment(
                workflow_id=workflow_id, task_id=task.task_id, capability=task.requires
            )
            await self._reports.end(
                refused, "failed", now, reason=str(exc), error_class="permanent", step=False
            )
            return
        assignment = AgentAssignment(
            workflow_id=workflow_id,
            task_id=task.task_id,
            capability=capability,
            min_version=min_version,
            params=dict(task.params),
            state="waiting",
            deadline=now + self.config.deadline_s,
            created_at=now,
        )
        try:
            revision = await self._bucket.create(workflow_id, assignment)
        except Conflict:
            log.info("agent task %s already open", workflow_id)
            return
        self.open[workflow_id] = (assignment, revision)
        await self._reports.emit(
            self._reports.transition(
                workflow_id,
                "queued",
                now,
                steps=[capability],
                reason=f"waiting for an agent with {capability}>={min_version}",
            )
        )
        await self._advance(workflow_id, assignment, revision)

    # -- the loop ------------------------------------------------------------------

    @property
    def _bucket(self) -> TypedBucket[AgentAssignment]:
        if self._assignments is None:
            raise RuntimeError("agent dispatcher is not attached")
        return self._assignments

    async def _run(self) -> None:
        await self._mirror_ready.wait()
        await self._resend_recent()
        clock = self.owner.clock
        while True:
            sleeper = asyncio.ensure_future(clock.sleep(self.config.poll_interval_s))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._wake.clear()
            self.presence.sweep(clock.monotonic())
            for workflow_id, (assignment, revision) in list(self.open.items()):
                try:
                    await self._advance(workflow_id, assignment, revision)
                except (RequestError, nats.errors.Error, OSError) as exc:
                    log.warning("agent task %s: %s", workflow_id, exc)

    async def _advance(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        now = self.owner.clock.time()
        if assignment.state == "assigned":
            since = now - (assignment.assigned_at or 0.0)
            if self.presence.holder_gone(assignment, since, self.config.departure_grace_s):
                await self._release(workflow_id, assignment, revision)
            return
        candidates = await self._find(assignment)
        if candidates:
            await self._assign(workflow_id, assignment, revision, candidates[0])
        elif assignment.deadline is not None and now >= assignment.deadline:
            await self._give_up(workflow_id, assignment, revision)

    async def _find(self, assignment: AgentAssignment) -> list[str]:
        query = FindAgents(
            capability=assignment.capability,
            min_version=assignment.min_version,
            labels=assignment.labels,
            limit=self.config.find_limit,
        )
        views: list[AgentView]
        try:
            views = (await find_agents(self.owner.bus, query, timeout=2.0)).agents
        except RequestError:
            # No registry: the dispatcher's own view of the bucket is as good.
            views = self.presence.index.find(query, self.owner.clock.monotonic())
        held = held_counts(a for a, _ in self.open.values())
        return self.presence.rank(views, assignment, held)

    async def _assign(
        self, workflow_id: str, assignment: AgentAssignment, revision: int, agent_id: str
    ) -> None:
        now = self.owner.clock.time()
        new = placed(assignment, agent_id, now)
        if not await self._replace(workflow_id, new, revision):
            return
        await self._send(new)
        log.info("agent task %s -> %s (attempt %d)", workflow_id, agent_id, new.attempt)
        await self._reports.emit(
            self._reports.transition(
                workflow_id,
                "running",
                now,
                attempt=new.attempt,
                steps=[new.capability],
                reason=f"agent {agent_id}",
            )
        )
        await self._reports.emit(
            StepTransition(
                workflow_id=workflow_id,
                step=new.capability,
                state="running",
                at=now,
                attempt=new.attempt,
            )
        )

    async def _send(self, assignment: AgentAssignment) -> None:
        assert assignment.agent_id is not None
        envelope = AgentEnvelope(
            message_id=assignment.task_id,
            sender=self.config.source,
            kind="task",
            body=assignment.params,
            reply_to=result_subject(assignment.workflow_id),
            workflow_id=assignment.workflow_id,
            capability=assignment.capability,
        )
        # The envelope keeps the task's key; the stream's de-duplication id names the
        # attempt, so a re-dispatch is not taken for a duplicate.
        await self.owner.bus.send(
            inbox_subject(assignment.agent_id),
            envelope,
            msg_id=f"{assignment.task_id}:{assignment.agent_id}:{assignment.attempt}",
        )

    async def _release(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        gone = assignment.agent_id or "?"
        now = self.owner.clock.time()
        if not await self._replace(
            workflow_id, released(assignment, now, self.config.deadline_s), revision
        ):
            return
        self.redispatched += 1
        log.warning("agent task %s: agent %s left; re-dispatching", workflow_id, gone)
        await self._reports.emit(
            self._reports.transition(
                workflow_id,
                "retrying",
                now,
                attempt=assignment.attempt,
                reason=f"agent {gone} left",
            )
        )
        latest = self.open.get(workflow_id)
        if latest is not None:
            await self._advance(workflow_id, *latest)

    async def _give_up(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        if not await self._replace(workflow_id, finished(assignment), revision):
            return
        log.warning("agent task %s: no agent with %s; failing", workflow_id, assignment.capability)
        await self._reports.end(
            assignment,
            "failed",
            self.owner.clock.time(),
            reason=NO_CAPABLE_AGENT,
            error_class="unavailable",
        )

    async def _replace(self, workflow_id: str, new: AgentAssignment, revision: int) -> bool:
        """Write ``new`` at ``revision``; on a conflict take the stored assignment instead."""
        try:
            new_revision = await self._bucket.update(workflow_id, new, revision)
        except Conflict:
            # Another replica (or a result) moved it first: follow what is stored.
            entry = await self._bucket.get_or_none(workflow_id)
            if entry is None or entry.value.state == "done":
                self.open.pop(workflow_id, None)
            else:
                self.open[workflow_id] = (entry.value, entry.revision)
            return False
        if new.state == "done":
            self.open.pop(workflow_id, None)
        else:
            self.open[workflow_id] = (new, new_revision)
        return True

    async def _resend_recent(self) -> None:
        # A crash between recording an assignment and sending it must not lose the
        # task; the inbox's de-duplication drops the copies that did arrive.
        now = self.owner.clock.time()
        for assignment, _ in list(self.open.values()):
            recent = now - (assignment.assigned_at or 0) < _RESEND_WITHIN_S
            if assignment.state == "assigned" and recent:
                with contextlib.suppress(RequestError):
                    await self._send(assignment)

    # -- inputs ----------------------------------------------------------------------

    async def _on_result(self, result: TaskResult, ctx: MessageContext) -> None:
        entry = await self._bucket.get_or_none(result.workflow_id)
        if entry is None or entry.value.state == "done":
            return  # already finished: the first result won
        state: Literal["succeeded", "failed"] = "succeeded" if result.ok else "failed"
        await self._reports.end(entry.value, state, self.owner.clock.time(), result=result)
        # Events first, then the record: a crash in between repeats only de-duplicated events.
        await self._bucket.mutate(
            result.workflow_id,
            lambda e: None if e is None or e.value.state == "done" else finished(e.value),
        )
        self.open.pop(result.workflow_id, None)

    async def _on_assignment(self, entry: Entry[AgentAssignment | None]) -> None:
        if entry.value is None or entry.value.state == "done":
            self.open.pop(entry.key, None)
            return
        current = self.open.get(entry.key)
        if current is None or current[1] < entry.revision:
            self.open[entry.key] = (entry.value, entry.revision)

    async def _caught_up(self) -> None:
        self._mirror_ready.set()

    async def _on_presence(self, event: PresenceEvent) -> None:
        if self.presence.apply(event, self.owner.clock.monotonic()):
            self._wake.set()

    # -- status events ---------------------------------------------------------------

    @property
    def _reports(self) -> AgentReports:
        if self._reporter is None:
            raise RuntimeError("agent dispatcher is not attached")
        return self._reporter
