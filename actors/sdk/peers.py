"""Talking to other agents: send, request, find and broadcast.

:class:`Peers` gives :class:`~actors.sdk.agent.Agent` its messaging calls. A
message goes to the other agent's durable inbox (it waits there while that
agent is away); a request waits for the answer on a private inbox, for at most
its time-out on the agent's clock; ``find`` asks the agent registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import nats.errors

from actors.agent_registry.client import find_agents
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, wait_tasks
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import RequestError, Unavailable
from protocols.agents import AgentEnvelope, AgentView, FindAgents, inbox_subject

__all__ = ["Peers"]

_ENVELOPE: Codec[AgentEnvelope] = Codec.of(AgentEnvelope)


class Peers:
    """Messaging between agents, for a class with ``bus``, ``agent_id`` and ``clock``."""

    agent_id: str
    clock: Clock

    @property
    def bus(self) -> Bus:
        """The connected bus (provided by the actor)."""
        raise NotImplementedError

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
            Unavailable: no answer within ``timeout`` seconds (of the agent's clock).
            RequestError: the other agent's handler failed.
        """
        bus = self.bus
        reply_to = bus.nc.new_inbox()
        reply: asyncio.Future[AgentEnvelope] = asyncio.get_running_loop().create_future()

        async def on_reply(msg: Any) -> None:
            if not reply.done():
                try:
                    reply.set_result(_ENVELOPE.decode(msg.data, encoding_of(msg.headers)))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    reply.set_exception(exc)

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
            if await wait_tasks({reply}, timeout, self.clock):
                reply.cancel()
                raise Unavailable(
                    f"agent {agent_id} did not answer within {timeout}s", code="timeout"
                )
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        answered = reply.result()
        if answered.kind == "error":
            raise RequestError(str(answered.body.get("error", "request failed")), code="rejected")
        return dict(answered.body)

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
        return (await find_agents(self.bus, query)).agents

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
