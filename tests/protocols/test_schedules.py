"""Schedule subjects and the task id of a firing."""

from __future__ import annotations

import re

from protocols.schedules import (
    SCHEDULE_NAME_PATTERN,
    definition_subject,
    firing_subject,
    firing_task_id,
)
from protocols.tasks import TASK_ID_PATTERN


def test_each_schedule_has_its_own_definition_and_firing_subjects() -> None:
    """Definitions and firings of one schedule never share a subject with another's."""
    assert definition_subject("nightly") == "troupe.schedules.def.nightly"
    assert firing_subject("nightly") == "troupe.schedules.fire.nightly"
    assert firing_subject("nightly") != firing_subject("hourly")


def test_a_firing_task_id_is_a_valid_task_id_fixed_to_the_second() -> None:
    """Two firings in the same second share the id (deduplicated); the id is a task id."""
    first = firing_task_id("nightly", 1_700_000_000.2)
    assert first == "sched-nightly-20231114T221320Z"
    assert firing_task_id("nightly", 1_700_000_000.9) == first
    assert firing_task_id("nightly", 1_700_000_001.0) != first
    assert re.fullmatch(TASK_ID_PATTERN, first)
    assert re.fullmatch(SCHEDULE_NAME_PATTERN, "nightly")
