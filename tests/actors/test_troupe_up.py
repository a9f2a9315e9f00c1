"""End to end: ``troupe up`` runs every actor as its own process on the embedded server."""

from __future__ import annotations

import asyncio
import contextlib
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
from tests.actors.conftest import RunningTroupe, _wait_for_line, troupe_login
from tests.actors.processes import REPO

NOTIFIER = "examples/actors/notifier.py:Notifier"

pytestmark = [pytest.mark.integration, pytest.mark.processes]


async def _ping(url: str, state_dir: Path) -> dict[str, list[dict[str, object]]]:
    nc = await nats.connect(url, **troupe_login(state_dir))
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
    replies = await _ping(url, troupe_up.state_dir)
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
    nc = await nats.connect(url, **troupe_login(troupe_up.state_dir))
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
    before = (await _ping(url, troupe_up.state_dir))["status_tracker"][0]["id"]
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
        replies = await _ping(url, troupe_up.state_dir)
        ids = [r["id"] for r in replies.get("status_tracker", [])]
        if ids and before not in ids:
            return
        await asyncio.sleep(0.3)
    raise AssertionError("status_tracker was not restarted")


async def _notifier_recent(url: str, state_dir: Path, workflow_id: str) -> list[dict[str, object]]:
    """Submit ``hello`` as ``workflow_id``; return the notifier's answer once it lists it."""
    nc = await nats.connect(url, **troupe_login(state_dir))
    try:
        body = json.dumps({"task_id": workflow_id, "template": "hello"}).encode()
        await nc.jetstream().publish(
            "troupe.tasks.submit",
            body,
            headers={"Content-Type": "application/json", "Nats-Msg-Id": workflow_id},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = await nc.request(
                "troupe.ext.notifier.recent",
                b'{"limit": 5}',
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
            recent: list[dict[str, object]] = json.loads(reply.data)["workflows"]
            if any(w["workflow_id"] == workflow_id for w in recent):
                return recent
            await asyncio.sleep(0.2)
        raise AssertionError(f"the notifier never listed {workflow_id}")
    finally:
        await nc.close()


def test_detached_troupe_with_a_user_actor_answers_and_stops_with_down(tmp_path: Path) -> None:
    """``up --detach --actor`` returns once all six answer, quietly; ``down`` stops it all.

    The sixth actor is the notifier example, a process logged in as the ``actor``
    role: it registers its micro service and serves its own subject.
    """
    port = free_port()
    env = {**os.environ, "TROUPE_NATS_URL": "", "TROUPE_ACTORS": ""}
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
            "--actor",
            str(NOTIFIER),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "WARNING" not in up.stderr + up.stdout
        assert "ConnectionRefused" not in up.stderr + up.stdout
        assert "7 actors running" in up.stdout
        assert "troupe agents add NAME" in up.stdout
        url = f"nats://127.0.0.1:{port}"
        replies = asyncio.run(_ping(url, tmp_path))
        assert {name: len(r) for name, r in replies.items()} == dict.fromkeys(
            [*ACTORS, "notifier"], 1
        )
        workflow_id = f"e2e-{uuid.uuid4().hex[:10]}"
        recent = asyncio.run(_notifier_recent(url, tmp_path, workflow_id))
        assert recent[0] == {**recent[0], "workflow_id": workflow_id, "state": "succeeded"}
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


def _troupe(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TROUPE_NATS_URL": "", "TROUPE_ACTORS": "", **(env or {})},
        cwd=REPO,
    )


def test_up_against_a_url_where_nothing_listens_fails_fast_naming_it(tmp_path: Path) -> None:
    """``TROUPE_NATS_URL`` with no server: ``troupe up`` exits 1 with the URL, starting nothing."""
    url = f"nats://127.0.0.1:{free_port()}"
    up = _troupe("up", "--state-dir", str(tmp_path), timeout=30, env={"TROUPE_NATS_URL": url})
    assert up.returncode == 1, up.stdout + up.stderr
    assert url in up.stderr
    assert "TROUPE_NATS_URL" in up.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("no_such_package.mod:Actor", "module 'no_such_package.mod' not found"),
        ("json:JSONDecoder", "not an actors.runtime.Actor subclass"),
        ("examples/actors/notifier.py:Nope", "has no attribute 'Nope'"),
    ],
)
def test_up_with_a_bad_actor_spec_exits_2_before_starting_anything(
    tmp_path: Path, spec: str, reason: str
) -> None:
    """A bad ``--actor`` fails at start with the reason, not as a crash-looping child."""
    up = _troupe("up", "--state-dir", str(tmp_path), "--actor", spec, timeout=30)
    assert up.returncode == 2, up.stdout + up.stderr
    assert spec in up.stderr
    assert reason in up.stderr
    assert not (tmp_path / "logs").exists()


def test_sigterm_while_starting_stops_up_and_every_actor(tmp_path: Path) -> None:
    """SIGTERM before the actors answer: ``troupe up`` stops them and exits 0."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors",
            "up",
            "--state-dir",
            str(tmp_path),
            "--port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TROUPE_NATS_URL": "", "TROUPE_ACTORS": ""},
    )
    try:
        _wait_for_line(proc, "NATS listening", timeout=60)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= len(ACTORS) + 1  # the server and each actor
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(int(pid))]
        time.sleep(0.1)
    assert alive == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _readme_agent_commands() -> list[str]:
    """The README's shell lines that start the example agent, verbatim."""
    readme = (REPO / "README.md").read_text()
    block = next(
        b for b in readme.split("```console")[1:] if "examples/agents/textstats.py" in b
    ).split("```")[0]
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    start = next(i for i, c in enumerate(commands) if "textstats.py" in c)
    return commands[: start + 1]


def test_readme_agent_example_joins_the_troupe_as_written(troupe_up: RunningTroupe) -> None:
    """The README's agent lines, run as written, join ``troupe up``: ``troupe agents`` lists it."""
    commands = _readme_agent_commands()
    assert any("troupe creds agent" in c for c in commands), commands
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_NATS_", "TROUPE_ACTORS"))
    }
    env["TROUPE_STATE_DIR"] = str(troupe_up.state_dir)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = troupe_up.state_dir / "readme-agent.log"
    with open(log, "w") as out:
        agent = subprocess.Popen(
            ["bash", "-ec", "\n".join([*commands, "wait"])],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        listed = ""
        while time.monotonic() < deadline and agent.poll() is None:
            # Only what `troupe agents` prints: `troupe agents add` names the agent too.
            listed = subprocess.run(
                [
                    "bash",
                    "-ec",
                    "\n".join([*commands[:-1], "echo '-- listing --'", "troupe agents"]),
                ],
                check=False,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.rpartition("-- listing --\n")[2]
            if "textstats-1" in listed:
                break
            time.sleep(0.2)
        output = log.read_text()
        assert "textstats-1" in listed, output
        assert "live" in listed
        assert "permissions violation" not in output.lower()
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited: the assert says why
            os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(30)
