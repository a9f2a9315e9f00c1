"""API tokens: minting, parsing and hashing, and the role table of scopes.

A token reads ``trp_<id>_<secret>``: ``id`` is 16 hex digits (the key of its
:class:`~protocols.gateway.TokenRecord` in the tokens bucket, so a lookup needs
no scan) and ``secret`` is 256 random bits in URL-safe base64. Only the SHA-256
of the secret is stored; a presented token is checked with a constant-time
comparison of digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from protocols.gateway import BUILTIN_ROLES, SCOPES, Scope

__all__ = [
    "TOKEN_PREFIX",
    "ParsedToken",
    "digest",
    "matches",
    "mint",
    "parse",
    "scopes_for",
]

TOKEN_PREFIX = "trp_"  # noqa: S105 - a prefix, not a secret
"""Every troupe API token starts with this."""

_TOKEN = re.compile(r"^trp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class ParsedToken:
    """A token split into its public id and its secret.

    Attributes:
        token_id: the public id.
        secret: the secret part.
    """

    __slots__ = ("secret", "token_id")

    def __init__(self, token_id: str, secret: str) -> None:
        self.token_id = token_id
        self.secret = secret


def mint() -> tuple[str, str, str]:
    """Return a fresh ``(token, token_id, digest)``."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{token_id}_{secret}", token_id, digest(secret)


def parse(token: str) -> ParsedToken | None:
    """Split ``token``; ``None`` when it is not shaped like a troupe token."""
    found = _TOKEN.match(token)
    return ParsedToken(found.group(1), found.group(2)) if found else None


def digest(secret: str) -> str:
    """Return the stored form of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored`` (constant-time comparison)."""
    return hmac.compare_digest(digest(secret), stored)


def scopes_for(role: str, scopes: Iterable[str] = ()) -> list[Scope]:
    """Return the scopes of ``role`` (``custom``: exactly ``scopes``), in canonical order.

    Raises:
        ValueError: an unknown role or scope, or ``custom`` without scopes.
    """
    if role in BUILTIN_ROLES:
        if list(scopes):
            raise ValueError(f"role {role!r} has fixed scopes; use role 'custom' to choose")
        return list(BUILTIN_ROLES[role])
    if role != "custom":
        known = ", ".join([*BUILTIN_ROLES, "custom"])
        raise ValueError(f"unknown role {role!r} (roles: {known})")
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)} (scopes: {', '.join(SCOPES)})")
    if not wanted:
        raise ValueError("role 'custom' needs at least one scope")
    return [s for s in SCOPES if s in wanted]
