"""Wire errors: the typed reply every failed request gets, and error classes.

Hierarchy on the wire (no exceptions cross a process boundary)::

    ErrorReply(code, message, retryable)
      code: bad_request | not_found | conflict | rejected | unavailable
            | timeout | forbidden | internal

``ErrorClass`` is the classification the breaker supervisor and the pipeline
runner agree on for failed work (not for failed requests).
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from protocols.base import Message

__all__ = [
    "DEAD_LETTER_STREAM",
    "DEAD_LETTER_SUBJECTS",
    "ERROR_CLASSES",
    "ErrorClass",
    "ErrorCode",
    "ErrorReply",
    "dead_letter_subject",
]

ErrorCode = Literal[
    "bad_request",
    "not_found",
    "conflict",
    "rejected",
    "unavailable",
    "timeout",
    "forbidden",
    "internal",
]
"""Machine-readable reason of an :class:`ErrorReply`."""

ErrorClass = Literal["transient", "timeout", "resource", "permanent", "unavailable", "cancelled"]
"""Classification of a failed unit of work (step, agent call, engine call)."""

ERROR_CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)
"""Every :data:`ErrorClass`, in a stable order."""


class ErrorReply(Message, frozen=True, tag="troupe.errors.v1.reply"):
    """The body of every error answer to a request."""

    code: ErrorCode
    """What kind of failure this is."""
    message: str
    """Human-readable explanation; never a Python ``repr``."""
    retryable: bool = False
    """Whether sending the same request again may succeed."""
    details: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra machine-readable context (e.g. the offending field)."""


DEAD_LETTER_STREAM = "TROUPE_DLQ"
"""Stream that keeps every dead-lettered message."""

DEAD_LETTER_SUBJECTS = "troupe.dlq.>"
"""Subjects captured by :data:`DEAD_LETTER_STREAM`."""


def dead_letter_subject(stream: str) -> str:
    """Return the dead-letter subject for messages consumed from ``stream``."""
    return f"troupe.dlq.{stream}"
