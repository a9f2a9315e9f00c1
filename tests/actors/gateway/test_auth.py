"""Bearer tokens on every route: 401 without, bad, expired or revoked; 403 without the scope."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
from collections.abc import Callable

import httpx
import msgspec
import pytest

from actors.cli.init import admin_config
from actors.gateway.routes import OPERATIONS
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from protocols.gateway import AUDIT_STREAM, TOKENS_BUCKET, AuditEvent, audit_subject
from tests.actors.gateway.conftest import Gateway, troupe_token

pytestmark = [pytest.mark.integration, pytest.mark.processes]

_SAMPLES = {
    "workflow_id": "wf-1",
    "name": "hello",
    "step": "greet",
    "key": "backend:local",
    "token_id": "0123456789abcdef",
    "schedule": "no-such-schedule",
}

ROUTES: list[tuple[str, str, str]] = [
    (op.method, re.sub(r"{(\w+)(?::\w+)?}", lambda m: _SAMPLES[m.group(1)], op.path), str(op.scope))
    for op in OPERATIONS
] + [
    ("GET", "/api/v1/workflows/wf-1/events", "workflows:read"),
    ("GET", "/api/v1/events", "workflows:read"),
]
"""Every route with sample path parameters, and the scope it needs."""


def _status(gateway: Gateway, token: str | None, method: str, path: str) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        if path.endswith("events"):
            with client.stream(method, path, headers=headers) as response:
                return response.status_code
        return client.request(method, path, headers=headers, json={}).status_code


def _whoami(gateway: Gateway, token: str) -> int:
    return httpx.get(
        f"{gateway.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_health_needs_no_token(gateway: Gateway) -> None:
    """``/api/v1/health`` answers without a token."""
    assert httpx.get(f"{gateway.url}/api/v1/health").status_code == 200


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_every_route_refuses_missing_and_malformed_tokens(
    gateway: Gateway, method: str, path: str, scope: str
) -> None:
    """No token, a non-troupe token, and a well-formed unknown one: 401."""
    unknown = "trp_0123456789abcdef_" + "A" * 43
    for token in (None, "garbage", unknown, gateway.operator[:-1] + "x"):
        assert _status(gateway, token, method, path) == 401, (token, method, path)


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_every_route_needs_its_scope(
    gateway: Gateway, tokens: dict[str, str], method: str, path: str, scope: str
) -> None:
    """A role without the route's scope gets 403; a role with it is not refused."""
    roles = {
        "workflows:read": ("viewer", "operator", "admin"),
        "workflows:submit": ("operator", "admin"),
        "workflows:cancel": ("operator", "admin"),
        "breakers:control": ("admin",),
        "tokens:manage": ("admin",),
    }[scope]
    for role, token in tokens.items():
        got = _status(gateway, token, method, path)
        if role in roles:
            assert got not in (401, 403), (role, method, path, got)
        else:
            assert got == 403, (role, method, path, got)


def test_an_expired_token_is_refused_everywhere(
    gateway: Gateway, make_token: Callable[..., str]
) -> None:
    """Once its expiry passes, an admin token gets 401 on every route."""
    token = make_token("admin", expires="1s", name="expiring")

    async def expired() -> bool:
        return _whoami(gateway, token) == 401

    asyncio.run(eventually(expired, timeout=10, what="the token expires"))
    for method, path, _ in ROUTES:
        assert _status(gateway, token, method, path) == 401, (method, path)


def test_a_revoked_token_is_refused_within_a_second(
    gateway: Gateway, make_token: Callable[..., str]
) -> None:
    """A cached, working token gets 401 on every route within 1 s of its revocation."""
    token = make_token("admin", name="revoked")
    assert _whoami(gateway, token) == 200
    subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "token",
            "revoke",
            token.split("_")[1],
            "--state-dir",
            str(gateway.state_dir),
            "--nats-url",
            gateway.nats_url,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    async def refused() -> bool:
        return _whoami(gateway, token) == 401

    asyncio.run(eventually(refused, timeout=1.0, interval=0.02, what="revocation takes effect"))
    for method, path, _ in ROUTES:
        assert _status(gateway, token, method, path) == 401, (method, path)


def test_rotation_replaces_the_token(gateway: Gateway, make_token: Callable[..., str]) -> None:
    """``troupe token rotate``: the new token works with the same role, the old one does not."""
    old = make_token("operator", name="rotating")
    issued = troupe_token(gateway, "rotate", old.split("_")[1])
    new = str(issued["token"])
    info = issued["info"]
    assert isinstance(info, dict)
    assert info["role"] == "operator"
    assert info["rotated_from"] == old.split("_")[1]
    assert _whoami(gateway, new) == 200
    assert _whoami(gateway, old) == 401


async def test_tokens_rest_as_hashes_only(gateway: Gateway, tokens: dict[str, str]) -> None:
    """The tokens bucket holds each token's SHA-256, never the secret."""
    bus = await Bus.connect(admin_config(gateway.nats_url, gateway.state_dir))
    try:
        kv = await bus.js.key_value(TOKENS_BUCKET)
        stored = b""
        for key in await kv.keys():
            entry = await kv.get(key)
            stored += entry.value or b""
    finally:
        await bus.close()
    for token in (*tokens.values(), gateway.operator):
        secret = token.split("_", 2)[2]
        assert secret.encode() not in stored
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored


async def test_operator_actions_are_audited(gateway: Gateway, tokens: dict[str, str]) -> None:
    """A submit with an operator token leaves an audit event naming the token."""
    token = tokens["operator"]
    token_id = token.split("_")[1]
    response = httpx.post(
        f"{gateway.url}/api/v1/workflows",
        json={"template": "hello"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202
    bus = await Bus.connect(admin_config(gateway.nats_url, gateway.state_dir))
    try:
        sub = await bus.js.subscribe(
            audit_subject("workflows:submit"), stream=AUDIT_STREAM, ordered_consumer=True
        )

        async def found() -> AuditEvent | None:
            # Other tests' submits are audited too: read on until this token's.
            while True:
                msg = await sub.next_msg(timeout=5)
                event = msgspec.msgpack.decode(msg.data, type=AuditEvent)
                if event.token_id == token_id:
                    return event

        event = await eventually(found, timeout=60, ignoring=(Exception,))
    finally:
        await bus.close()
    assert event.scope == "workflows:submit"
    assert event.action == "POST /api/v1/workflows"
