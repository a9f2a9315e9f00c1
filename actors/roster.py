"""The five actors of a troupe, by name: what ``troupe run NAME`` and ``troupe up`` start."""

from __future__ import annotations

import importlib

from actors.runtime.actor import Actor

__all__ = ["ACTORS", "load_actor"]

ACTORS: dict[str, str] = {
    "task_manager": "actors.task_manager.actor:TaskManager",
    "pipeline_runner": "actors.pipeline_runner.actor:PipelineRunner",
    "status_tracker": "actors.status_tracker.actor:StatusTracker",
    "breaker_supervisor": "actors.breaker_supervisor.actor:BreakerSupervisor",
    "agent_registry": "actors.agent_registry.actor:AgentRegistry",
}
"""Actor name -> ``module:Class``."""


def load_actor(name: str) -> type[Actor]:
    """Import and return the actor class called ``name``.

    Raises:
        KeyError: no actor has that name.
    """
    module_name, _, class_name = ACTORS[name].partition(":")
    cls: type[Actor] = getattr(importlib.import_module(module_name), class_name)
    return cls
