"""Who calls an MCP tool, and whether they may.

Over Streamable HTTP the gateway is an OAuth 2.1 resource server in the MCP
SDK's terms: :class:`BearerTokens` is the SDK's token verifier, backed by the
gateway's own :class:`~actors.gateway.auth.TokenVerifier`, so the SDK's bearer
middleware answers 401 without a valid token and 403 without ``workflows:read``.
:class:`CallerMiddleware` then records the verified caller of each MCP message
(over stdio and in memory: the local principal the server was built with) and
continues the caller's W3C trace from the HTTP ``traceparent`` header.
:func:`require` checks a tool's scope and audits its use.
"""

from __future__ import annotations

import contextvars
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from opentelemetry import context as otel_context
from opentelemetry import propagate

from actors.gateway.auth import AuthError, Forbidden, Principal, TokenVerifier, Unauthorized
from actors.runtime import telemetry
from protocols.gateway import BUILTIN_ROLES, Scope

__all__ = ["LOCAL_ID", "BearerTokens", "CallerMiddleware", "local_principal", "require"]

LOCAL_ID = "local"
"""Token id of :func:`local_principal` (real token ids are 16 hex digits)."""

_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "troupe_mcp_caller", default=None
)


def local_principal(role: str = "operator") -> Principal:
    """Return the caller of a local (stdio) server: the local user with a built-in role.

    Raises:
        ValueError: ``role`` is not ``viewer``, ``operator`` or ``admin``.
    """
    if role not in BUILTIN_ROLES:
        raise ValueError(f"role must be one of {', '.join(BUILTIN_ROLES)}, not {role!r}")
    return Principal(
        token_id=LOCAL_ID, name=f"local {role}", role=role, scopes=frozenset(BUILTIN_ROLES[role])
    )


class BearerTokens:
    """The MCP SDK's token verifier over the gateway's tokens.

    Args:
        verifier: the gateway's token verification.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        """Return the access the token grants, or ``None`` when it is not valid now."""
        try:
            principal = await self._verifier.verify(token)
        except AuthError:
            return None
        return AccessToken(
            token=principal.token_id,
            client_id=principal.token_id,
            scopes=sorted(principal.scopes),
            subject=principal.name,
            claims={"role": principal.role, "name": principal.name},
        )


def _principal_of(token: AccessToken) -> Principal:
    claims = token.claims or {}
    return Principal(
        token_id=token.client_id,
        name=str(claims.get("name", token.subject or "")),
        role=str(claims.get("role", "custom")),
        scopes=frozenset(token.scopes),
    )


class CallerMiddleware:
    """Record each MCP message's caller and continue its HTTP caller's trace.

    Installed first in the server's middleware chain, before the SDK's own
    OpenTelemetry span, so that span (and every NATS message a tool sends)
    joins the trace of the HTTP request's ``traceparent``.

    Args:
        local: the caller of messages that carry no verified bearer token
            (stdio, in memory); ``None`` refuses them.
    """

    def __init__(self, local: Principal | None) -> None:
        self._local = local

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Run the rest of the chain with the caller and trace context set."""
        request = ctx.request
        scope = getattr(request, "scope", None)
        user = scope.get("user") if isinstance(scope, dict) else None
        principal = (
            _principal_of(user.access_token) if isinstance(user, AuthenticatedUser) else None
        )
        caller_token = _caller.set(principal or self._local)
        headers = getattr(request, "headers", None)
        carrier = {k: v for k in ("traceparent", "tracestate") if headers and (v := headers.get(k))}
        attached = otel_context.attach(propagate.extract(carrier)) if carrier else None
        try:
            return await call_next(ctx)
        finally:
            if attached is not None:
                otel_context.detach(attached)
            _caller.reset(caller_token)


def caller() -> Principal:
    """Return the caller of the MCP message being handled.

    Raises:
        Unauthorized: no verified caller.
    """
    principal = _caller.get()
    if principal is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return principal


async def require(
    verifier: TokenVerifier | None, scope: Scope, *, action: str, target: str = ""
) -> Principal:
    """Check that the caller holds ``scope``; audit every use beyond reading.

    Args:
        verifier: the gateway's verifier (audits); ``None`` checks without auditing.
        scope: what the tool needs.
        action: the tool's name, recorded in the audit event.
        target: what it acts on (a workflow id, a breaker key).

    Raises:
        Unauthorized: no verified caller.
        Forbidden: the scope is missing.
    """
    principal = caller()
    if verifier is None or principal.token_id == LOCAL_ID:
        if not principal.allows(scope):
            raise Forbidden(f"{principal.name} ({principal.role}) lacks scope {scope}")
        return principal
    await verifier.authorize(
        principal,
        scope,
        action=action,
        target=target,
        trace_id=telemetry.current_trace_id(),
        via="mcp",
    )
    return principal
