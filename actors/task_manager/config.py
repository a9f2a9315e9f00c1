"""Task manager settings: templates, its consumer, agent routing; checked on construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from actors.agent_registry.client import DispatchConfig
from actors.runtime.errors import ConfigError
from actors.task_manager.templates import TEMPLATES_ENV

__all__ = ["TaskManagerConfig"]


@dataclass(frozen=True, slots=True)
class TaskManagerConfig:
    """How the task manager finds templates, takes tasks and routes them to agents.

    Attributes:
        template_dirs: extra template directories, searched after the bundled
            ones; a later directory wins a name clash.
        bundled: whether the templates shipped with troupe are available.
        concurrency: submitted tasks handled at once by one process.
        ack_wait_s: seconds before an unacknowledged submission is redelivered.
        max_deliver: deliveries of one submission before it is dead-lettered.
        dispatch: how tasks that require a capability are routed to agents;
            ``None`` turns routing off (such tasks are rejected as ``no_capable_agent``).
    """

    template_dirs: tuple[Path, ...] = ()
    bundled: bool = True
    concurrency: int = 16
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    dispatch: DispatchConfig | None = field(default_factory=DispatchConfig)

    def __post_init__(self) -> None:
        for directory in self.template_dirs:
            if not directory.is_dir():
                raise ConfigError("template_dirs", f"{directory} is not a directory")
        for name in ("concurrency", "max_deliver"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.ack_wait_s < 1:
            raise ConfigError("ack_wait_s", "must be at least 1 second")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, template_dirs: tuple[Path, ...] = ()
    ) -> TaskManagerConfig:
        """Build from ``TROUPE_TEMPLATES`` (``os.pathsep``-separated), then ``template_dirs``.

        Agent routing reads ``TROUPE_AGENT_*`` (see :meth:`DispatchConfig.from_env`).

        Raises:
            ConfigError: a directory does not exist, or a setting is invalid.
        """
        env = os.environ if env is None else env
        from_env = tuple(Path(p) for p in env.get(TEMPLATES_ENV, "").split(os.pathsep) if p)
        return cls(template_dirs=from_env + template_dirs, dispatch=DispatchConfig.from_env(env))
