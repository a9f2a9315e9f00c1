"""What an agent sends back: the result of a task and the answer to a message.

Pure builders, no I/O: :func:`task_result` turns a task handler's output (or
failure) into the :class:`~protocols.agents.TaskResult` the dispatcher waits
for; :func:`answer` turns a message handler's output (or failure) into the
``reply`` (or ``error``) envelope a requester waits for.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from protocols.agents import RESULTS_SUBJECTS, AgentEnvelope, TaskResult

__all__ = ["answer", "describe", "is_durable_reply", "task_result"]

_RESULTS_PREFIX = RESULTS_SUBJECTS.rstrip(">")


def describe(exc: BaseException) -> str:
    """Return ``"Type: message"`` (or just ``Type``) for a failure put on the wire."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def task_result(
    envelope: AgentEnvelope,
    agent_id: str,
    at: float,
    outcome: Mapping[str, Any] | BaseException | None,
) -> TaskResult:
    """Return the result of the task carried by ``envelope``.

    Args:
        envelope: the task envelope.
        agent_id: the agent that ran it.
        at: Unix time of the result.
        outcome: the handler's output, or the exception it raised.
    """
    workflow_id = envelope.workflow_id or envelope.message_id
    if isinstance(outcome, BaseException):
        return TaskResult(
            workflow_id=workflow_id,
            message_id=envelope.message_id,
            agent_id=agent_id,
            ok=False,
            error=describe(outcome),
            at=at,
            error_class="timeout" if isinstance(outcome, TimeoutError) else "permanent",
        )
    return TaskResult(
        workflow_id=workflow_id,
        message_id=envelope.message_id,
        agent_id=agent_id,
        ok=True,
        output=dict(outcome or {}),
        at=at,
    )


def answer(agent_id: str, outcome: Mapping[str, Any] | BaseException | None) -> AgentEnvelope:
    """Return the ``reply`` envelope of a handled message, or its ``error`` envelope.

    Args:
        agent_id: the answering agent.
        outcome: the handler's answer, or the exception it raised.
    """
    if isinstance(outcome, BaseException):
        return AgentEnvelope(
            message_id=uuid.uuid4().hex,
            sender=agent_id,
            kind="error",
            body={"error": describe(outcome)},
        )
    return AgentEnvelope(
        message_id=uuid.uuid4().hex, sender=agent_id, kind="reply", body=dict(outcome or {})
    )


def is_durable_reply(subject: str) -> bool:
    """Whether a reply goes to the durable results stream (a task result for the dispatcher)."""
    return subject.startswith(_RESULTS_PREFIX)
