"""troupe's wire contract: msgspec message types and subject, stream and bucket names.

One module per concern (:mod:`protocols.tasks`, :mod:`protocols.pipelines`,
:mod:`protocols.status`, :mod:`protocols.breakers`, :mod:`protocols.agents`,
:mod:`protocols.errors`). No I/O here and no import from ``actors``.
"""

from __future__ import annotations

from protocols import agents, breakers, errors, headers, pipelines, status, tasks
from protocols.base import TAG_FIELD, Message, type_id
from protocols.catalog import CATALOG, Route
from protocols.errors import ErrorReply

__all__ = [
    "CATALOG",
    "TAG_FIELD",
    "ErrorReply",
    "Message",
    "Route",
    "agents",
    "breakers",
    "errors",
    "headers",
    "pipelines",
    "status",
    "tasks",
    "type_id",
]
