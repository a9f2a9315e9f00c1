"""A pipeline step hunting for secrets in a running ``troupe up`` finds none.

The step reads every process's environment and command line, ``ps`` output
and the state directory, and writes what it saw into its workspace; the test
then looks for every role password (and the server's password hashes) in it.
The same hunt run by the troupe's own user does find them, so an empty result
means the step was kept out, not that the hunt was blind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.cli.follow import follow
from actors.runtime import Bus, ConnectionConfig
from actors.runtime.server import free_port
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted
from tests.actors.conftest import _wait_for_line

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="steps are kept out of the state directory only when troupe runs as root "
        "(they run as another user); see docs/guides/security.md",
    ),
]

HUNT = r"""
{
  echo "== id"; id
  echo "== environ"
  for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done
  echo "== cmdline"
  for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done
  echo "== ps"; ps -eo user,pid,args 2>&1
  echo "== state"
  ls -la "$STATE" "$STATE/secrets" 2>&1
  find "$STATE" -type f -exec cat {} + 2>&1
} > hunt.txt 2>&1
true
"""


def _secrets(state_dir: Path) -> list[str]:
    """Every password of the state directory and every hash the server holds."""
    found = [p.read_text().strip() for p in (state_dir / "secrets").glob("*.password")]
    conf = (state_dir / "secrets" / "passwords.conf").read_text()
    found += [line.split('"')[1] for line in conf.splitlines() if '"' in line]
    assert len(found) >= 8
    return found


@pytest.fixture(scope="module")
def troupe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A ``troupe up`` as processes that keeps its step workspaces for inspection."""
    state_dir = tmp_path_factory.mktemp("hunt-state")
    workspaces = tmp_path_factory.mktemp("hunt-ws")
    port = free_port()
    env = {
        **os.environ,
        "TROUPE_NATS_URL": "",
        "TROUPE_WORKSPACES": str(workspaces),
        "TROUPE_RUNNER_KEEP_WORKSPACES": "1",
        "TROUPE_ADMIN_PASSWORD": "p-inherited-admin-secret",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "up", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        _wait_for_line(proc, "actors running", timeout=90)
        yield f"nats://127.0.0.1:{port}", state_dir, workspaces
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            assert proc.stdout is not None
            proc.stdout.close()


async def _hunt(url: str, state_dir: Path, workspaces: Path) -> str:
    workflow_id = f"hunt-{uuid.uuid4().hex[:8]}"
    step = StepSpec(name="hunt", run=HUNT, env={"STATE": str(state_dir)})
    task = TaskSubmitted(
        task_id=workflow_id,
        pipeline=PipelineSpec(name="hunt", steps=[step], backend="local"),
        submitted_at=time.time(),
    )
    config = ConnectionConfig(
        url=url,
        user="client",
        password_file=str(state_dir / "secrets" / "client.password"),
        name="hunt",
    )
    async with await Bus.connect(config) as bus:
        await bus.send(SUBMIT_SUBJECT, task, msg_id=workflow_id)
        view = await follow(bus, workflow_id, timeout=120)
    assert view.state == "succeeded", (view.reason, view)
    return (workspaces / workflow_id / "steps" / "hunt" / "hunt.txt").read_text(errors="replace")


async def test_a_step_hunting_for_secrets_finds_none(troupe: tuple[str, Path, Path]) -> None:
    """0 secrets in /proc/*/environ, /proc/*/cmdline, ps output and the state dir."""
    url, state_dir, workspaces = troupe
    seen = await _hunt(url, state_dir, workspaces)
    assert "nats-server" in seen, "the hunt saw no processes"
    assert "Permission denied" in seen, "the hunt did not try the state directory"
    secrets = [*_secrets(state_dir), "p-inherited-admin-secret"]
    found = [s for s in secrets if s in seen]
    print(f"\nsecret hunt: {len(secrets)} secrets looked for, {len(found)} found")
    assert found == []


def test_the_same_hunt_as_the_troupe_user_finds_the_secrets(
    troupe: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """The hunt is not blind: run by the troupe's own user it finds the passwords."""
    _, state_dir, _ = troupe
    subprocess.run(["sh", "-c", HUNT], cwd=tmp_path, env={"STATE": str(state_dir)}, check=True)
    seen = (tmp_path / "hunt.txt").read_text(errors="replace")
    assert all(s in seen for s in _secrets(state_dir))


def test_no_process_holds_a_password_in_its_environment_or_command_line(
    troupe: tuple[str, Path, Path],
) -> None:
    """Read as root, no process's environ or cmdline holds a password (actors get a path)."""
    _, state_dir, _ = troupe
    secrets = _secrets(state_dir)
    seen = b""
    for proc in Path("/proc").glob("[0-9]*"):
        for name in ("environ", "cmdline"):
            try:
                seen += (proc / name).read_bytes() + b"\n"
            except OSError:
                continue  # the process ended meanwhile
    assert b"TROUPE_NATS_PASSWORD_FILE=" in seen, "no actor process was seen"
    assert [s for s in secrets if s.encode() in seen] == []
