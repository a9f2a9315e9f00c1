"""``/api/v1/flags`` on the session troupe: read with any token, change as admin, audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]

BODY = {"rollout": 30, "on": "dagger", "off": "local", "templates": ["hello"]}


def test_admin_puts_gets_lists_and_deletes_a_flag(
    gateway: Gateway, make_token: Callable[..., str]
) -> None:
    """PUT stores the flag with the token's name; GET and the list show it; DELETE removes it."""
    with gateway.client(make_token("admin", name="flag-admin")) as client:
        put = client.put("/api/v1/flags/http.rollout", json=BODY)
        assert put.status_code == 200, put.text
        stored = put.json()
        assert (stored["name"], stored["rollout"], stored["updated_by"]) == (
            "http.rollout",
            30.0,
            "flag-admin",
        )
        assert client.get("/api/v1/flags/http.rollout").json() == stored
        names = [f["name"] for f in client.get("/api/v1/flags").json()["items"]]
        assert "http.rollout" in names
        assert client.delete("/api/v1/flags/http.rollout").status_code == 204
        assert client.get("/api/v1/flags/http.rollout").status_code == 404
        assert client.delete("/api/v1/flags/http.rollout").status_code == 404


def test_a_bad_flag_is_refused_with_400(gateway: Gateway, make_token: Callable[..., str]) -> None:
    """An out-of-range rollout, an unknown field or a bad name answers 400."""
    with gateway.client(make_token("admin")) as client:
        assert client.put("/api/v1/flags/x", json={"rollout": 101}).status_code == 400
        assert client.put("/api/v1/flags/x", json={"colour": "red"}).status_code == 400
        assert client.put("/api/v1/flags/Bad%20Name", json={}).status_code == 400


def test_only_admin_changes_flags_but_any_token_reads_them(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """viewer and operator get 403 on PUT and DELETE, 200 on GET; no token gets 401."""
    for role, token in tokens.items():
        with gateway.client(token) as client:
            assert client.get("/api/v1/flags").status_code == 200, role
            put = client.put("/api/v1/flags/auth.check", json={}).status_code
            assert put == (200 if role == "admin" else 403), role
    with gateway.client() as client:
        assert client.get("/api/v1/flags").status_code == 401
