"""Fixtures: the gateway of the session's ``troupe up``, its operator token, tokens of each role,
and a bus logged in as the gateway's NATS user."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import password_path
from tests.actors.conftest import RunningTroupe


@dataclass(frozen=True)
class Gateway:
    """The HTTP side of the session troupe."""

    url: str
    operator: str
    state_dir: Path
    nats_url: str

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client, with ``token`` as its bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


def troupe_token(gateway: Gateway, *args: str) -> dict[str, object]:
    """Run ``troupe token ARGS --json`` against the session troupe; return its JSON answer."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "token",
            *args,
            "--json",
            "--state-dir",
            str(gateway.state_dir),
            "--nats-url",
            gateway.nats_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@pytest.fixture(scope="session")
def gateway(troupe_up: RunningTroupe) -> Gateway:
    """Wait for ``troupe up`` to save the gateway URL and its operator token."""
    token_file = troupe_up.state_dir / "gateway-token"
    url_file = troupe_up.state_dir / "gateway-url"
    deadline = time.monotonic() + 60
    while not (token_file.exists() and url_file.exists()):
        assert time.monotonic() < deadline, "troupe up saved no gateway token"
        time.sleep(0.05)
    assert token_file.stat().st_mode & 0o077 == 0
    return Gateway(
        url=url_file.read_text().strip(),
        operator=token_file.read_text().strip(),
        state_dir=troupe_up.state_dir,
        nats_url=troupe_up.url,
    )


@pytest.fixture(scope="session")
def make_token(gateway: Gateway) -> Callable[..., str]:
    """Issue a token with ``troupe token create``; return the bearer token."""

    def make(role: str = "viewer", *, expires: str | None = None, name: str = "test") -> str:
        args = ["create", name, "--role", role]
        if expires:
            args += ["--expires", expires]
        return str(troupe_token(gateway, *args)["token"])

    return make


@pytest.fixture(scope="session")
def tokens(make_token: Callable[..., str]) -> dict[str, str]:
    """One token of each built-in role."""
    return {role: make_token(role, name=f"test-{role}") for role in ("viewer", "operator", "admin")}


@pytest.fixture
async def gateway_bus(troupe_up: RunningTroupe) -> AsyncIterator[Bus]:
    """A bus on the session troupe, logged in as the gateway's NATS user."""
    config = ConnectionConfig(
        url=troupe_up.url,
        user="gateway",
        password_file=str(password_path(troupe_up.state_dir, "gateway")),
        name="test-mcp",
        connect_timeout=10.0,
    )
    bus = await Bus.connect(config)
    try:
        yield bus
    finally:
        await bus.close()
