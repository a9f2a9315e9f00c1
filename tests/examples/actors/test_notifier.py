"""The notifier example actor: remembers finished workflows and answers who finished."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

from actors.roster import resolve_actor
from actors.runtime import BadRequest, Bus, RequestError
from actors.runtime.testing import eventually
from protocols.status import WorkflowView, update_subject

pytestmark = pytest.mark.integration

Notifier = resolve_actor("examples/actors/notifier.py:Notifier")
notifier = importlib.import_module(Notifier.__module__)


def _view(workflow_id: str, state: Any) -> WorkflowView:
    now = time.time()
    return WorkflowView(
        workflow_id=workflow_id, state=state, created_at=now, updated_at=now, template="hello"
    )


async def test_notifier_lists_finished_workflows_newest_first(bus: Bus) -> None:
    """Final views are remembered once each, newest first; running ones are not."""
    async with Notifier(keep=2).running(bus):
        for workflow_id, state in [
            ("wf-1", "succeeded"),
            ("wf-2", "running"),
            ("wf-2", "failed"),
            ("wf-2", "failed"),  # the same final state announced twice
            ("wf-3", "succeeded"),
        ]:
            await bus.publish(update_subject(workflow_id), _view(workflow_id, state))

        async def recent() -> Any:
            reply = await bus.request(
                notifier.RECENT_SUBJECT, notifier.RecentRequest(), notifier.RecentFinished
            )
            return reply if reply.seen == 3 else None

        reply = await eventually(recent, timeout=10)
        assert [(w.workflow_id, w.state) for w in reply.workflows] == [
            ("wf-3", "succeeded"),
            ("wf-2", "failed"),
        ]
        only_failed = await bus.request(
            notifier.RECENT_SUBJECT,
            notifier.RecentRequest(state="failed"),
            notifier.RecentFinished,
        )
        assert [w.workflow_id for w in only_failed.workflows] == ["wf-2"]


async def test_notifier_rejects_a_limit_below_one(bus: Bus) -> None:
    """A typed bad_request error, not a time-out."""
    async with Notifier().running(bus):
        with pytest.raises(RequestError) as caught:
            await bus.request(
                notifier.RECENT_SUBJECT, notifier.RecentRequest(limit=0), notifier.RecentFinished
            )
    assert caught.value.code == BadRequest.code


def test_keep_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TROUPE_NOTIFIER_KEEP`` configures an actor started by ``troupe run`` / ``troupe up``."""
    monkeypatch.setenv("TROUPE_NOTIFIER_KEEP", "7")
    assert Notifier().keep == 7
