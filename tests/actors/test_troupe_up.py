"""End to end: ``troupe up`` runs every actor as its own process on the embedded server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nats
import pytest

from actors.roster import ACTORS
from actors.runtime.server import free_port
from tests.actors.conftest import RunningTroupe

pytestmark = [pytest.mark.integration, pytest.mark.processes]


async def _ping(url: str) -> dict[str, list[dict[str, object]]]:
    nc = await nats.connect(url)
    replies: dict[str, list[dict[str, object]]] = {}
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.PING", b"", reply=inbox)
        deadline = time.monotonic() + 1.5
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                break
            body = json.loads(msg.data)
            replies.setdefault(body["name"], []).append(body)
    finally:
        await nc.close()
    return replies


async def test_ping_gets_one_reply_from_each_of_the_five_actors(
    troupe_up: RunningTroupe,
) -> None:
    """A plain nats-py request to $SRV.PING is answered once by each actor."""
    url = troupe_up.url
    replies = await _ping(url)
    assert {name: len(r) for name, r in replies.items()} == dict.fromkeys(ACTORS, 1)


async def test_actors_run_as_separate_processes_with_their_own_roles(
    troupe_up: RunningTroupe,
) -> None:
    """Each actor is its own OS process and logs in as its own NATS user."""
    state_dir = troupe_up.state_dir
    for name in ACTORS:
        assert (state_dir / "logs" / f"{name}.log").exists()
    conns = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    running = [n for n in ACTORS if f"actors run {n}" in conns]
    assert sorted(running) == sorted(ACTORS)


async def test_workflow_submitted_to_troupe_up_succeeds(troupe_up: RunningTroupe) -> None:
    """A task published to the running troupe ends ``succeeded``."""
    url = troupe_up.url
    nc = await nats.connect(url)
    try:
        task_id = f"e2e-{uuid.uuid4().hex[:10]}"
        body = json.dumps({"task_id": task_id, "template": "hello"}).encode()
        js = nc.jetstream()
        await js.publish(
            "troupe.tasks.submit",
            body,
            headers={"Content-Type": "application/json", "Nats-Msg-Id": task_id},
        )
        state = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = await nc.request(
                "troupe.status.get",
                json.dumps({"workflow_id": task_id}).encode(),
                headers={"Content-Type": "application/json"},
                timeout=2,
            )
            if not (reply.headers or {}).get("Nats-Service-Error-Code"):
                state = json.loads(reply.data)["state"]
                if state in {"succeeded", "failed", "rejected", "cancelled", "timed_out"}:
                    break
            await asyncio.sleep(0.2)
        assert state == "succeeded"
    finally:
        await nc.close()


@pytest.mark.chaos
async def test_supervisor_restarts_an_actor_killed_with_sigkill(
    troupe_up: RunningTroupe,
) -> None:
    """SIGKILL one actor process: the supervisor starts it again and it answers PING."""
    url = troupe_up.url
    before = (await _ping(url))["status_tracker"][0]["id"]
    # Only this troupe's actor (a child of its ``troupe up``), not other troupes on the host.
    out = subprocess.run(
        ["pgrep", "-P", str(troupe_up.proc.pid), "-f", "actors run status_tracker"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for pid in out:
        os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = await _ping(url)
        ids = [r["id"] for r in replies.get("status_tracker", [])]
        if ids and before not in ids:
            return
        await asyncio.sleep(0.3)
    raise AssertionError("status_tracker was not restarted")


def test_detached_troupe_answers_and_stops_with_down(tmp_path: Path) -> None:
    """``up --detach`` returns once every actor answers; ``down`` stops it all."""
    port = free_port()
    env = {**os.environ, "TROUPE_NATS_URL": ""}
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "up",
            "--detach",
            "--state-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        replies = asyncio.run(_ping(f"nats://127.0.0.1:{port}"))
        assert set(replies) == set(ACTORS)
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "actors", "down", "--state-dir", str(tmp_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "troupe.pid").exists()
    leftover = subprocess.run(
        ["pgrep", "-f", f"--state-dir {tmp_path}"], check=False, capture_output=True, text=True
    ).stdout.split()
    assert leftover == []
