"""The gateway: HTTP API, SSE and WebSocket, MCP, and API tokens for people and tools."""
