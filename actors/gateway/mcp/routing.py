"""Which of the MCP SDK's two Streamable HTTP answer modes serves each request at ``/mcp``.

The SDK answers a POST either as an SSE stream (so the handler can send
notifications tied to the request, such as progress) or as one JSON body.
For a request of the stateless 2026-07-28 protocol, the streamed mode runs
the handler as a second task beside a disconnect watcher and only then falls
back to a JSON body when nothing was notified: a task group, a channel and a
cancellation per request, about half a millisecond of the gateway's time.

:class:`AnswerModes` keeps one session manager per mode over the same server
and sends a ``tools/call`` straight to the JSON one when the called tool
cannot notify: it takes no :class:`~mcp.server.mcpserver.Context`, which is
the only way a tool reaches its request's notification channel. Everything
else keeps the streamed manager: ``wait_for_workflow`` (progress),
``subscriptions/listen``, resources, and every client of an earlier protocol
version (their sessions, and resource subscriptions within them, live in the
streamed manager). The routing reads the ``Mcp-Method`` and ``Mcp-Name``
headers, which the SDK rejects unless they match the body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

__all__ = ["AnswerModes", "silent_tool"]

_VERSION = b"mcp-protocol-version"
_METHOD = b"mcp-method"
_NAME = b"mcp-name"
_HANDSHAKE = frozenset(v.encode("latin-1") for v in HANDSHAKE_PROTOCOL_VERSIONS)


def silent_tool(server: MCPServer[Any], name: str) -> bool:
    """Whether tool ``name`` exists and cannot send notifications while it runs.

    A tool of the high-level server reaches its request (progress, log
    messages) only through a :class:`~mcp.server.mcpserver.Context`
    parameter; one without it answers and nothing else.
    """
    tool = server._tool_manager.get_tool(name)
    return tool is not None and tool.context_kwarg is None


class AnswerModes:
    """An ASGI app serving MCP over Streamable HTTP with the cheaper answer mode per call.

    Args:
        server: the MCP server both modes serve.
        security: DNS-rebinding protection, the same for both.
    """

    def __init__(
        self, server: MCPServer[Any], security: TransportSecuritySettings | None = None
    ) -> None:
        lowlevel = server._lowlevel_server
        self._server = server
        self.streamed = StreamableHTTPSessionManager(app=lowlevel, security_settings=security)
        """Sessions of earlier protocol versions, and every request that may notify."""
        self.direct = StreamableHTTPSessionManager(
            app=lowlevel, security_settings=security, json_response=True, stateless=True
        )
        """Calls of tools that cannot notify, answered as one JSON body."""

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run both session managers for the duration of the block."""
        async with self.streamed.run(), self.direct.run():
            yield

    def answers_directly(self, scope: Scope) -> bool:
        """Whether the request of ``scope`` is a silent tool call of the stateless protocol."""
        if scope.get("method") != "POST":
            return False
        version = method = name = None
        for key, value in scope["headers"]:
            if key == _VERSION:
                version = value
            elif key == _METHOD:
                method = value
            elif key == _NAME:
                name = value
        if version is None or version in _HANDSHAKE or method != b"tools/call" or name is None:
            return False
        return silent_tool(self._server, name.decode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request through the manager of its answer mode."""
        manager = self.direct if self.answers_directly(scope) else self.streamed
        await manager.handle_request(scope, receive, send)
