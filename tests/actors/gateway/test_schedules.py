"""Schedules over HTTP against ``troupe up``: add, list, pause, resume, run now, remove."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def test_a_schedule_is_added_paused_resumed_run_now_and_removed(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Each change answers the schedule; run-now submits a workflow that succeeds."""
    name = f"http-{secrets.token_hex(4)}"
    body = {"name": name, "template": "hello", "params": {"who": "cron"}, "every": "1h"}
    with gateway.client(tokens["operator"]) as client, gateway.client(tokens["viewer"]) as viewer:
        added = client.post("/api/v1/schedules", json=body)
        listed = viewer.get("/api/v1/schedules").json()["items"]
        paused = client.post(f"/api/v1/schedules/{name}/pause").json()
        resumed = client.post(f"/api/v1/schedules/{name}/resume").json()
        run = client.post(f"/api/v1/schedules/{name}/run")
        workflow_id = run.json()["workflow_id"]
        deadline = time.monotonic() + 60
        while (view := client.get(f"/api/v1/workflows/{workflow_id}")).status_code != 200 or (
            view.json()["state"] not in ("succeeded", "failed", "rejected")
        ):
            assert time.monotonic() < deadline, view.text
            time.sleep(0.1)
        removed = client.delete(f"/api/v1/schedules/{name}")
        gone = viewer.get(f"/api/v1/schedules/{name}")
    assert added.status_code == 201, added.text
    assert added.json()["expression"] == "@every 1h"
    assert added.json()["updated_by"] == "test-operator"
    assert [s["name"] for s in listed if s["name"] == name] == [name]
    assert (paused["paused"], resumed["paused"]) == (True, False)
    assert run.status_code == 202
    assert view.json()["state"] == "succeeded", view.text
    assert view.json()["labels"] == {"schedule": name}
    assert removed.status_code == 200
    assert removed.json()["name"] == name
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


def test_a_schedule_the_server_or_the_task_manager_would_refuse_is_a_400(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A bad cron, an unknown time zone, two timings or an unknown template: 400, nothing kept."""
    name = f"bad-{secrets.token_hex(4)}"
    bodies = [
        {"name": name, "template": "hello", "cron": "* * * * * 99"},
        {"name": name, "template": "hello", "cron": "0 0 * * * *", "time_zone": "Nowhere/Land"},
        {"name": name, "template": "hello", "every": "1m", "at": "2030-01-01T00:00:00"},
        {"name": name, "template": "no-such-template", "every": "1m"},
    ]
    with gateway.client(tokens["operator"]) as client:
        answers = [client.post("/api/v1/schedules", json=body) for body in bodies]
        missing = client.post(f"/api/v1/schedules/{name}/pause")
        listed = client.get("/api/v1/schedules").json()["items"]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(400, "bad_request")] * 4
    assert missing.status_code == 404
    assert name not in [s["name"] for s in listed]
