"""Which actors a troupe runs: the six built-in ones by name, plus user actors by spec.

``troupe run`` and ``troupe up`` accept a built-in name (``task_manager``) or the
spec of any :class:`~actors.runtime.actor.Actor` subclass: ``package.module:Class``
(imported like ``python -m`` does, the current directory first on the path) or
``path/to/file.py:Class``. ``troupe up`` adds the specs of ``--actor`` and of the
``TROUPE_ACTORS`` variable (comma- or space-separated) to the six.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from actors.runtime.actor import Actor
from actors.runtime.errors import ConfigError
from actors.runtime.launcher import USER_ACTOR_ROLE, Member

__all__ = [
    "ACTORS",
    "ACTORS_ENV",
    "ActorSpecError",
    "build_roster",
    "load_actor",
    "resolve_actor",
    "user_actor_specs",
]

ACTORS: dict[str, str] = {
    "task_manager": "actors.task_manager.actor:TaskManager",
    "pipeline_runner": "actors.pipeline_runner.actor:PipelineRunner",
    "status_tracker": "actors.status_tracker.actor:StatusTracker",
    "breaker_supervisor": "actors.breaker_supervisor.actor:BreakerSupervisor",
    "agent_registry": "actors.agent_registry.actor:AgentRegistry",
    "gateway": "actors.gateway.actor:Gateway",
}
"""Built-in actor name -> ``module:Class``."""

ACTORS_ENV = "TROUPE_ACTORS"
"""Environment variable listing extra actor specs for ``troupe up``."""


class ActorSpecError(ConfigError):
    """An actor spec names no importable :class:`Actor` subclass."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__("actor", f"{spec!r}: {reason}")
        self.spec = spec


def _import_module(module_ref: str, spec: str) -> object:
    if module_ref.endswith(".py") or os.sep in module_ref or "/" in module_ref:
        path = Path(module_ref).expanduser().resolve()
        if not path.is_file():
            raise ActorSpecError(spec, f"file {path} not found")
        mod_name = f"troupe_user_actor_{path.stem}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise ActorSpecError(spec, f"cannot load {path} as a Python module")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ActorSpecError(spec, f"importing {path} failed: {_describe(exc)}") from exc
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_ref)
    except ModuleNotFoundError as exc:
        if exc.name and module_ref.startswith(exc.name):
            raise ActorSpecError(spec, f"module {module_ref!r} not found") from None
        raise ActorSpecError(spec, f"importing {module_ref} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise ActorSpecError(spec, f"importing {module_ref} failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def resolve_actor(spec: str) -> type[Actor]:
    """Return the actor class a built-in name or a ``module:Class`` spec names.

    Args:
        spec: ``task_manager`` (built-in), ``package.module:Class`` or ``file.py:Class``.

    Raises:
        ActorSpecError: unknown name, module or class, or not an :class:`Actor` subclass.
    """
    target = ACTORS.get(spec, spec)
    module_ref, sep, class_name = target.rpartition(":")
    if not sep or not module_ref or not class_name:
        known = ", ".join(sorted(ACTORS))
        raise ActorSpecError(
            spec, f"not a built-in actor ({known}) nor a 'package.module:Class' spec"
        )
    module = _import_module(module_ref, spec)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ActorSpecError(spec, f"module {module_ref!r} has no attribute {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ActorSpecError(spec, f"{class_name} is not an actors.runtime.Actor subclass")
    if not cls.name:
        raise ActorSpecError(spec, f"{class_name} does not set the class attribute 'name'")
    return cls


def load_actor(name: str) -> type[Actor]:
    """Import and return the actor class called ``name`` (a built-in name or a spec).

    Raises:
        ActorSpecError: see :func:`resolve_actor`.
    """
    return resolve_actor(name)


def user_actor_specs(env: Mapping[str, str] | None = None) -> list[str]:
    """Return the specs listed in ``TROUPE_ACTORS`` (comma- or space-separated)."""
    raw = (os.environ if env is None else env).get(ACTORS_ENV, "")
    return [s for s in raw.replace(",", " ").split() if s]


def _absolute(spec: str) -> str:
    module_ref, sep, class_name = spec.rpartition(":")
    if sep and (module_ref.endswith(".py") or "/" in module_ref or os.sep in module_ref):
        return f"{Path(module_ref).expanduser().resolve()}:{class_name}"
    return spec


def build_roster(extra: Sequence[str] = ()) -> list[Member]:
    """Return the six built-in actors plus the user actors the specs ``extra`` name.

    Each extra spec is imported now, so a bad one fails before anything starts;
    file paths are made absolute so the actor processes find them. User actors
    log in as the ``actor`` role.

    Raises:
        ActorSpecError: a spec is invalid, or two actors share a name.
    """
    members = [Member.builtin(name) for name in sorted(ACTORS)]
    names = {m.name for m in members}
    for spec in extra:
        cls = resolve_actor(spec)
        if cls.name in names:
            raise ActorSpecError(spec, f"an actor named {cls.name!r} is already in the troupe")
        names.add(cls.name)
        members.append(Member(name=cls.name, spec=_absolute(spec), role=USER_ACTOR_ROLE))
    return members
