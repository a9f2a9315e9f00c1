"""Token format, hashing and the role table."""

from __future__ import annotations

import hashlib

import pytest

from actors.cli.tokens import parse_duration
from actors.gateway import tokens
from actors.gateway.openapi import openapi_document
from protocols.gateway import BUILTIN_ROLES, SCOPES


def test_a_minted_token_parses_back_to_its_id_and_matches_only_its_digest() -> None:
    """``trp_<16 hex>_<43 chars>``; the stored digest is the SHA-256 of the secret."""
    token, token_id, digest = tokens.mint()
    parsed = tokens.parse(token)
    assert parsed is not None
    assert parsed.token_id == token_id
    assert digest == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert tokens.matches(parsed.secret, digest)
    assert not tokens.matches(parsed.secret[:-1] + "x", digest)
    assert parsed.secret not in digest


@pytest.mark.parametrize(
    "bad", ["", "trp_", "trp_xyz_abc", "Bearer x", "trp_0123456789abcdef_short"]
)
def test_malformed_tokens_do_not_parse(bad: str) -> None:
    """Anything not shaped like a troupe token is refused before any lookup."""
    assert tokens.parse(bad) is None


def test_roles_are_nested_scope_sets_and_custom_roles_take_listed_scopes() -> None:
    """viewer < operator < admin; custom gets exactly its scopes; unknown ones are refused."""
    viewer, operator, admin = (set(BUILTIN_ROLES[r]) for r in ("viewer", "operator", "admin"))
    assert viewer < operator < admin == set(SCOPES)
    assert tokens.scopes_for("custom", ["tokens:manage", "workflows:read"]) == [
        "workflows:read",
        "tokens:manage",
    ]
    for role, scopes in (("root", []), ("custom", []), ("custom", ["x:y"]), ("viewer", ["a"])):
        with pytest.raises(ValueError):  # noqa: PT011 - each message names the problem
            tokens.scopes_for(role, scopes)


def test_durations_read_units() -> None:
    """``troupe token create --expires`` accepts seconds and s/m/h/d/w/y units."""
    assert parse_duration("90") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("2d") == 2 * 86400
    for bad in ("0", "-1h", "soon", "inf"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_the_openapi_document_declares_a_scope_and_errors_for_every_operation() -> None:
    """Each operation names its bearer scope and answers 401 and 403 with ApiError."""
    document = openapi_document()
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            if path == "/api/v1/health":
                continue
            assert spec["security"][0]["bearer"], (method, path)
            assert {"401", "403"} <= set(spec["responses"]), (method, path)
