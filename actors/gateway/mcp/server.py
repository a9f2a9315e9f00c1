"""troupe's MCP server: resources, tools and subscriptions over the gateway's services.

:func:`build_server` assembles an :class:`~mcp.server.mcpserver.MCPServer`
(the MCP SDK's high-level server) with troupe's resources and tools, the
caller middleware and resource subscriptions, and returns it with the
:class:`~actors.gateway.mcp.notify.Notifier` that must run while it serves.
:func:`http_extension` is the gateway's hook: it mounts the server's
Streamable HTTP transport at ``/mcp`` behind the gateway's bearer tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import BaseRoute, Route

from actors.gateway.app import Lifespan
from actors.gateway.auth import READ, Principal, TokenVerifier
from actors.gateway.config import GatewayConfig
from actors.gateway.mcp.access import BearerTokens, CallerMiddleware
from actors.gateway.mcp.notify import ListenedBus, Notifier
from actors.gateway.mcp.ops_tools import add_ops_tools
from actors.gateway.mcp.resources import add_resources
from actors.gateway.mcp.routing import AnswerModes
from actors.gateway.mcp.schedule_tools import add_schedule_tools
from actors.gateway.mcp.tools import ToolKit
from actors.gateway.mcp.workflow_tools import add_workflow_tools
from actors.gateway.services import Services

__all__ = ["INSTRUCTIONS", "MCP_PATH", "TroupeMcp", "build_server", "http_extension"]

MCP_PATH = "/mcp"
"""Where the gateway serves MCP over Streamable HTTP."""

INSTRUCTIONS = """\
troupe runs workflows: pipelines of steps (commands or containers) planned from a template \
or an inline definition. Typical use: list_templates, validate_workflow, submit_workflow, then \
wait_for_workflow (progress notifications) or subscribe to troupe://workflows/{id}; get_result, \
get_logs (also while a step runs) and get_artifact explain the outcome. add_schedule runs a \
template on a cron expression, an interval or once at a time. Tool errors carry troupe's error \
code and the section of docs/guides/troubleshooting.md that explains it."""

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class TroupeMcp:
    """The MCP server and what runs beside it.

    Attributes:
        server: the SDK server (hand it to a transport or to ``mcp.Client`` in tests).
        notifier: follows workflow updates for resource subscriptions; start it
            before serving, stop it after.
    """

    server: MCPServer[Any]
    notifier: Notifier

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TroupeMcp]:
        """Run the notifier for the duration of the block."""
        await self.notifier.start()
        try:
            yield self
        finally:
            await self.notifier.stop()


def build_server(
    services: Services,
    *,
    local: Principal | None = None,
    verifier: TokenVerifier | None = None,
    gateway_url: str | None = None,
    inline_limit: int = 64 * 1024,
    version: str = "",
) -> TroupeMcp:
    """Return troupe's MCP server over ``services``.

    Args:
        services: the gateway's facade over the actors.
        local: the caller of messages without a bearer token (stdio, in memory);
            ``None`` refuses them.
        verifier: audits operator and admin actions of token holders.
        gateway_url: the gateway's HTTP base URL for artifact links when a
            request does not come over HTTP.
        inline_limit: largest artifact ``get_artifact`` returns inline, bytes.
        version: reported as the server's version.
    """
    subscriptions = ListenedBus()
    server: MCPServer[Any] = MCPServer(
        "troupe",
        title="troupe",
        description="Create, run and follow troupe workflows.",
        instructions=INSTRUCTIONS,
        version=version,
        subscriptions=subscriptions,
        log_level="WARNING",
    )
    server.middleware.insert(0, CallerMiddleware(local))
    notifier = Notifier(services.bus, subscriptions)
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler(
        "resources/subscribe", types.SubscribeRequestParams, notifier.subscribe
    )
    lowlevel.add_request_handler(
        "resources/unsubscribe", types.UnsubscribeRequestParams, notifier.unsubscribe
    )
    kit = ToolKit(
        services=services, verifier=verifier, gateway_url=gateway_url, inline_limit=inline_limit
    )
    add_resources(server, services)
    add_workflow_tools(server, kit)
    add_ops_tools(server, kit)
    add_schedule_tools(server, kit)
    return TroupeMcp(server=server, notifier=notifier)


def _security(host: str) -> TransportSecuritySettings:
    """DNS-rebinding protection when serving on loopback, as the SDK does by default."""
    if host not in _LOOPBACK:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


def http_extension(
    services: Services, config: GatewayConfig | None = None
) -> tuple[Sequence[BaseRoute], Sequence[Lifespan]]:
    """Mount MCP over Streamable HTTP at ``/mcp``, behind the gateway's bearer tokens.

    A request without a valid token is answered 401 (``WWW-Authenticate:
    Bearer``), one whose token lacks ``workflows:read`` 403; tools check
    their own scopes. A call of a tool that cannot notify is answered as one
    JSON body, everything else by the SDK's streamed mode (see
    :mod:`actors.gateway.mcp.routing`).

    Returns:
        The route and the lifespan (session manager and notifier) to run with the app.
    """
    config = config or GatewayConfig.from_env()
    mcp = build_server(services, verifier=services.verifier)
    modes = AnswerModes(mcp.server, _security(config.host))
    endpoint = AuthenticationMiddleware(
        AuthContextMiddleware(RequireAuthMiddleware(modes, [READ])),
        backend=BearerAuthBackend(BearerTokens(services.verifier)),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.running(), modes.run():
            yield

    return [Route(MCP_PATH, endpoint=endpoint)], [lifespan]
