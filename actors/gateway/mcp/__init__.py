"""troupe's MCP server: workflows as resources and tools for AI assistants.

Served over Streamable HTTP at ``/mcp`` by the gateway (:func:`http_extension`,
bearer tokens) and over stdio by ``troupe mcp`` (:func:`serve_stdio`, as the
local operator). See ``docs/guides/mcp.md``.
"""

from __future__ import annotations

from actors.gateway.mcp.access import BearerTokens, local_principal
from actors.gateway.mcp.errors import ToolFailure, Unsupported
from actors.gateway.mcp.server import MCP_PATH, TroupeMcp, build_server, http_extension

__all__ = [
    "MCP_PATH",
    "BearerTokens",
    "ToolFailure",
    "TroupeMcp",
    "Unsupported",
    "build_server",
    "http_extension",
    "local_principal",
]
