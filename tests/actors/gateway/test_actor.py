"""The gateway actor run in-process: it starts serving and stops without leaking a socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from actors.gateway.actor import Extension, Gateway, listen
from actors.gateway.app import Lifespan
from actors.gateway.config import GatewayConfig
from actors.gateway.mcp import http_extension
from actors.gateway.services import Services
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.topology import STATUS_EVENTS

pytestmark = pytest.mark.integration


class _Unraisable:
    """Records what the interpreter could not raise (``ResourceWarning`` from ``__del__``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, report: Any) -> None:
        self.seen.append(f"{report.exc_type.__name__}: {report.exc_value} ({report.object!r})")

    def __enter__(self) -> _Unraisable:
        self._previous = sys.unraisablehook
        sys.unraisablehook = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        sys.unraisablehook = self._previous


@pytest.fixture
def unraisable() -> Iterator[_Unraisable]:
    """Catch objects finalised unclosed while the test runs (warnings are errors)."""
    with _Unraisable() as recorder:
        yield recorder


async def _drain(lines: AsyncIterator[str]) -> str:
    """Read an event stream to its end; the server may also just close the connection."""
    with contextlib.suppress(httpx.RemoteProtocolError):
        async for _ in lines:
            pass
    return "ended"


def _recorder(phases: list[str]) -> Extension:
    """An extension whose lifespan records when the app starts and stops."""

    def extension(services: Services) -> tuple[Sequence[BaseRoute], Sequence[Lifespan]]:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            phases.append("started")
            try:
                yield
            finally:
                phases.append("stopped")

        return [], [lifespan]

    return extension


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


async def test_a_gateway_stopped_in_process_closes_its_listening_socket(
    bus: Bus, unraisable: _Unraisable
) -> None:
    """Stopping the actor closes the port and the connections; nothing is left to finalise."""
    await bus.ensure_stream(STATUS_EVENTS)
    gateway = Gateway(GatewayConfig(port=0))
    async with gateway.running(bus):
        assert gateway.url is not None
        host, _, port = gateway.url.removeprefix("http://").rpartition(":")
        # A keep-alive connection is still open when the actor stops.
        client = httpx.AsyncClient(base_url=gateway.url)
        answer = await client.get("/api/v1/templates")
        assert answer.status_code == 401
    assert _refused(host, int(port))
    await client.aclose()
    with socket.create_server((host, int(port))):
        pass  # the port is free again
    del gateway
    gc.collect()
    assert unraisable.seen == []


async def test_a_gateway_stopped_with_an_event_stream_open_ends_it(
    bus: Bus, unraisable: _Unraisable
) -> None:
    """A live SSE follower does not hold up the stop: its stream ends, the app shuts down."""
    await bus.ensure_stream(STATUS_EVENTS)
    phases: list[str] = []
    gateway = Gateway(GatewayConfig(port=0), extensions=[http_extension, _recorder(phases)])
    async with gateway.running(bus):
        assert gateway.url is not None
        assert gateway.services is not None
        issued = await gateway.services.tokens.create("reader", "viewer", (), created_by="test")
        client = httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {issued.token}"}
        )
        stream = client.stream("GET", "/api/v1/events", timeout=30.0)
        response = await stream.__aenter__()
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert (await eventually(lines.__anext__)).startswith(": troupe events")
    host, _, port = gateway.url.removeprefix("http://").rpartition(":")
    assert _refused(host, int(port))
    assert await asyncio.wait_for(_drain(lines), 30.0) == "ended"
    assert phases == ["started", "stopped"]
    await stream.__aexit__(None, None, None)
    await client.aclose()
    del gateway
    gc.collect()
    assert unraisable.seen == []


async def test_a_gateway_stopped_in_process_runs_the_apps_shutdown(
    bus: Bus, unraisable: _Unraisable
) -> None:
    """The mounted apps' lifespans (the MCP session manager's) are exited when the actor stops."""
    await bus.ensure_stream(STATUS_EVENTS)
    phases: list[str] = []
    gateway = Gateway(GatewayConfig(port=0), extensions=[http_extension, _recorder(phases)])
    async with gateway.running(bus):
        assert phases == ["started"]
    assert phases == ["started", "stopped"]
    del gateway
    gc.collect()
    assert unraisable.seen == []


def test_connections_to_the_gateways_port_send_without_delay() -> None:
    """Accepted connections have TCP_NODELAY, so a response is not held back by Nagle."""
    with listen("127.0.0.1", 0) as listener:
        host, port = listener.getsockname()[:2]
        with socket.create_connection((host, port), timeout=5.0):
            accepted, _ = listener.accept()
            with accepted:
                # What asyncio's transports check before setting TCP_NODELAY themselves.
                assert accepted.proto == socket.IPPROTO_TCP
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
