"""Failures of MCP tools: troupe's error code, a message and the docs section that explains it.

A tool that cannot do its job raises :class:`ToolFailure` (or lets a troupe
exception through); :func:`failure_of` turns any of them into one, and
:func:`tool_error` into the ``CallToolResult`` the client receives, with
``isError`` set and the structured content ``{"code", "message", "retryable",
"docs"}``. ``docs`` points at the section of ``docs/guides/troubleshooting.md``
named after the code, so an assistant can read what to do next.

Hierarchy::

    ToolFailure(code, message, retryable)
    └── Unsupported    code=unavailable: the back end has no such capability yet
"""

from __future__ import annotations

import asyncio
import logging

from mcp.types import CallToolResult, TextContent

from actors.gateway.auth import AuthError
from actors.runtime.errors import RequestError, TroupeError

__all__ = [
    "DOCS_PAGE",
    "ERROR_CODES",
    "ToolFailure",
    "Unsupported",
    "docs_anchor",
    "failure_of",
    "tool_error",
]

log = logging.getLogger(__name__)

DOCS_PAGE = "docs/guides/troubleshooting.md"
"""The page with one section per error code."""

ERROR_CODES: tuple[str, ...] = (
    "bad_request",
    "not_found",
    "conflict",
    "rejected",
    "unavailable",
    "timeout",
    "unauthorized",
    "forbidden",
    "internal",
)
"""Every code a tool error carries; each has a section in :data:`DOCS_PAGE`."""


def docs_anchor(code: str) -> str:
    """Return ``docs/guides/troubleshooting.md#<code>`` (``internal`` for an unknown code)."""
    known = code if code in ERROR_CODES else "internal"
    return f"{DOCS_PAGE}#{known}"


class ToolFailure(Exception):
    """A tool failed in a way the caller should read.

    Args:
        code: troupe error code (one of :data:`ERROR_CODES`).
        message: what went wrong and, where possible, what to do.
        retryable: whether calling again later may succeed.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code if code in ERROR_CODES else "internal"
        self.message = message
        self.retryable = retryable


class Unsupported(ToolFailure):
    """The back end cannot do this yet; never answered with a made-up result."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message, retryable=False)


def failure_of(exc: BaseException) -> ToolFailure:
    """Return the :class:`ToolFailure` that describes ``exc``.

    Troupe's request errors keep their code, authorisation errors become
    ``unauthorized`` / ``forbidden``, a timeout ``timeout``; anything else is
    logged and reported as ``internal`` without its ``repr``.
    """
    if isinstance(exc, ToolFailure):
        return exc
    if isinstance(exc, RequestError):
        return ToolFailure(exc.code, exc.message, retryable=exc.retryable)
    if isinstance(exc, AuthError):
        return ToolFailure(exc.code, exc.message)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ToolFailure("timeout", "troupe did not answer in time", retryable=True)
    if isinstance(exc, TroupeError):
        return ToolFailure("internal", str(exc))
    log.error("MCP tool failed unexpectedly", exc_info=exc)
    return ToolFailure("internal", f"unexpected {type(exc).__name__}; see the gateway's log")


def tool_error(exc: BaseException) -> CallToolResult:
    """Return the error result of a tool call that raised ``exc``."""
    failure = failure_of(exc)
    docs = docs_anchor(failure.code)
    text = f"{failure.code}: {failure.message} (see {docs})"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content={
            "code": failure.code,
            "message": failure.message,
            "retryable": failure.retryable,
            "docs": docs,
        },
        is_error=True,
    )
