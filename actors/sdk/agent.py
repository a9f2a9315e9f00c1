"""The agent SDK: a process (or part of one) that joins the troupe and takes work.

An :class:`Agent` says what it can do (``capabilities``), heartbeats its
:class:`~protocols.agents.AgentInfo` into the agents bucket every interval
with a per-key TTL of a few intervals, and takes messages from a durable
consumer on its inbox subject, so a message sent while it is briefly away
waits for it. Work arrives as ``task`` envelopes (handled by :meth:`Agent.task`
handlers or an overridden :meth:`Agent.handle_task`); other kinds go to
:meth:`Agent.on` handlers. On shutdown it finishes in-flight work, then
deletes its key: a clean deregistration::

    agent = Agent("stats-1", capabilities=["text.stats@1.2"])

    @agent.task("text.stats")
    async def stats(task: Task) -> dict[str, object]:
        return {"words": len(task.params["text"].split())}

    await agent.serve(ConnectionConfig(url="nats://127.0.0.1:4222"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import nats.errors
from nats.js.kv import KeyValue

from actors.agent_registry.janitor import inbox_durable
from actors.agent_registry.state import capability_list
from actors.agent_registry.store import heartbeat_subject
from actors.runtime.actor import DEAD_LETTERS
from actors.runtime.bus import Bus
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.codec import Codec, encode, encoding_of
from actors.runtime.config import ConnectionConfig
from actors.runtime.dispatch import ConsumerRuntime
from actors.runtime.errors import ConfigError, DeadLetter, Rejected, RequestError, Unavailable
from actors.runtime.handlers import ConsumerSpec, MessageContext
from actors.sdk.messages import Incoming, MessageHandler, Task, TaskHandler
from actors.topology import AGENT_INBOX, AGENT_RESULTS, AGENTS
from protocols.agents import (
    FIND_SUBJECT,
    RESULTS_SUBJECTS,
    AgentEnvelope,
    AgentInfo,
    AgentList,
    AgentView,
    Capability,
    FindAgents,
    TaskResult,
    inbox_subject,
)
from protocols.base import Message

__all__ = ["Agent"]

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Callable[..., Any])

_RESULTS_PREFIX = RESULTS_SUBJECTS.rstrip(">")


class Agent:
    """An agent of the troupe.

    Subclasses may set :attr:`capabilities` and override :meth:`handle_task` /
    :meth:`handle_message`; or register handlers with :meth:`task` and :meth:`on`.

    Args:
        agent_id: unique, stable id (letters, digits, ``_``, ``-``); keep it across
            restarts so messages that waited in the inbox reach the agent.
            Defaults to ``<name>-<random>``.
        capabilities: ``"name"`` or ``"name@version"`` strings, or Capabilities.
        name: human-readable name.
        capacity: tasks handled at once.
        version: agent software version.
        labels: free-form labels matched by ``find``.
        interval: seconds between heartbeats.
        ttl_multiple: the heartbeat key lives this many intervals (at least 1 s,
            rounded up to whole seconds, as JetStream per-key TTLs are).
        inbox_retention: seconds a message may wait in the inbox; an older one is
            dead-lettered with the reason instead of handled.
        ack_wait: seconds before an unacknowledged message is redelivered.
        inbox_poll: seconds one inbox pull waits server-side (a message arriving meanwhile
            is delivered at once); longer means fewer idle requests when one process
            hosts many agents, and a slower shutdown.
        clock: time source.

    Raises:
        ConfigError: an argument is out of range.
    """

    capabilities: ClassVar[tuple[str | Capability, ...]] = ()
    """Default capabilities of a subclass."""

    def __init__(
        self,
        agent_id: str | None = None,
        *,
        capabilities: Iterable[str | Capability] | None = None,
        name: str | None = None,
        capacity: int = 1,
        version: str = "0",
        labels: Mapping[str, str] | None = None,
        interval: float = 1.0,
        ttl_multiple: float = 3.0,
        inbox_retention: float = 3600.0,
        ack_wait: float = 30.0,
        inbox_poll: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        self.name = name or type(self).__name__.lower()
        self.agent_id = agent_id or f"{self.name}-{uuid.uuid4().hex[:8]}"
        if not self.agent_id.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("agent_id", f"{self.agent_id!r}: letters, digits, '-', '_' only")
        try:
            self.capability_list = capability_list(
                type(self).capabilities if capabilities is None else capabilities
            )
        except ValueError as exc:
            raise ConfigError("capabilities", str(exc)) from None
        if capacity < 1:
            raise ConfigError("capacity", "must be at least 1")
        if interval <= 0:
            raise ConfigError("interval", "must be positive")
        if ttl_multiple <= 1:
            raise ConfigError("ttl_multiple", "must be above 1 (a key must outlive an interval)")
        if inbox_retention <= 0:
            raise ConfigError("inbox_retention", "must be positive")
        if inbox_poll <= 0:
            raise ConfigError("inbox_poll", "must be positive")
        self.inbox_poll = inbox_poll
        self.capacity = capacity
        self.version = version
        self.labels = dict(labels or {})
        self.interval = interval
        self.ttl = max(1, math.ceil(interval * ttl_multiple))
        self.inbox_retention = inbox_retention
        self.ack_wait = ack_wait
        self.clock = clock
        self.inbox = inbox_subject(self.agent_id)
        self.handled = 0
        self._task_handlers: dict[str | None, TaskHandler] = {}
        self._message_handlers: dict[str, MessageHandler] = {}
        self._load = 0
        self._started_at = 0.0
        self._bus: Bus | None = None
        self._kv: KeyValue | None = None
        self._consumer: ConsumerRuntime | None = None
        self._beat: asyncio.Task[None] | None = None

    # -- handlers ----------------------------------------------------------------------

    def task(self, capability: str | None = None) -> Callable[[H], H]:
        """Register ``async def handler(task: Task) -> dict | None`` for ``capability``
        (every capability when ``None``)."""

        def register(handler: H) -> H:
            self._task_handlers[capability] = handler
            return handler

        return register

    def on(self, kind: str) -> Callable[[H], H]:
        """Register ``async def handler(message: Incoming) -> dict | None`` for ``kind``."""

        def register(handler: H) -> H:
            self._message_handlers[kind] = handler
            return handler

        return register

    async def handle_task(self, task: Task) -> Mapping[str, Any] | None:
        """Run the handler registered for the task's capability; override to handle tasks.

        Raises:
            Rejected: no handler takes this capability.
        """
        handler = self._task_handlers.get(task.capability) or self._task_handlers.get(None)
        if handler is None:
            raise Rejected(f"agent {self.agent_id} has no handler for {task.capability!r}")
        return await handler(task)

    async def handle_message(self, message: Incoming) -> Mapping[str, Any] | None:
        """Run the handler registered for the message's kind; override to handle messages.

        Raises:
            Rejected: no handler takes this kind.
        """
        handler = self._message_handlers.get(message.kind)
        if handler is None:
            raise Rejected(f"agent {self.agent_id} has no handler for kind {message.kind!r}")
        return await handler(message)

    # -- state -------------------------------------------------------------------------

    @property
    def bus(self) -> Bus:
        """The bus while running.

        Raises:
            RuntimeError: the agent is not running.
        """
        if self._bus is None:
            raise RuntimeError(f"agent {self.agent_id} is not running")
        return self._bus

    @property
    def load(self) -> int:
        """Messages being handled now."""
        return self._load

    def info(self) -> AgentInfo:
        """The heartbeat this agent writes now."""
        return AgentInfo(
            agent_id=self.agent_id,
            name=self.name,
            capabilities=self.capability_list,
            inbox=self.inbox,
            started_at=self._started_at,
            heartbeat_at=self.clock.time(),
            load=min(self._load, self.capacity),
            capacity=self.capacity,
            version=self.version,
            labels=self.labels,
            interval_s=self.interval,
            ttl_s=float(self.ttl),
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, bus: Bus) -> None:
        """Join: take messages from the inbox, write the first heartbeat, keep beating."""
        self._bus = bus
        self._started_at = self.clock.time()
        for stream in (AGENT_INBOX, AGENT_RESULTS, DEAD_LETTERS):
            await bus.ensure_stream(stream)
        self._kv = await bus.key_value(AGENTS)
        self._consumer = ConsumerRuntime(
            bus.js,
            ConsumerSpec(
                stream=AGENT_INBOX,
                durable=inbox_durable(self.agent_id),
                filter_subject=self.inbox,
                concurrency=self.capacity,
                ack_wait=self.ack_wait,
                max_deliver=5,
            ),
            self._on_envelope,
            AgentEnvelope,
            actor=f"agent:{self.agent_id}",
            on_failure=self._on_failure,
        )
        self._consumer.fetch_timeout = self.inbox_poll
        await self._consumer.start()
        await self.heartbeat()
        self._beat = asyncio.create_task(self._beat_loop(), name=f"heartbeat-{self.agent_id}")
        log.info(
            "agent %s joined with %s",
            self.agent_id,
            ", ".join(f"{c.name}@{c.version}" for c in self.capability_list),
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Leave cleanly: finish in-flight work within ``grace``, then delete the heartbeat."""
        try:
            if self._consumer is not None:
                await self._consumer.stop(grace)
        finally:
            # Whatever happened to the inbox, the agent stops announcing itself.
            self._consumer = None
            await cancel_and_wait(self._beat)
            self._beat = None
        if self._kv is not None:
            try:
                await self._kv.delete(self.agent_id)
            except (nats.errors.Error, OSError) as exc:
                log.warning(
                    "agent %s: deregistration failed (%s); its key will expire", self.agent_id, exc
                )
            self._kv = None
        self._bus = None
        log.info("agent %s left", self.agent_id)

    @contextlib.asynccontextmanager
    async def running(self, bus: Bus) -> AsyncIterator[Agent]:
        """Run the agent on ``bus`` for the duration of an ``async with`` block."""
        await self.start(bus)
        try:
            yield self
        finally:
            await self.stop()

    async def serve(self, config: ConnectionConfig, *, stop: asyncio.Event | None = None) -> None:
        """Connect and run until ``stop`` is set or SIGTERM/SIGINT arrives."""
        await Agent.serve_many([self], config, stop=stop)

    @staticmethod
    async def serve_many(
        agents: Iterable[Agent], config: ConnectionConfig, *, stop: asyncio.Event | None = None
    ) -> None:
        """Run several agents on one connection until ``stop`` or SIGTERM/SIGINT."""
        group = list(agents)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            bus = await Bus.connect(config, name=f"troupe-agent-{group[0].agent_id}")
            async with bus, contextlib.AsyncExitStack() as stack:
                for agent in group:
                    await stack.enter_async_context(agent.running(bus))
                await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def heartbeat(self) -> None:
        """Write the heartbeat now (with the key's TTL)."""
        await self.bus.js.publish(
            heartbeat_subject(self.agent_id), encode(self.info()), msg_ttl=self.ttl
        )

    async def _beat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.heartbeat()
            except (nats.errors.Error, OSError) as exc:
                log.warning("agent %s: heartbeat failed: %s", self.agent_id, exc)

    # -- talking to other agents -------------------------------------------------------

    async def send(
        self,
        agent_id: str,
        body: Mapping[str, Any],
        *,
        kind: str = "message",
        message_id: str | None = None,
        workflow_id: str | None = None,
    ) -> str:
        """Put a message in ``agent_id``'s inbox (it waits there if the agent is away).

        Returns:
            The message id (also the de-duplication id: a re-send is dropped).
        """
        envelope = AgentEnvelope(
            message_id=message_id or uuid.uuid4().hex,
            sender=self.agent_id,
            kind=kind,
            body=dict(body),
            workflow_id=workflow_id,
        )
        await self.bus.send(inbox_subject(agent_id), envelope, msg_id=envelope.message_id)
        return envelope.message_id

    async def request(
        self,
        agent_id: str,
        body: Mapping[str, Any],
        *,
        kind: str = "request",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send a message to ``agent_id`` and wait for its handler's answer.

        Raises:
            Unavailable: no answer within ``timeout`` seconds.
            RequestError: the other agent's handler failed.
        """
        bus = self.bus
        reply_to = bus.nc.new_inbox()
        answer: asyncio.Future[AgentEnvelope] = asyncio.get_running_loop().create_future()

        async def on_reply(msg: Any) -> None:
            if not answer.done():
                try:
                    answer.set_result(
                        Codec.of(AgentEnvelope).decode(msg.data, encoding_of(msg.headers))
                    )
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    answer.set_exception(exc)

        sub = await bus.nc.subscribe(reply_to, cb=on_reply, max_msgs=1)
        try:
            envelope = AgentEnvelope(
                message_id=uuid.uuid4().hex,
                sender=self.agent_id,
                kind=kind,
                body=dict(body),
                reply_to=reply_to,
            )
            await bus.send(inbox_subject(agent_id), envelope, msg_id=envelope.message_id)
            try:
                reply = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                raise Unavailable(
                    f"agent {agent_id} did not answer within {timeout}s", code="timeout"
                ) from None
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if reply.kind == "error":
            raise RequestError(str(reply.body.get("error", "request failed")), code="rejected")
        return dict(reply.body)

    async def find(
        self,
        capability: str,
        *,
        min_version: str = "0",
        labels: Mapping[str, str] | None = None,
        limit: int = 10,
    ) -> list[AgentView]:
        """Ask the registry for live agents with ``capability``, least-loaded first.

        Raises:
            Unavailable: no registry answers.
        """
        query = FindAgents(
            capability=capability, min_version=min_version, labels=dict(labels or {}), limit=limit
        )
        found = await self.bus.request(FIND_SUBJECT, query, AgentList)
        return found.agents

    async def broadcast(
        self, capability: str, body: Mapping[str, Any], *, kind: str = "message"
    ) -> list[str]:
        """Send ``body`` to every live agent with ``capability`` (this one excluded).

        Returns:
            Ids of the agents the message was sent to.
        """
        views = await self.find(capability, limit=10_000)
        targets = [v.info.agent_id for v in views if v.info.agent_id != self.agent_id]
        for agent_id in targets:
            await self.send(agent_id, body, kind=kind)
        return targets

    # -- inbox -------------------------------------------------------------------------

    async def _on_envelope(self, envelope: AgentEnvelope, ctx: MessageContext) -> None:
        age = self.clock.time() - ctx.msg.metadata.timestamp.timestamp()
        if age > self.inbox_retention and not ctx.redelivered:
            raise DeadLetter(
                f"waited {age:.1f}s in the inbox of {self.agent_id}, beyond its retention "
                f"of {self.inbox_retention:g}s"
            )
        self._load += 1
        try:
            if envelope.kind == "task":
                await self._run_task(envelope, ctx)
            else:
                await self._run_message(envelope)
        finally:
            self._load -= 1
            self.handled += 1

    async def _run_task(self, envelope: AgentEnvelope, ctx: MessageContext) -> None:
        task = Task.of(envelope, redelivered=ctx.redelivered)
        try:
            output = await self.handle_task(task)
            result = TaskResult(
                workflow_id=envelope.workflow_id or envelope.message_id,
                message_id=envelope.message_id,
                agent_id=self.agent_id,
                ok=True,
                output=dict(output or {}),
                at=self.clock.time(),
            )
        except Exception as exc:  # noqa: BLE001 - a failed task is reported, not retried here
            log.warning("agent %s: task %s failed: %s", self.agent_id, envelope.message_id, exc)
            result = TaskResult(
                workflow_id=envelope.workflow_id or envelope.message_id,
                message_id=envelope.message_id,
                agent_id=self.agent_id,
                ok=False,
                error=_describe(exc),
                at=self.clock.time(),
                error_class="timeout" if isinstance(exc, TimeoutError) else "permanent",
            )
        if envelope.reply_to:
            await self._answer(envelope.reply_to, result, f"{envelope.message_id}:result")

    async def _run_message(self, envelope: AgentEnvelope) -> None:
        reply: AgentEnvelope | None = None
        try:
            answer = await self.handle_message(Incoming.of(envelope))
            reply = AgentEnvelope(
                message_id=uuid.uuid4().hex,
                sender=self.agent_id,
                kind="reply",
                body=dict(answer or {}),
            )
        except Exception as exc:  # noqa: BLE001 - the requester gets the failure
            log.warning("agent %s: %s message failed: %s", self.agent_id, envelope.kind, exc)
            reply = AgentEnvelope(
                message_id=uuid.uuid4().hex,
                sender=self.agent_id,
                kind="error",
                body={"error": _describe(exc)},
            )
        if envelope.reply_to:
            await self._answer(envelope.reply_to, reply, None)

    async def _answer(self, subject: str, message: Message, msg_id: str | None) -> None:
        if subject.startswith(_RESULTS_PREFIX):
            # Task results are durable: the dispatcher may be restarting right now.
            await self.bus.send(subject, message, msg_id=msg_id)
        else:
            await self.bus.publish(subject, message)

    async def _on_failure(self, exc: BaseException) -> None:
        log.error("agent %s: inbox handler failed: %s", self.agent_id, exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
