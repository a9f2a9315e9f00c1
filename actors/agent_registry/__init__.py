"""The agent registry: a live index of agents built from heartbeats on a KV bucket."""

from __future__ import annotations

from actors.agent_registry.config import RegistryConfig
from actors.agent_registry.state import AgentIndex

__all__ = ["AgentIndex", "RegistryConfig"]
