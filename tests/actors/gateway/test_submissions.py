"""Submissions come from the task manager's records, whichever way a workflow was sent."""

from __future__ import annotations

import secrets
import time

import pytest

from actors.gateway.actor import SUBMISSIONS
from actors.gateway.submissions import Submissions
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.task_manager.client import submit_task
from protocols.tasks import TaskSubmitted
from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]


async def test_a_submission_sent_over_nats_is_found_and_an_unknown_one_is_none(
    gateway_bus: Bus,
) -> None:
    """get_or_none answers the task manager's copy; an unknown or malformed id is None."""
    task = TaskSubmitted(
        task_id=f"sub-{secrets.token_hex(6)}",
        template="hello",
        labels={"via": "nats"},
        submitted_at=time.time(),
    )
    await submit_task(gateway_bus, task)
    submissions = Submissions(gateway_bus)
    found = await eventually(lambda: submissions.get_or_none(task.task_id), timeout=30.0)
    assert found.value == task
    assert await submissions.get_or_none("no-such-workflow") is None
    assert await submissions.get_or_none("not a valid id!") is None


async def test_a_gateway_submit_keeps_no_copy_of_its_own(
    gateway: Gateway, gateway_bus: Bus
) -> None:
    """Submitting over HTTP writes only the submission; the task manager's record has it."""
    key = f"one-{secrets.token_hex(6)}"
    with gateway.client(gateway.operator) as client:
        response = client.post(
            "/api/v1/workflows", json={"template": "hello", "idempotency_key": key}
        )
    assert response.status_code == 202, response.text
    found = await eventually(lambda: Submissions(gateway_bus).get_or_none(key), timeout=30.0)
    copies = await TypedBucket.bind(gateway_bus, SUBMISSIONS, TaskSubmitted)
    assert found.value.template == "hello"
    assert await copies.get_or_none(key) is None
