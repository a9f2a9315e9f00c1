"""Fixtures: troupe's MCP server in memory over the session's ``troupe up``, and MCP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors.gateway.mcp import TroupeMcp, build_server, local_principal
from actors.gateway.mcp.stdio import local_services
from actors.runtime.bus import Bus


def _server(bus: Bus, role: str) -> AsyncIterator[TroupeMcp]:
    async def make() -> AsyncIterator[TroupeMcp]:
        async with local_services(bus) as services:
            mcp = build_server(services, local=local_principal(role))
            async with mcp.running():
                yield mcp

    return make()


@pytest.fixture
async def operator_mcp(gateway_bus: Bus) -> AsyncIterator[TroupeMcp]:
    """The MCP server in memory, every request from the local operator."""
    async for mcp in _server(gateway_bus, "operator"):
        yield mcp


@pytest.fixture
async def viewer_mcp(gateway_bus: Bus) -> AsyncIterator[TroupeMcp]:
    """The MCP server in memory, every request from a local viewer."""
    async for mcp in _server(gateway_bus, "viewer"):
        yield mcp
