"""Fixtures for end-to-end tests: one ``troupe up`` (every actor a process) per session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.runtime.credentials import read_passwords
from actors.runtime.server import free_port

_SESSION: dict[str, Path] = {}
"""The state directory of the session's ``troupe up``, once it runs."""


def troupe_login(state_dir: Path, role: str = "client") -> dict[str, str]:
    """``nats.connect`` keyword arguments logging in to the troupe of ``state_dir`` as ``role``."""
    password = read_passwords(state_dir, [role])[role]
    return {"user": role, "password": password, "inbox_prefix": f"_INBOX_{role}"}


def session_state_env() -> dict[str, str]:
    """``TROUPE_STATE_DIR`` of the session's troupe: where the CLI finds its login."""
    return {"TROUPE_STATE_DIR": str(_SESSION["state_dir"])} if "state_dir" in _SESSION else {}


@dataclass(frozen=True)
class RunningTroupe:
    """A ``troupe up`` running in the background of the test session."""

    url: str
    state_dir: Path
    proc: subprocess.Popen[str]


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


@pytest.fixture(scope="session")
def troupe_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTroupe]:
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
        _SESSION["state_dir"] = state_dir
        yield RunningTroupe(url=f"nats://127.0.0.1:{port}", state_dir=state_dir, proc=proc)
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
