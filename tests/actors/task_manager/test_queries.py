"""The task manager's queries: a task's record with its submission, and its templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.testing import eventually
from actors.task_manager import TaskManager
from actors.task_manager.client import (
    get_task,
    get_template,
    list_templates,
    submit_task,
    validate_task,
)
from protocols.tasks import TaskRecord, TaskSubmitted

pytestmark = pytest.mark.integration


async def test_a_task_record_keeps_the_submission_it_was_made_from(
    bus: Bus, manager: TaskManager
) -> None:
    """get_task answers the record with the submission as sent, so it can be run again."""
    task = TaskSubmitted(
        task_id="q-kept", template="two", params={"n": 3}, labels={"team": "a"}, submitted_at=5.0
    )
    await submit_task(bus, task)

    async def record() -> TaskRecord | None:
        try:
            return await get_task(bus, "q-kept")
        except NotFound:
            return None

    found = await eventually(record)
    assert found.submission == task
    assert found.template == "two"


async def test_an_unknown_task_is_not_found(bus: Bus, manager: TaskManager) -> None:
    """get_task raises NotFound for an id the task manager never took."""
    with pytest.raises(NotFound):
        await get_task(bus, "q-none")


async def test_templates_are_answered_with_parameters_and_steps(
    bus: Bus, manager: TaskManager
) -> None:
    """list_templates and get_template describe the registry's templates; unknown is NotFound."""
    listed = await list_templates(bus)
    two = await get_template(bus, "two")
    with pytest.raises(NotFound):
        await get_template(bus, "no-such-template")
    assert two in listed.items
    assert [t.name for t in listed.items] == sorted(t.name for t in listed.items)
    assert two.steps == ["first", "second"]
    assert [(p.name, p.type, p.default) for p in two.params] == [("n", "int", 1)]


async def test_a_template_added_after_start_is_listed(
    bus: Bus, manager: TaskManager, templates_dir: Path
) -> None:
    """A file dropped into a templates directory shows in the next list."""
    (templates_dir / "later.toml").write_text(
        'name = "later"\n[[steps]]\nname = "only"\nrun = "true"\n'
    )
    listed = await list_templates(bus)
    assert "later" in [t.name for t in listed.items]


async def test_validate_answers_the_plan_or_the_rejection_and_stores_nothing(
    bus: Bus, manager: TaskManager
) -> None:
    """validate_task renders and plans as a submission would; the task id stays unknown."""
    good = await validate_task(
        bus, TaskSubmitted(task_id="q-plan", template="two", params={"n": 2})
    )
    bad = await validate_task(
        bus, TaskSubmitted(task_id="q-plan", template="two", params={"n": "many"})
    )
    assert good.valid
    assert good.stages == [["first"], ["second"]]
    assert good.pipeline is not None
    assert good.pipeline.steps[0].run == "echo 2 > n.txt"
    assert (bad.valid, bad.code) == (False, "invalid_parameter")
    with pytest.raises(NotFound):
        await get_task(bus, "q-plan")
