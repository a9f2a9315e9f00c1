"""The agent SDK: a process (or part of one) that joins the troupe and takes work.

An :class:`Agent` is an :class:`~actors.runtime.actor.Actor`: it has the
actor's lifecycle, answers ``$SRV.PING|INFO|STATS`` (service ``agent``, its id
in the metadata) and is covered by the shared behaviour suites. It says what
it can do (``capabilities``), heartbeats its :class:`~protocols.agents.AgentInfo`
into the agents bucket every interval (a background task on the injected
clock) with a per-key TTL of a few intervals, and takes messages from a
durable consumer on its inbox subject, so a message sent while it is briefly
away waits for it. Work arrives as ``task`` envelopes (handled by
:meth:`Agent.task` handlers or an overridden :meth:`Agent.handle_task`); other
kinds go to :meth:`Agent.on` handlers. On shutdown it finishes in-flight work,
then deletes its key: a clean deregistration::

    agent = Agent("stats-1", capabilities=["text.stats@1.2"])

    @agent.task("text.stats")
    async def stats(task: Task) -> dict[str, object]:
        return {"words": len(task.params["text"].split())}

    await agent.serve()  # TROUPE_NATS_URL/USER/PASSWORD/TOKEN/CREDS, or pass a ConnectionConfig

A command-line agent takes ``--nats-url/--user/--password/--token/--creds`` with
:func:`~actors.runtime.config.add_connection_arguments` and builds its settings
with :meth:`ConnectionConfig.from_args <actors.runtime.config.ConnectionConfig.from_args>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import nats.errors

from actors.agent_registry.client import capability_list
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, system_clock
from actors.runtime.codec import Codec
from actors.runtime.config import ConnectionConfig
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.errors import ConfigError, DeadLetter, Rejected
from actors.runtime.handlers import ConsumerSpec, MessageContext
from actors.runtime.kv import TypedBucket
from actors.sdk.messages import Incoming, MessageHandler, Task, TaskHandler
from actors.sdk.peers import Peers
from actors.sdk.replies import answer, is_durable_reply, task_result
from actors.topology import AGENT_INBOX, AGENT_RESULTS, AGENTS
from protocols.agents import (
    AgentEnvelope,
    AgentInfo,
    Capability,
    heartbeat_key,
    inbox_durable,
    inbox_subject,
)
from protocols.base import Message

__all__ = ["Agent"]

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Callable[..., Any])

_ENVELOPE: Codec[AgentEnvelope] = Codec.of(AgentEnvelope)


class Agent(Actor, Peers):
    """An agent of the troupe.

    Subclasses may set :attr:`capabilities` and override :meth:`handle_task` /
    :meth:`handle_message`; or register handlers with :meth:`task` and :meth:`on`.

    Args:
        agent_id: unique, stable id (letters, digits, ``_``, ``-``); keep it across
            restarts so messages that waited in the inbox reach the agent.
            Defaults to ``$TROUPE_AGENT_ID`` (set by ``troupe creds agent NAME``
            for an agent issued with ``troupe agents add``), else ``<name>-<random>``.
        capabilities: ``"name"`` or ``"name@version"`` strings, or Capabilities.
        name: human-readable name, in the heartbeat (default: the class name).
        capacity: tasks handled at once.
        version: agent software version, in the heartbeat.
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
        clock: time source (heartbeats, timestamps, retention, request time-outs).

    Raises:
        ConfigError: an argument is out of range.
    """

    name: ClassVar[str] = "agent"
    description: ClassVar[str] = "A troupe agent: capabilities, heartbeats, a durable inbox"
    streams = (AGENT_INBOX, AGENT_RESULTS)
    buckets = (AGENTS,)
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
        super().__init__(clock=clock)
        self.agent_name = name or type(self).__name__.lower()
        """Human-readable name (``name`` in the heartbeat)."""
        # An agent issued with 'troupe agents add NAME' may heartbeat as NAME only.
        issued = os.environ.get("TROUPE_AGENT_ID")
        self.agent_id = agent_id or issued or f"{self.agent_name}-{uuid.uuid4().hex[:8]}"
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
        self.capacity = capacity
        self.agent_version = version
        """Agent software version (``version`` in the heartbeat)."""
        self.labels = dict(labels or {})
        self.interval = interval
        self.ttl = max(1, math.ceil(interval * ttl_multiple))
        self.inbox_retention = inbox_retention
        self.inbox_poll = inbox_poll
        self.inbox = inbox_subject(self.agent_id)
        self.inbox_spec = ConsumerSpec(
            stream=AGENT_INBOX,
            durable=inbox_durable(self.agent_id),
            filter_subject=self.inbox,
            concurrency=capacity,
            ack_wait=ack_wait,
            max_deliver=5,
        )
        """The inbox's durable consumer."""
        self.ack_wait = self.inbox_spec.ack_wait
        self.handled = 0
        self._task_handlers: dict[str | None, TaskHandler] = {}
        self._message_handlers: dict[str, MessageHandler] = {}
        self._load = 0
        self._started_at = 0.0
        self._heartbeats: TypedBucket[AgentInfo] | None = None
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
    def load(self) -> int:
        """Messages being handled now."""
        return self._load

    def info(self) -> AgentInfo:
        """The heartbeat this agent writes now."""
        return AgentInfo(
            agent_id=self.agent_id,
            name=self.agent_name,
            capabilities=self.capability_list,
            inbox=self.inbox,
            started_at=self._started_at,
            heartbeat_at=self.clock.time(),
            load=min(self._load, self.capacity),
            capacity=self.capacity,
            version=self.agent_version,
            labels=self.labels,
            interval_s=self.interval,
            ttl_s=float(self.ttl),
        )

    def service_metadata(self) -> dict[str, str]:
        """The agent's id, name and version in ``$SRV.INFO``."""
        return {
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "agent_version": self.agent_version,
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        """Join: take messages from the inbox, write the first heartbeat, keep beating.

        A message that arrives before the inbox consumer starts waits in the
        inbox stream.
        """
        self._started_at = self.clock.time()
        self._heartbeats = await TypedBucket.bind(self.bus, AGENTS, AgentInfo)
        await self.add_consumer(self.inbox_spec, self._on_envelope, message_type=AgentEnvelope)
        await self.heartbeat()
        self._beat = self.spawn(self._beat_loop(), name=f"heartbeat-{self.agent_id}")

    async def start(self, bus: Bus) -> None:
        """Start as an actor (see :meth:`Actor.start`); the inbox polls every ``inbox_poll``."""
        await super().start(bus)
        for runtime in self.handlers:
            if isinstance(runtime, ConsumerRuntime) and runtime.spec is self.inbox_spec:
                runtime.fetch_timeout = self.inbox_poll
        log.info(
            "agent %s joined with %s",
            self.agent_id,
            ", ".join(f"{c.name}@{c.version}" for c in self.capability_list),
        )

    async def on_stop(self) -> None:
        """Leave cleanly: in-flight work is done and the heartbeats stopped; delete the key."""
        bucket, self._heartbeats = self._heartbeats, None
        self._beat = None
        if bucket is None:
            return
        try:
            await bucket.delete(heartbeat_key(self.agent_id))
        except (nats.errors.Error, OSError) as exc:
            log.warning(
                "agent %s: deregistration failed (%s); its key will expire", self.agent_id, exc
            )
        log.info("agent %s left", self.agent_id)

    async def stop(self, grace: float | None = None) -> None:
        """Leave cleanly: finish in-flight work within ``grace`` seconds (default
        :attr:`grace`), then delete the heartbeat (see :meth:`Actor.stop`)."""
        saved = self.grace
        if grace is not None:
            self.grace = grace
        try:
            await super().stop()
        finally:
            self.grace = saved

    async def serve(
        self,
        config: ConnectionConfig | None = None,
        *,
        stop: asyncio.Event | None = None,
        handle_signals: bool = True,
    ) -> None:
        """Connect and run until ``stop`` is set or SIGTERM/SIGINT arrives.

        Args:
            config: where and how to connect; by default the ``TROUPE_NATS_*`` variables
                (:meth:`ConnectionConfig.from_env`).
            stop: set it to leave.
            handle_signals: stop on SIGTERM/SIGINT.
        """
        await super().serve(
            config or ConnectionConfig.from_env(), stop=stop, handle_signals=handle_signals
        )

    @staticmethod
    async def serve_many(
        agents: Iterable[Agent],
        config: ConnectionConfig | None = None,
        *,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run several agents on one connection until ``stop`` or SIGTERM/SIGINT.

        ``config`` defaults to the ``TROUPE_NATS_*`` variables, as in :meth:`serve`.
        """
        group = list(agents)
        config = config or ConnectionConfig.from_env()
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
        """Write the heartbeat now (with the key's TTL).

        Raises:
            RuntimeError: the agent is not running.
        """
        if self._heartbeats is None:
            raise RuntimeError(f"agent {self.agent_id} is not running")
        await self._heartbeats.put(heartbeat_key(self.agent_id), self.info(), ttl=self.ttl)

    async def _beat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.heartbeat()
            except (nats.errors.Error, OSError) as exc:
                log.warning("agent %s: heartbeat failed: %s", self.agent_id, exc)

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
        outcome: Mapping[str, Any] | BaseException | None
        try:
            outcome = await self.handle_task(Task.of(envelope, redelivered=ctx.redelivered))
        except Exception as exc:  # noqa: BLE001 - a failed task is reported, not retried here
            log.warning("agent %s: task %s failed: %s", self.agent_id, envelope.message_id, exc)
            outcome = exc
        if envelope.reply_to:
            result = task_result(envelope, self.agent_id, self.clock.time(), outcome)
            await self._answer(envelope.reply_to, result, f"{envelope.message_id}:result")

    async def _run_message(self, envelope: AgentEnvelope) -> None:
        outcome: Mapping[str, Any] | BaseException | None
        try:
            outcome = await self.handle_message(Incoming.of(envelope))
        except Exception as exc:  # noqa: BLE001 - the requester gets the failure
            log.warning("agent %s: %s message failed: %s", self.agent_id, envelope.kind, exc)
            outcome = exc
        if envelope.reply_to:
            await self._answer(envelope.reply_to, answer(self.agent_id, outcome), None)

    async def _answer(self, subject: str, message: Message, msg_id: str | None) -> None:
        if is_durable_reply(subject):
            # Task results are durable: the dispatcher may be restarting right now.
            await self.bus.send(subject, message, msg_id=msg_id)
        else:
            await self.bus.publish(subject, message)
