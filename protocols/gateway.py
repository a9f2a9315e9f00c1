"""The gateway's wire contract: API tokens, their management requests and audit events.

People and tools reach troupe over HTTP and MCP with bearer tokens. The gateway
is the only writer of :data:`TOKENS_BUCKET`, which keeps each token as a
:class:`TokenRecord` under its id — a SHA-256 hash of the secret, never the
secret. ``troupe token`` manages tokens with the requests below, answered by
the gateway over NATS (only the ``operator`` and ``admin`` NATS users may send
them). Each use of a token for an operator or admin action is published as an
:class:`AuditEvent` on :func:`audit_subject`, kept by :data:`AUDIT_STREAM`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from protocols.base import Message

__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECTS",
    "BUILTIN_ROLES",
    "INFO_SUBJECT",
    "SCOPES",
    "SUBMISSIONS_BUCKET",
    "TOKENS_BUCKET",
    "TOKEN_CREATE_SUBJECT",
    "TOKEN_LIST_SUBJECT",
    "TOKEN_REVOKE_SUBJECT",
    "TOKEN_ROTATE_SUBJECT",
    "TOKEN_SUBJECTS",
    "AuditEvent",
    "CreateToken",
    "GatewayInfo",
    "GetGatewayInfo",
    "ListTokens",
    "RevokeToken",
    "RotateToken",
    "Scope",
    "TokenId",
    "TokenInfo",
    "TokenIssued",
    "TokenList",
    "TokenName",
    "TokenRecord",
    "audit_subject",
]

TOKENS_BUCKET = "troupe-tokens"
"""KV bucket of :class:`TokenRecord` by token id; written only by the gateway."""

SUBMISSIONS_BUCKET = "troupe-gateway-submissions"
"""KV bucket of the :class:`~protocols.tasks.TaskSubmitted` the gateway sent, by
workflow id, so a re-run can repeat the same inputs."""

AUDIT_STREAM = "TROUPE_AUDIT"
"""Stream keeping every :class:`AuditEvent`."""

AUDIT_SUBJECTS = "troupe.audit.>"
"""Subjects captured by :data:`AUDIT_STREAM`."""

TOKEN_SUBJECTS = "troupe.gateway.tokens.>"  # noqa: S105 - a subject
"""Every token management request subject."""

TOKEN_CREATE_SUBJECT = "troupe.gateway.tokens.create"  # noqa: S105 - a subject
"""Request: :class:`CreateToken` -> :class:`TokenIssued`."""

TOKEN_LIST_SUBJECT = "troupe.gateway.tokens.list"  # noqa: S105 - a subject
"""Request: :class:`ListTokens` -> :class:`TokenList`."""

TOKEN_REVOKE_SUBJECT = "troupe.gateway.tokens.revoke"  # noqa: S105 - a subject
"""Request: :class:`RevokeToken` -> :class:`TokenInfo`."""

TOKEN_ROTATE_SUBJECT = "troupe.gateway.tokens.rotate"  # noqa: S105 - a subject
"""Request: :class:`RotateToken` -> :class:`TokenIssued` (the old token is revoked)."""

Scope = Literal[
    "workflows:read",
    "workflows:submit",
    "workflows:cancel",
    "executions:stop",
    "breakers:control",
    "flags:write",
    "tokens:manage",
]
"""What a token may do; a role is a set of scopes."""

SCOPES: tuple[Scope, ...] = get_args(Scope)
"""Every :data:`Scope`."""

BUILTIN_ROLES: dict[str, tuple[Scope, ...]] = {
    "viewer": ("workflows:read",),
    "operator": ("workflows:read", "workflows:submit", "workflows:cancel", "executions:stop"),
    "admin": SCOPES,
}
"""The built-in roles: ``viewer`` reads, ``operator`` also submits and cancels,
``admin`` also manages tokens, breakers and feature flags."""

TokenName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w.@ -]+$")]
"""A token's label: 1 to 64 letters, digits, ``.``, ``@``, ``-``, ``_`` or spaces."""

TokenId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$")]
"""A token's public id: 16 lowercase hex digits."""


def audit_subject(action: str) -> str:
    """Return the subject an audit event of ``action`` is published on."""
    return f"troupe.audit.{action.replace(':', '.')}"


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A token as listed: everything but its hash."""

    token_id: str
    """Public id, also the token's prefix."""
    name: str
    """Who or what the token is for."""
    role: str
    """``viewer``, ``operator``, ``admin`` or ``custom``."""
    scopes: list[Scope]
    """What it may do."""
    created_at: float
    """Unix time it was issued."""
    expires_at: float | None = None
    """Unix time it stops working (``None``: never)."""
    revoked_at: float | None = None
    """Unix time it was revoked."""
    created_by: str = ""
    """Who issued it (a token id, or the NATS user)."""
    rotated_from: str | None = None
    """Id of the token this one replaced."""
    last_used_at: float | None = None
    """Not tracked (reserved)."""


class TokenRecord(Message, frozen=True, tag="troupe.gateway.v1.token"):
    """What :data:`TOKENS_BUCKET` keeps under a token id."""

    info: TokenInfo
    """The public part."""
    digest: str
    """``sha256`` of the token's secret part, hex."""


class CreateToken(Message, frozen=True, tag="troupe.gateway.v1.create_token"):
    """Issue a token."""

    name: TokenName
    """Who or what the token is for."""
    role: str = "viewer"
    """A built-in role, or ``custom`` with :attr:`scopes`."""
    scopes: list[Scope] = msgspec.field(default_factory=list)
    """For ``custom``: the scopes granted."""
    ttl_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Seconds until it expires (``None``: never)."""
    created_by: str = ""
    """Recorded with the token."""


class TokenIssued(Message, frozen=True, tag="troupe.gateway.v1.token_issued"):
    """A new token: the secret is shown here once and stored nowhere."""

    info: TokenInfo
    """The token's public part."""
    token: str
    """The bearer token (``trp_<id>_<secret>``)."""


class ListTokens(Message, frozen=True, tag="troupe.gateway.v1.list_tokens"):
    """List tokens."""

    include_revoked: bool = False
    """Also list revoked and expired tokens."""


class TokenList(Message, frozen=True, tag="troupe.gateway.v1.token_list"):
    """Answer to :class:`ListTokens`, oldest first."""

    items: list[TokenInfo]
    """The tokens."""


class RevokeToken(Message, frozen=True, tag="troupe.gateway.v1.revoke_token"):
    """Revoke a token at once."""

    token_id: TokenId
    """Id of the token."""


class RotateToken(Message, frozen=True, tag="troupe.gateway.v1.rotate_token"):
    """Issue a replacement with the same name and scopes, and revoke the old token."""

    token_id: TokenId
    """Id of the token to replace."""
    ttl_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Lifetime of the new token (``None``: as long as the old one's)."""


class AuditEvent(Message, frozen=True, tag="troupe.gateway.v1.audit"):
    """One use of a token for an operator or admin action."""

    token_id: str
    """Token used."""
    name: str
    """Its name."""
    role: str
    """Its role."""
    scope: str
    """Scope the action needed."""
    action: str
    """What was done (e.g. ``POST /api/v1/workflows``)."""
    at: float
    """Unix time."""
    target: str = ""
    """What it was done to (a workflow id, breaker key, token id)."""
    trace_id: str | None = None
    """W3C trace id of the request."""
    via: Literal["http", "mcp", "nats"] = "http"
    """Which door it came through."""


INFO_SUBJECT = "troupe.gateway.info"
"""Request: :class:`GetGatewayInfo` -> :class:`GatewayInfo`."""


class GetGatewayInfo(Message, frozen=True, tag="troupe.gateway.v1.get_info"):
    """Ask a gateway where it serves."""


class GatewayInfo(Message, frozen=True, tag="troupe.gateway.v1.info"):
    """Where a gateway serves HTTP (the API under ``/api/v1``, MCP at ``/mcp``)."""

    url: str
    """Base URL, e.g. ``http://127.0.0.1:8765``."""
