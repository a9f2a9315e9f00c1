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
  as ``done`` (until the bucket's max age) so a repeated dispatch changes nothing.

Status events: ``queued`` while waiting, ``running`` (attempt *n*) once
placed, ``retrying`` when the holder departs, then ``succeeded``/``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, cast

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from actors.agent_registry.config import DispatchConfig
from actors.agent_registry.state import AgentIndex, parse_requirement
from actors.agent_registry.store import HeartbeatWatch, PresenceEvent
from actors.runtime.bus import Bus
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.dispatch import ConsumerRuntime
from actors.runtime.errors import RequestError
from actors.runtime.handlers import ConsumerSpec, MessageContext
from actors.topology import AGENT_ASSIGNMENTS, AGENT_INBOX, AGENT_RESULTS, AGENTS, STATUS_EVENTS
from protocols.agents import (
    FIND_SUBJECT,
    AgentAssignment,
    AgentEnvelope,
    AgentList,
    AgentView,
    FindAgents,
    TaskResult,
    inbox_subject,
    result_subject,
)
from protocols.status import (
    StatusEvent,
    StepProgress,
    StepTransition,
    WorkflowTransition,
    event_subject,
)
from protocols.tasks import TaskSubmitted

__all__ = ["NO_CAPABLE_AGENT", "AgentDispatcher", "DispatchConfig", "parse_requirement"]

log = logging.getLogger(__name__)

NO_CAPABLE_AGENT = "no_capable_agent"
"""Reason of a workflow that found no capable agent before its deadline."""

_FORGET_DEPARTED_S = 300.0
"""Seconds a departed agent stays excluded from candidates unless it heartbeats again."""
_codec = msgspec.msgpack.Decoder(AgentAssignment)
_encode = msgspec.msgpack.Encoder().encode


class AgentDispatcher:
    """Routes capability tasks to agents and follows them to completion.

    Call :meth:`start` before and :meth:`stop` after use (or ``async with``).

    Args:
        bus: connected bus.
        clock: time source for deadlines and polling.
        config: settings (from ``TROUPE_AGENT_*`` variables by default).
    """

    def __init__(
        self, bus: Bus, clock: Clock = system_clock, *, config: DispatchConfig | None = None
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.config = config or DispatchConfig.from_env()
        self.index = AgentIndex()
        self.open: dict[str, tuple[AgentAssignment, int]] = {}
        """Open assignments by workflow id, with their bucket revision."""
        self.redispatched = 0
        # Agents seen leaving (monotonic time), until they come back or are long gone.
        self._departed: dict[str, float] = {}
        self._kv: KeyValue | None = None
        self._watch: HeartbeatWatch | None = None
        self._results: ConsumerRuntime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._mirror_ready = asyncio.Event()

    async def __aenter__(self) -> AgentDispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the buckets and streams, follow agents and open tasks, consume results."""
        for stream in (AGENT_INBOX, AGENT_RESULTS, STATUS_EVENTS):
            await self.bus.ensure_stream(stream)
        await self.bus.key_value(AGENTS)
        self._kv = await self.bus.key_value(AGENT_ASSIGNMENTS)
        self._tasks.append(asyncio.create_task(self._mirror(), name="agent-tasks-mirror"))
        async with asyncio.timeout(10.0):
            await self._mirror_ready.wait()
        self._watch = HeartbeatWatch(self.bus.js, self._on_presence)
        await self._watch.start()
        await self._resend_recent()
        self._results = ConsumerRuntime(
            self.bus.js,
            ConsumerSpec(
                stream=AGENT_RESULTS, durable="task-manager-agent-results", concurrency=16
            ),
            self._on_result,
            TaskResult,
            actor=self.config.source,
            on_failure=_on_failure,
        )
        await self._results.start()
        self._tasks.append(asyncio.create_task(self._loop(), name="agent-dispatch"))

    async def stop(self) -> None:
        """Stop consuming results and following agents (open tasks stay in the bucket)."""
        if self._results is not None:
            await self._results.stop(5.0)
            self._results = None
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None

    # -- entry point -----------------------------------------------------------------

    async def dispatch(self, task: TaskSubmitted, workflow_id: str) -> None:
        """Record ``task`` as an open agent task and try to place it now.

        Idempotent: dispatching the same workflow again (a redelivery) changes nothing.
        A malformed ``requires`` fails the workflow at once.
        """
        assert task.requires is not None
        now = self.clock.time()
        try:
            capability, min_version = parse_requirement(task.requires)
        except ValueError as exc:
            await self._emit(
                WorkflowTransition(
                    workflow_id=workflow_id,
                    state="failed",
                    at=now,
                    source=self.config.source,
                    reason=str(exc),
                    error_class="permanent",
                )
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
            revision = await self._bucket.create(workflow_id, _encode(assignment))
        except nats.js.errors.KeyWrongLastSequenceError:
            log.info("agent task %s already open", workflow_id)
            return
        self.open[workflow_id] = (assignment, revision)
        await self._emit(
            WorkflowTransition(
                workflow_id=workflow_id,
                state="queued",
                at=now,
                source=self.config.source,
                steps=[capability],
                reason=f"waiting for an agent with {capability}>={min_version}",
            )
        )
        await self._advance(workflow_id, assignment, revision)

    # -- the loop ------------------------------------------------------------------

    @property
    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("agent dispatcher is not started")
        return self._kv

    async def _loop(self) -> None:
        while True:
            sleeper = asyncio.ensure_future(self.clock.sleep(self.config.poll_interval_s))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._wake.clear()
            now = self.clock.monotonic()
            for agent_id in self.index.expired(now):
                self.index.remove(agent_id)
                self._departed[agent_id] = now
            for agent_id, at in list(self._departed.items()):
                if now - at > _FORGET_DEPARTED_S:
                    del self._departed[agent_id]
            for workflow_id, (assignment, revision) in list(self.open.items()):
                try:
                    await self._advance(workflow_id, assignment, revision)
                except (RequestError, nats.errors.Error, OSError) as exc:
                    log.warning("agent task %s: %s", workflow_id, exc)

    async def _advance(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        if assignment.state == "assigned":
            if self._holder_gone(assignment):
                await self._release(workflow_id, assignment, revision)
            return
        candidates = await self._find(assignment)
        now = self.clock.time()
        if candidates:
            await self._assign(workflow_id, assignment, revision, candidates[0])
        elif assignment.deadline is not None and now >= assignment.deadline:
            await self._give_up(workflow_id, assignment, revision)

    def _holder_gone(self, assignment: AgentAssignment) -> bool:
        agent_id = assignment.agent_id
        if agent_id is None or agent_id in self._departed:
            return True
        if agent_id in self.index:
            return False
        since = self.clock.time() - (assignment.assigned_at or 0.0)
        return since > self.config.departure_grace_s

    async def _find(self, assignment: AgentAssignment) -> list[str]:
        query = FindAgents(
            capability=assignment.capability,
            min_version=assignment.min_version,
            labels=assignment.labels,
            limit=self.config.find_limit,
        )
        views: list[AgentView]
        try:
            views = (await self.bus.request(FIND_SUBJECT, query, AgentList, timeout=2.0)).agents
        except RequestError:
            # No registry: the dispatcher's own view of the bucket is as good.
            views = self.index.find(query, self.clock.monotonic())
        held: dict[str, int] = {}
        for open_assignment, _ in self.open.values():
            if open_assignment.agent_id is not None:
                held[open_assignment.agent_id] = held.get(open_assignment.agent_id, 0) + 1
        usable = [
            v
            for v in views
            if v.info.agent_id not in self._departed
            and (v.info.agent_id not in assignment.departed or v.info.agent_id in self.index)
        ]
        # Loads in heartbeats lag behind; count what this dispatcher handed out since.
        usable.sort(key=lambda v: (v.info.load + held.get(v.info.agent_id, 0)) / v.info.capacity)
        return [v.info.agent_id for v in usable]

    async def _assign(
        self, workflow_id: str, assignment: AgentAssignment, revision: int, agent_id: str
    ) -> None:
        now = self.clock.time()
        placed = msgspec.structs.replace(
            assignment,
            state="assigned",
            agent_id=agent_id,
            attempt=assignment.attempt + 1,
            deadline=None,
            assigned_at=now,
        )
        if not await self._replace(workflow_id, placed, revision):
            return
        await self._send(placed)
        log.info("agent task %s -> %s (attempt %d)", workflow_id, agent_id, placed.attempt)
        await self._emit(
            WorkflowTransition(
                workflow_id=workflow_id,
                state="running",
                at=now,
                source=self.config.source,
                attempt=placed.attempt,
                steps=[placed.capability],
                reason=f"agent {agent_id}",
            )
        )
        await self._emit(
            StepTransition(
                workflow_id=workflow_id,
                step=placed.capability,
                state="running",
                at=now,
                attempt=placed.attempt,
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
        await self.bus.send(
            inbox_subject(assignment.agent_id),
            envelope,
            msg_id=f"{assignment.task_id}:{assignment.agent_id}:{assignment.attempt}",
        )

    async def _release(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        gone = assignment.agent_id or "?"
        now = self.clock.time()
        waiting = msgspec.structs.replace(
            assignment,
            state="waiting",
            agent_id=None,
            assigned_at=None,
            deadline=now + self.config.deadline_s,
            departed=[*assignment.departed, gone][-16:],
        )
        if not await self._replace(workflow_id, waiting, revision):
            return
        self.redispatched += 1
        log.warning("agent task %s: agent %s left; re-dispatching", workflow_id, gone)
        await self._emit(
            WorkflowTransition(
                workflow_id=workflow_id,
                state="retrying",
                at=now,
                source=self.config.source,
                attempt=assignment.attempt,
                reason=f"agent {gone} left",
            )
        )
        latest = self.open.get(workflow_id)
        if latest is not None:
            await self._advance(workflow_id, *latest)

    async def _give_up(self, workflow_id: str, assignment: AgentAssignment, revision: int) -> None:
        done = msgspec.structs.replace(assignment, state="done", deadline=None)
        if not await self._replace(workflow_id, done, revision):
            return
        log.warning("agent task %s: no agent with %s; failing", workflow_id, assignment.capability)
        await self._emit(
            WorkflowTransition(
                workflow_id=workflow_id,
                state="failed",
                at=self.clock.time(),
                source=self.config.source,
                attempt=max(assignment.attempt, 1),
                reason=NO_CAPABLE_AGENT,
                error_class="unavailable",
            )
        )

    async def _replace(self, workflow_id: str, new: AgentAssignment, revision: int) -> bool:
        try:
            new_revision = await self._bucket.update(workflow_id, _encode(new), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # another replica (or a result) moved it first
        if new.state == "done":
            self.open.pop(workflow_id, None)
        else:
            self.open[workflow_id] = (new, new_revision)
        return True

    async def _resend_recent(self) -> None:
        # A crash between recording an assignment and sending it must not lose the
        # task; the inbox's de-duplication drops the copies that did arrive.
        now = self.clock.time()
        for assignment, _ in list(self.open.values()):
            if assignment.state == "assigned" and now - (assignment.assigned_at or 0) < 60.0:
                with contextlib.suppress(RequestError):
                    await self._send(assignment)

    # -- inputs ----------------------------------------------------------------------

    async def _on_result(self, result: TaskResult, ctx: MessageContext) -> None:
        try:
            entry = await self._bucket.get(result.workflow_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return  # already finished: the first result won
        assert entry.value is not None
        assert entry.revision is not None
        assignment = _codec.decode(entry.value)
        if assignment.state == "done":
            return  # already finished: the first result won
        attempt = max(assignment.attempt, 1)
        now = self.clock.time()
        state: Literal["succeeded", "failed"] = "succeeded" if result.ok else "failed"
        if result.output:
            await self._emit(
                StepProgress(
                    workflow_id=result.workflow_id,
                    step=assignment.capability,
                    at=now,
                    attempt=attempt,
                    message={"agent": result.agent_id, "output": result.output},
                )
            )
        await self._emit(
            StepTransition(
                workflow_id=result.workflow_id,
                step=assignment.capability,
                state=state,
                at=now,
                attempt=attempt,
                reason=result.error,
                error_class=result.error_class,
            )
        )
        await self._emit(
            WorkflowTransition(
                workflow_id=result.workflow_id,
                state=state,
                at=now,
                source=self.config.source,
                attempt=attempt,
                reason=result.error,
                error_class=result.error_class,
            )
        )
        revision = entry.revision
        # Events first, then the record: a crash in between repeats only de-duplicated events.
        while not await self._replace(
            result.workflow_id, msgspec.structs.replace(assignment, state="done"), revision
        ):
            entry = await self._bucket.get(result.workflow_id)
            assert entry.value is not None
            assert entry.revision is not None
            assignment, revision = _codec.decode(entry.value), entry.revision
            if assignment.state == "done":
                break

    async def _on_presence(self, event: PresenceEvent) -> None:
        now = self.clock.monotonic()
        if event.kind == "put":
            assert event.info is not None
            self.index.heartbeat(event.info, now)
            self._departed.pop(event.agent_id, None)
            return
        self.index.remove(event.agent_id)
        if not event.snapshot:
            self._departed[event.agent_id] = now
            self._wake.set()

    async def _mirror(self) -> None:
        watcher = await self._bucket.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    self._mirror_ready.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or entry.value is None:
                    self.open.pop(entry.key, None)
                    continue
                assignment = _codec.decode(entry.value)
                current = self.open.get(entry.key)
                if assignment.state == "done":
                    self.open.pop(entry.key, None)
                elif current is None or current[1] < entry.revision:
                    self.open[entry.key] = (assignment, entry.revision)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await cast("Any", watcher).stop()

    async def _emit(self, event: StatusEvent) -> None:
        kind = type(event).__name__
        step = getattr(event, "step", "")
        state = getattr(event, "state", "")
        await self.bus.send(
            event_subject(event.workflow_id),
            event,
            msg_id=f"{event.workflow_id}.agent.{kind}.{step}.{state}.{event.attempt}",
        )


async def _on_failure(exc: BaseException) -> None:
    log.error("agent results: handler failed: %s", exc)
