"""The task manager: tasks become validated, planned pipeline runs.

* :mod:`~actors.task_manager.definitions` - pipeline definition files (TOML, YAML, JSON);
* :mod:`~actors.task_manager.templates` - the template registry and ``{{ param }}`` rendering;
* :mod:`~actors.task_manager.plan` - step graph checks and stages (pure);
* :mod:`~actors.task_manager.store` - task records in the ``troupe-tasks`` bucket;
* :mod:`~actors.task_manager.actor` - the actor.
"""

from __future__ import annotations

from actors.task_manager.actor import TaskManager, prepare
from actors.task_manager.config import TaskManagerConfig
from actors.task_manager.definitions import dump_pipeline, load_pipeline, parse_document
from actors.task_manager.errors import TaskRejected
from actors.task_manager.plan import plan
from actors.task_manager.templates import Template, TemplateRegistry, render

__all__ = [
    "TaskManager",
    "TaskManagerConfig",
    "TaskRejected",
    "Template",
    "TemplateRegistry",
    "dump_pipeline",
    "load_pipeline",
    "parse_document",
    "plan",
    "prepare",
    "render",
]
