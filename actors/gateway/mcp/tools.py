"""Shared plumbing of troupe's MCP tools: running one, its span, its structured answer.

:class:`ToolKit` carries what every tool needs (the services facade, the
gateway's token verifier for audits, where artifact links point) and
:meth:`ToolKit.run` turns a tool body into the ``CallToolResult`` the client
gets: the model as structured content and as JSON text, or a tool error with
troupe's error code and docs section (see :mod:`actors.gateway.mcp.errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from mcp.types import CallToolResult, TextContent
from opentelemetry import trace
from pydantic import BaseModel

from actors.gateway.auth import TokenVerifier
from actors.gateway.mcp.access import require
from actors.gateway.mcp.errors import tool_error
from actors.gateway.services import Services
from actors.runtime import telemetry
from protocols.gateway import Scope

__all__ = ["ToolKit", "tool_span"]


@contextlib.contextmanager
def tool_span(tool: str) -> Iterator[None]:
    """Run a tool inside the gateway's span, continuing the current trace.

    With an exporter this is a recorded span; without one the current trace
    (the caller's ``traceparent``) stays current, or a fresh sampled context
    is made so a submitted workflow still gets a trace id to report.
    """
    if telemetry.recording():
        with telemetry.tracer().start_as_current_span(
            f"mcp {tool}",
            kind=trace.SpanKind.INTERNAL,
            attributes={"troupe.actor": "gateway", "mcp.tool": tool},
        ):
            yield
        return
    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    context = telemetry.fresh_context()
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield


@dataclass(frozen=True, slots=True)
class ToolKit:
    """What troupe's tools share.

    Attributes:
        services: the gateway's facade over the actors.
        verifier: audits operator and admin actions (``None``: checks scopes only).
        gateway_url: base URL of the gateway's HTTP API for artifact links when
            the request did not come over HTTP (stdio); ``None`` asks the gateway.
        inline_limit: largest artifact returned inline, bytes.
    """

    services: Services
    verifier: TokenVerifier | None = None
    gateway_url: str | None = None
    inline_limit: int = 64 * 1024

    async def run(
        self,
        tool: str,
        scope: Scope,
        body: Callable[[], Awaitable[BaseModel]],
        *,
        target: str = "",
    ) -> CallToolResult:
        """Check ``scope``, run ``body`` in the tool's span and return its answer or error."""
        try:
            with tool_span(tool):
                await require(self.verifier, scope, action=f"mcp {tool}", target=target)
                out = await body()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed tool error
            return tool_error(exc)
        return CallToolResult(
            content=[TextContent(type="text", text=out.model_dump_json())],
            structured_content=out.model_dump(mode="json"),
        )
