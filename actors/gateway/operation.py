"""One operation of the HTTP API: the row type of the table routes and OpenAPI are made from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocols.gateway import Scope

if TYPE_CHECKING:
    from actors.gateway.handlers import Call

__all__ = ["API", "Handler", "Operation", "Param"]

API = "/api/v1"
"""Prefix of every operation's path."""

Handler = Callable[["Call"], Awaitable[Any]]
"""Answers one authorised call (a Struct, or a ready response)."""


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter.

    Attributes:
        name: parameter name.
        schema: its JSON schema.
        description: what it does.
    """

    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation.

    Attributes:
        method: HTTP method.
        path: Starlette path (``{name}`` or ``{name:path}`` parameters).
        name: operation id.
        summary: one line for the OpenAPI document.
        scope: scope the caller needs.
        handler: answers the call (a Struct, or a ready :class:`Response`).
        body: body type, if any.
        response: answer type, for the document.
        status: success status.
        query: query parameters.
        media: media type of a non-JSON answer (a stream).
        tags: OpenAPI tags.
    """

    method: str
    path: str
    name: str
    summary: str
    scope: Scope
    handler: Handler
    body: type | None = None
    response: Any = None
    status: int = 200
    query: tuple[Param, ...] = ()
    media: str | None = None
    tags: tuple[str, ...] = field(default=("workflows",))
