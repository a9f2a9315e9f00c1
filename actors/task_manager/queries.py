"""The task manager's answers: a task's record (with its submission), its templates, and
the plan a task would get.

The gateway, the CLI and any NATS client ask these over request subjects
(:data:`~protocols.tasks.GET_SUBJECT`, :data:`~protocols.tasks.TEMPLATES_SUBJECTS`,
:data:`~protocols.tasks.VALIDATE_SUBJECT`) instead of reading template files or
keeping submissions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors.runtime.errors import NotFound
from actors.runtime.handlers import RequestContext
from actors.task_manager.errors import TaskRejected
from actors.task_manager.store import TaskStore
from actors.task_manager.templates import Template, TemplateRegistry
from protocols.pipelines import PipelineSpec
from protocols.tasks import (
    GetTask,
    GetTemplate,
    ListTemplates,
    TaskPlan,
    TaskRecord,
    TaskSubmitted,
    TemplateInfo,
    TemplateList,
    ValidateTask,
)

__all__ = ["TaskQueries", "template_info"]


def template_info(template: Template) -> TemplateInfo:
    """Return the wire description of ``template``: parameters and step names."""
    document: Mapping[str, Any] = template.document
    steps = document.get("steps", [])
    names = (
        [str(s.get("name", "")) for s in steps if isinstance(s, dict)]
        if isinstance(steps, list)
        else []
    )
    return TemplateInfo(
        name=template.name,
        description=template.description,
        params=list(template.params),
        steps=names,
    )


class TaskQueries:
    """Request handlers over the task records and the template registry.

    Args:
        store: the task records.
        templates: the registry the task manager renders tasks with.
        prepare: renders and plans a task, raising :class:`TaskRejected`.
    """

    def __init__(
        self,
        store: TaskStore,
        templates: TemplateRegistry,
        prepare: Callable[[TaskSubmitted, TemplateRegistry], tuple[PipelineSpec, list[list[str]]]],
    ) -> None:
        self._store = store
        self._templates = templates
        self._prepare = prepare

    async def validate(self, request: ValidateTask, ctx: RequestContext) -> TaskPlan:
        """Render and plan a task exactly as a submission would be; nothing is stored or run."""
        try:
            pipeline, stages = self._prepare(request.task, self._templates)
        except TaskRejected as exc:
            return TaskPlan(valid=False, code=exc.code, problem=exc.detail)
        return TaskPlan(valid=True, pipeline=pipeline, stages=stages)

    async def get_task(self, request: GetTask, ctx: RequestContext) -> TaskRecord:
        """Return the record of a task, its submission included when it was kept.

        Raises:
            NotFound: the task manager never took a task with this id.
        """
        stored = await self._store.get(request.task_id)
        if stored is None:
            raise NotFound(f"no task {request.task_id!r}")
        return stored.record

    async def list_templates(self, request: ListTemplates, ctx: RequestContext) -> TemplateList:
        """Return every template, the directories read again (new files show at once)."""
        self._templates.reload()
        return TemplateList(items=[template_info(t) for t in self._templates.templates()])

    async def get_template(self, request: GetTemplate, ctx: RequestContext) -> TemplateInfo:
        """Return one template.

        Raises:
            NotFound: no template of that name (or its file is broken).
        """
        try:
            return template_info(self._templates.get(request.name))
        except TaskRejected as exc:
            raise NotFound(exc.detail) from None
