"""What the CLI and other programs use of the gateway: token management and where it serves.

Typed calls to the gateway's request subjects. Only the ``operator`` and
``admin`` NATS users may send the token requests; the answers come from the
gateway, the only writer of the tokens bucket.
"""

from __future__ import annotations

from actors.gateway.tokens import TOKEN_PREFIX, parse
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from protocols import gateway as gw

__all__ = [
    "TOKEN_PREFIX",
    "create_token",
    "gateway_info",
    "list_tokens",
    "revoke_token",
    "rotate_token",
    "serve_mcp_stdio",
    "token_id_of",
]


def token_id_of(token: str) -> str | None:
    """Return the public id of a token (``None``: not a troupe token)."""
    parsed = parse(token)
    return parsed.token_id if parsed else None


async def create_token(
    bus: Bus, request: gw.CreateToken, *, timeout: float = 5.0
) -> gw.TokenIssued:
    """Ask the gateway to issue a token.

    Raises:
        RequestError: refused (e.g. an unknown role), or no gateway answered.
    """
    return await bus.request(gw.TOKEN_CREATE_SUBJECT, request, gw.TokenIssued, timeout=timeout)


async def list_tokens(
    bus: Bus, *, include_revoked: bool = False, timeout: float = 5.0
) -> gw.TokenList:
    """Ask the gateway for the tokens it issued."""
    return await bus.request(
        gw.TOKEN_LIST_SUBJECT,
        gw.ListTokens(include_revoked=include_revoked),
        gw.TokenList,
        timeout=timeout,
    )


async def revoke_token(bus: Bus, token_id: str, *, timeout: float = 5.0) -> gw.TokenInfo:
    """Revoke a token at once.

    Raises:
        NotFound: no such token.
    """
    return await bus.request(
        gw.TOKEN_REVOKE_SUBJECT, gw.RevokeToken(token_id=token_id), gw.TokenInfo, timeout=timeout
    )


async def rotate_token(
    bus: Bus, token_id: str, *, ttl_s: float | None = None, timeout: float = 5.0
) -> gw.TokenIssued:
    """Replace a token with a new one (same name and scopes) and revoke it.

    Raises:
        NotFound: no such token.
    """
    return await bus.request(
        gw.TOKEN_ROTATE_SUBJECT,
        gw.RotateToken(token_id=token_id, ttl_s=ttl_s),
        gw.TokenIssued,
        timeout=timeout,
    )


async def gateway_info(bus: Bus, *, timeout: float = 5.0) -> gw.GatewayInfo:
    """Ask a running gateway where it serves."""
    return await bus.request(gw.INFO_SUBJECT, gw.GetGatewayInfo(), gw.GatewayInfo, timeout=timeout)


# -- MCP over stdio (troupe mcp) -------------------------------------------------------


async def serve_mcp_stdio(
    config: ConnectionConfig,
    *,
    role: str = "operator",
    gateway_url: str | None = None,
) -> None:
    """Serve troupe's MCP server on stdin/stdout as the local user (``troupe mcp``).

    See :func:`actors.gateway.mcp.stdio.serve_stdio`; imported on first use, so
    the token commands do not load the MCP SDK.

    Raises:
        ConnectError: NATS is not reachable.
        ValueError: ``role`` is not a built-in role.
    """
    from actors.gateway.mcp.stdio import serve_stdio

    await serve_stdio(config, role=role, gateway_url=gateway_url)
