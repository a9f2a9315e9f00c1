"""The task manager's client module: a submission stored once per id, typed cancel answers."""

from __future__ import annotations

import pytest

from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from actors.task_manager import TaskManager
from actors.task_manager.client import cancel_task, submit_task
from actors.topology import TASKS
from protocols.tasks import TaskSubmitted

pytestmark = pytest.mark.integration


async def test_a_resubmitted_task_is_a_duplicate(bus: Bus) -> None:
    """submit_task reports the first send as new and a re-send of the same id as a duplicate."""
    await bus.ensure_stream(TASKS)
    task = TaskSubmitted(task_id="c-dup", template="hello")
    assert await submit_task(bus, task) is True
    assert await submit_task(bus, task) is False


async def test_cancel_answers_accepted_or_not_found(bus: Bus, manager: TaskManager) -> None:
    """cancel_task returns the acceptance for a known task and raises NotFound otherwise."""
    with pytest.raises(NotFound):
        await cancel_task(bus, "c-none")
    await submit_task(bus, TaskSubmitted(task_id="c-cancel", template="two", params={"n": "5"}))

    async def cancelled() -> str | None:
        try:
            return (await cancel_task(bus, "c-cancel", "stop")).workflow_id
        except NotFound:
            return None

    assert await eventually(cancelled) == "c-cancel"
