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
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from actors.roster import ACTORS
from actors.runtime.server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """Read the process's output until a line contains ``needle``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(line)
            if needle in line:
                return lines
            continue
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not printed; got:\n{''.join(lines)}")


@pytest.fixture(scope="module")
def troupe_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A foreground ``troupe up`` on a free port, stopped with SIGINT at the end."""
    state_dir = tmp_path_factory.mktemp("troupe-up")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "up", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TROUPE_NATS_URL": ""},
    )
    try:
        lines = _wait_for_line(proc, "actors running", timeout=90)
        assert any(f"NATS listening on nats://127.0.0.1:{port}" in line for line in lines)
        yield f"nats://127.0.0.1:{port}", state_dir
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()
        assert code == 0


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
    troupe_up: tuple[str, Path],
) -> None:
    """A plain nats-py request to $SRV.PING is answered once by each actor."""
    url, _ = troupe_up
    replies = await _ping(url)
    assert {name: len(r) for name, r in replies.items()} == dict.fromkeys(ACTORS, 1)


async def test_actors_run_as_separate_processes_with_their_own_roles(
    troupe_up: tuple[str, Path],
) -> None:
    """Each actor is its own OS process and logs in as its own NATS user."""
    _, state_dir = troupe_up
    for name in ACTORS:
        assert (state_dir / "logs" / f"{name}.log").exists()
    conns = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    running = [n for n in ACTORS if f"actors run {n}" in conns]
    assert sorted(running) == sorted(ACTORS)


async def test_workflow_submitted_to_troupe_up_succeeds(troupe_up: tuple[str, Path]) -> None:
    """A task published to the running troupe ends ``succeeded``."""
    url, _ = troupe_up
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
    troupe_up: tuple[str, Path],
) -> None:
    """SIGKILL one actor process: the supervisor starts it again and it answers PING."""
    url, _ = troupe_up
    before = (await _ping(url))["status_tracker"][0]["id"]
    out = subprocess.run(
        ["pgrep", "-f", "actors run status_tracker"], capture_output=True, text=True, check=True
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
