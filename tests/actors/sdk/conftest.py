"""Fixtures for SDK tests: the registry fixtures are shared with the registry's tests."""

from __future__ import annotations

from tests.actors.agent_registry.conftest import presence, registry

__all__ = ["presence", "registry"]
