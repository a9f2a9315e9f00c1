"""Who is calling: bearer token verification and scope checks, shared by HTTP and MCP.

:class:`TokenVerifier` turns a presented token into a :class:`Principal`: it
looks the token's record up by id (through a short-lived cache), checks the
secret's hash in constant time, the expiry and the revocation. The gateway
watches the tokens bucket and calls :meth:`TokenVerifier.forget` on every
change, so a revocation takes effect at once even for a cached token.

:meth:`TokenVerifier.authorize` checks a scope and, for anything beyond
reading, publishes an :class:`~protocols.gateway.AuditEvent`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from actors.gateway import tokens
from actors.runtime.clock import Clock, system_clock
from protocols.gateway import AuditEvent, Scope, TokenRecord

__all__ = [
    "READ",
    "AuthError",
    "Forbidden",
    "Principal",
    "TokenVerifier",
    "Unauthorized",
    "bearer_token",
]

log = logging.getLogger(__name__)

READ: Scope = "workflows:read"
"""The scope of every read; its use is not audited."""

Lookup = Callable[[str], Awaitable[TokenRecord | None]]
"""Fetch a token record by id (``None``: no such token)."""

Audit = Callable[[AuditEvent], Awaitable[None]]
"""Publish an audit event."""


class AuthError(Exception):
    """A request was refused; :attr:`status` is its HTTP status.

    Attributes:
        status: 401 or 403.
        code: troupe error code (``unauthorized`` or ``forbidden``).
    """

    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AuthError):
    """No token, or a bad, expired or revoked one (HTTP 401)."""


class Forbidden(AuthError):
    """A valid token without the scope the action needs (HTTP 403)."""

    status = 403
    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller.

    Attributes:
        token_id: id of the token presented.
        name: the token's name.
        role: its role.
        scopes: what it may do.
    """

    token_id: str
    name: str
    role: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this caller holds ``scope``."""
        return scope in self.scopes


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header value, if any."""
    if not authorization:
        return None
    kind, _, value = authorization.strip().partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenVerifier:
    """The one verification function of the gateway, with a short-lived cache.

    Args:
        lookup: fetches a token record by id (from the tokens bucket).
        audit: publishes audit events.
        clock: time source of expiry checks and of the cache.
        cache_ttl: seconds a looked-up record is reused without asking again.
    """

    def __init__(
        self,
        lookup: Lookup,
        audit: Audit | None = None,
        *,
        clock: Clock = system_clock,
        cache_ttl: float = 5.0,
    ) -> None:
        self._lookup = lookup
        self._audit = audit
        self._clock = clock
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}

    def forget(self, token_id: str) -> None:
        """Drop the cached record of ``token_id`` (it changed in the bucket)."""
        self._cache.pop(token_id, None)

    def remember(self, record: TokenRecord | None, token_id: str) -> None:
        """Cache ``record`` (``None``: deleted) as the current state of ``token_id``."""
        self._cache[token_id] = (self._clock.time(), record)

    async def _record(self, token_id: str) -> TokenRecord | None:
        now = self._clock.time()
        cached = self._cache.get(token_id)
        if cached is not None and now - cached[0] < self.cache_ttl:
            return cached[1]
        record = await self._lookup(token_id)
        self._cache[token_id] = (now, record)
        if len(self._cache) > 10_000:
            oldest = min(self._cache, key=lambda k: self._cache[k][0])
            self._cache.pop(oldest, None)
        return record

    async def verify(self, token: str | None) -> Principal:
        """Return the caller ``token`` identifies.

        Raises:
            Unauthorized: no token, or a malformed, unknown, wrong, expired or
                revoked one.
        """
        if not token:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        parsed = tokens.parse(token)
        if parsed is None:
            raise Unauthorized("malformed token")
        record = await self._record(parsed.token_id)
        if record is None or not tokens.matches(parsed.secret, record.digest):
            raise Unauthorized("unknown token")
        info = record.info
        if info.revoked_at is not None:
            raise Unauthorized("token revoked")
        if info.expires_at is not None and self._clock.time() >= info.expires_at:
            raise Unauthorized("token expired")
        return Principal(
            token_id=info.token_id, name=info.name, role=info.role, scopes=frozenset(info.scopes)
        )

    async def authorize(
        self,
        principal: Principal,
        scope: Scope,
        *,
        action: str,
        target: str = "",
        trace_id: str | None = None,
        via: str = "http",
    ) -> None:
        """Check that ``principal`` holds ``scope``; audit every use beyond reading.

        Raises:
            Forbidden: the scope is missing.
        """
        if not principal.allows(scope):
            raise Forbidden(f"token {principal.token_id} ({principal.role}) lacks scope {scope}")
        if scope == READ or self._audit is None:
            return
        event = AuditEvent(
            token_id=principal.token_id,
            name=principal.name,
            role=principal.role,
            scope=scope,
            action=action,
            at=self._clock.time(),
            target=target,
            trace_id=trace_id,
            via="mcp" if via == "mcp" else "nats" if via == "nats" else "http",
        )
        try:
            await self._audit(event)
        except Exception:  # an audit outage is logged, the action is not refused
            log.exception("could not publish the audit event of %s", action)
