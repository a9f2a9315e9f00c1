"""Task manager settings: where templates come from. Frozen and checked on construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from actors.runtime.errors import ConfigError
from actors.task_manager.templates import TEMPLATES_ENV

__all__ = ["TaskManagerConfig"]


@dataclass(frozen=True, slots=True)
class TaskManagerConfig:
    """How the task manager finds templates.

    Attributes:
        template_dirs: extra template directories, searched after the bundled
            ones; a later directory wins a name clash.
        bundled: whether the templates shipped with troupe are available.
    """

    template_dirs: tuple[Path, ...] = ()
    bundled: bool = True

    def __post_init__(self) -> None:
        for directory in self.template_dirs:
            if not directory.is_dir():
                raise ConfigError("template_dirs", f"{directory} is not a directory")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, template_dirs: tuple[Path, ...] = ()
    ) -> TaskManagerConfig:
        """Build from ``TROUPE_TEMPLATES`` (``os.pathsep``-separated), then ``template_dirs``.

        Raises:
            ConfigError: a directory does not exist.
        """
        env = os.environ if env is None else env
        from_env = tuple(Path(p) for p in env.get(TEMPLATES_ENV, "").split(os.pathsep) if p)
        return cls(template_dirs=from_env + template_dirs)
