"""What the CLI, the SDK and other actors use of the task manager.

Typed calls: :func:`submit_task` (publish a task to the tasks stream, once per
id), :func:`cancel_task`, :func:`get_task` (a task's record, with the
submission a re-run repeats), :func:`list_templates` and :func:`get_template`
(request/reply), and :func:`validate_task` (the plan a task would get, from
the task manager itself). Reading pipeline definition files
(:func:`load_document`, :func:`to_pipeline`), the template registry and
``{{ param }}`` rendering, and the rejection error raised while preparing a
task — so a client can check and render a task locally exactly as the task
manager will (:func:`prepare` renders and plans it).
"""

from __future__ import annotations

from actors.runtime.bus import Bus
from actors.task_manager.actor import prepare
from actors.task_manager.definitions import SUFFIXES, load_document, to_pipeline
from actors.task_manager.errors import TaskRejected
from actors.task_manager.queries import template_info
from actors.task_manager.templates import TemplateRegistry, render
from protocols.tasks import (
    CANCEL_SUBJECT,
    GET_SUBJECT,
    SUBMIT_SUBJECT,
    TEMPLATE_GET_SUBJECT,
    TEMPLATE_LIST_SUBJECT,
    VALIDATE_SUBJECT,
    CancelAccepted,
    CancelTask,
    GetTask,
    GetTemplate,
    ListTemplates,
    TaskPlan,
    TaskRecord,
    TaskSubmitted,
    TemplateInfo,
    TemplateList,
    ValidateTask,
    submit_msg_id,
)

__all__ = [
    "SUFFIXES",
    "TaskRejected",
    "TemplateRegistry",
    "cancel_task",
    "get_task",
    "get_template",
    "list_templates",
    "load_document",
    "prepare",
    "render",
    "submit_task",
    "template_info",
    "to_pipeline",
    "validate_task",
]


async def submit_task(bus: Bus, task: TaskSubmitted) -> bool:
    """Publish ``task`` to the tasks stream, deduplicated by its id.

    Returns:
        ``False`` when the stream recognised it as a duplicate of an earlier submission.

    Raises:
        RequestError: the stream did not store it.
    """
    ack = await bus.send(SUBMIT_SUBJECT, task, msg_id=submit_msg_id(task.task_id))
    return not ack.duplicate


async def cancel_task(
    bus: Bus, workflow_id: str, reason: str = "cancelled by user", *, timeout: float = 5.0
) -> CancelAccepted:
    """Ask the task manager to cancel a workflow.

    Raises:
        NotFound: no task has this id.
        Conflict: the task was rejected, so nothing runs.
        RequestError: any other error answer, or no answer.
    """
    request = CancelTask(workflow_id=workflow_id, reason=reason)
    return await bus.request(CANCEL_SUBJECT, request, CancelAccepted, timeout=timeout)


async def get_task(bus: Bus, task_id: str, *, timeout: float = 5.0) -> TaskRecord:
    """Return the task manager's record of a task: its state and, when kept, its submission.

    Raises:
        NotFound: the task manager never took a task with this id.
        RequestError: any other error answer, or no answer.
    """
    return await bus.request(GET_SUBJECT, GetTask(task_id=task_id), TaskRecord, timeout=timeout)


async def list_templates(bus: Bus, *, timeout: float = 5.0) -> TemplateList:
    """Return every template the task manager knows, with parameters and steps.

    Raises:
        RequestError: an error answer, or no answer.
    """
    return await bus.request(TEMPLATE_LIST_SUBJECT, ListTemplates(), TemplateList, timeout=timeout)


async def get_template(bus: Bus, name: str, *, timeout: float = 5.0) -> TemplateInfo:
    """Return one template as the task manager knows it.

    Raises:
        NotFound: no such template.
        RequestError: any other error answer, or no answer.
    """
    return await bus.request(
        TEMPLATE_GET_SUBJECT, GetTemplate(name=name), TemplateInfo, timeout=timeout
    )


async def validate_task(bus: Bus, task: TaskSubmitted, *, timeout: float = 5.0) -> TaskPlan:
    """Ask the task manager for the plan ``task`` would get, or why it would be rejected.

    Nothing is stored or run.

    Raises:
        RequestError: an error answer, or no answer.
    """
    return await bus.request(VALIDATE_SUBJECT, ValidateTask(task=task), TaskPlan, timeout=timeout)
