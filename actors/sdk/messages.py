"""What an agent's handlers receive: a :class:`Task` or an incoming :class:`Incoming` message.

Both wrap the :class:`~protocols.agents.AgentEnvelope` that arrived in the
agent's inbox. A handler returns a mapping (the task's output, or the answer
to a request) or ``None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocols.agents import AgentEnvelope

__all__ = ["Incoming", "MessageHandler", "Task", "TaskHandler"]


@dataclass(frozen=True, slots=True)
class Task:
    """A unit of work routed to this agent for one of its capabilities.

    Attributes:
        message_id: the task's idempotency key; the same on every re-dispatch,
            so a handler can skip work it already did.
        workflow_id: workflow the task belongs to, if any.
        capability: capability it was routed by.
        params: task parameters.
        redelivered: whether this agent saw the message before (e.g. it crashed).
        envelope: the raw envelope.
    """

    message_id: str
    workflow_id: str | None
    capability: str | None
    params: dict[str, Any]
    redelivered: bool = False
    envelope: AgentEnvelope | None = field(default=None, repr=False)

    @classmethod
    def of(cls, envelope: AgentEnvelope, *, redelivered: bool = False) -> Task:
        """Build the task carried by ``envelope``."""
        return cls(
            message_id=envelope.message_id,
            workflow_id=envelope.workflow_id,
            capability=envelope.capability,
            params=dict(envelope.body),
            redelivered=redelivered,
            envelope=envelope,
        )


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message from another agent (``send``, ``request`` or ``broadcast``).

    Attributes:
        message_id: unique id of the message.
        sender: id of the sending agent (or actor name).
        kind: application-defined kind, e.g. ``chat``.
        body: payload.
        expects_reply: whether the sender waits for an answer (``request``).
        envelope: the raw envelope.
    """

    message_id: str
    sender: str
    kind: str
    body: dict[str, Any]
    expects_reply: bool
    envelope: AgentEnvelope = field(repr=False)

    @classmethod
    def of(cls, envelope: AgentEnvelope) -> Incoming:
        """Build the message carried by ``envelope``."""
        return cls(
            message_id=envelope.message_id,
            sender=envelope.sender,
            kind=envelope.kind,
            body=dict(envelope.body),
            expects_reply=envelope.reply_to is not None,
            envelope=envelope,
        )


TaskHandler = Callable[[Task], Awaitable[Mapping[str, Any] | None]]
"""``async def handler(task) -> output``."""

MessageHandler = Callable[[Incoming], Awaitable[Mapping[str, Any] | None]]
"""``async def handler(message) -> answer`` (the answer matters for requests)."""
