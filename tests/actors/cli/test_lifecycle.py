"""``troupe up`` and ``troupe demo``: ports, readiness, and the demo's troupe kept up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from actors.cli import main
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import password_path
from actors.runtime.errors import ConnectError
from actors.runtime.launcher import ping_actors
from actors.runtime.server import free_port
from actors.runtime.testing import eventually
from tests.actors.conftest import RunningTroupe, _wait_for_line
from tests.markdown import REPO

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def test_demo_keep_leaves_the_troupe_up_with_a_dashboard_and_a_login_token() -> None:
    """The demo succeeds, prints the dashboard URL and a token that signs in; SIGINT stops it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TROUPE_GATEWAY_PORT": "0", "TROUPE_NATS_URL": ""},
    )
    try:
        lines = _wait_for_line(proc, "troupe demo: dashboard at", timeout=110)
        text = "".join(lines)
        assert "final state: succeeded" in text
        url = re.search(r"dashboard at (http://127\.0\.0\.1:\d+)/", text)
        token = re.search(r"operator token \(saved in [^)]*\): (\S+)", text)
        assert url is not None
        assert token is not None
        with httpx.Client(base_url=url.group(1), headers={"Origin": url.group(1)}) as client:
            answer = client.post("/login", data={"token": token.group(1)})
            assert answer.status_code == 303
            page = client.get("/")
        assert page.status_code == 200
        assert "demo-" in page.text
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


@contextmanager
def _busy(port: int) -> Iterator[int]:
    """Hold ``port`` on 127.0.0.1 (if something else holds it already, it is busy anyway)."""
    try:
        sock = socket.create_server(("127.0.0.1", port))
    except OSError:
        yield port
        return
    with sock:
        yield sock.getsockname()[1]


def test_up_with_a_busy_http_port_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    """The gateway is not restarted on a port in use; ``troupe up`` names the port, exits 1."""
    with _busy(0) as http_port:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "actors", "up", "--state-dir", str(tmp_path)),
                *("--port", str(free_port()), "--http-port", str(http_port)),
            ],
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
            env={**os.environ, "TROUPE_NATS_URL": "", "TROUPE_ACTORS": ""},
        )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"port {http_port} in use, set --http-port / TROUPE_GATEWAY_PORT" in out
    assert "troupe up: gateway cannot start (exit code 78, not restarted)" in out
    assert "restarted gateway" not in out


def test_demo_does_not_need_the_default_http_port() -> None:
    """With port 8765 busy and no TROUPE_GATEWAY_PORT, the demo's gateway takes a free port."""
    env = {k: v for k, v in os.environ.items() if k != "TROUPE_GATEWAY_PORT"}
    with _busy(8765):
        done = subprocess.run(
            [sys.executable, "-m", "actors", "demo"],
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
            env={**env, "TROUPE_NATS_URL": ""},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final state: succeeded" in done.stdout


def test_down_removes_a_pid_file_that_holds_no_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty troupe.pid names no running troupe: ``troupe down`` removes it as stale."""
    (tmp_path / "troupe.pid").write_text("")
    assert main(["down", "--state-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "troupe.pid").exists()
    assert "stale pid file removed" in capsys.readouterr().out


def test_troupe_run_of_a_user_actor_logs_in_as_actor_beside_a_local_troupe(
    troupe_up: RunningTroupe,
) -> None:
    """With no credentials given, ``troupe run`` takes its role's login from the state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_NATS_")}
    env.update(TROUPE_NATS_URL=troupe_up.url, TROUPE_STATE_DIR=str(troupe_up.state_dir))
    spec = f"{REPO / 'examples' / 'actors' / 'notifier.py'}:Notifier"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", spec],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        admin = ConnectionConfig(
            url=troupe_up.url,
            user="admin",
            password=password_path(troupe_up.state_dir, "admin").read_text().strip(),
        )

        async def answers() -> bool:
            return (await ping_actors(admin, timeout=0.5)).get("notifier", 0) >= 1

        async def main_() -> None:
            await eventually(answers, timeout=60.0, interval=0.2, ignoring=(ConnectError,))

        asyncio.run(main_())
        assert proc.poll() is None, "it stays up"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output
