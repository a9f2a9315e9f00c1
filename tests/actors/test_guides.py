"""The guides' checked commands, run as one shell script per guide against ``troupe up``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.actors.conftest import RunningTroupe
from tests.markdown import REPO, checked_script
from tests.test_docs import CHECKED_GUIDES

pytestmark = [pytest.mark.integration, pytest.mark.processes]

SCRIPT_TIMEOUT = 240.0
"""Seconds one guide's commands may take in all."""

_PRELUDE = """\
set -eu
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
"""
"""Stop at the first failing command; stop what the guide started in the background."""


def _env(troupe: RunningTroupe) -> dict[str, str]:
    """The environment of a shell in the directory of a local ``troupe up``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_NATS_")}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        TROUPE_NATS_URL=troupe.url,
        TROUPE_STATE_DIR=str(troupe.state_dir),
    )
    return env


def _wait_for_gateway(state_dir: Path, timeout: float = 60.0) -> None:
    """Wait until ``troupe up`` saved the gateway's URL and operator token (it does after its
    actors run)."""
    deadline = time.monotonic() + timeout
    files = [state_dir / "gateway-url", state_dir / "gateway-token"]
    while not all(f.exists() and f.stat().st_size for f in files):
        assert time.monotonic() < deadline, "troupe up saved no gateway URL and token"
        time.sleep(0.05)


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash in its own process group, killed whole on a timeout."""
    proc = subprocess.Popen(
        ["bash", "-c", _PRELUDE + script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(killed after {SCRIPT_TIMEOUT:.0f} s)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.timeout(SCRIPT_TIMEOUT + 60)
@pytest.mark.parametrize("guide", CHECKED_GUIDES)
def test_guide_commands_run_against_a_troupe(
    guide: str, troupe_up: RunningTroupe, tmp_path: Path
) -> None:
    """Every checked block of the guide runs, in order, and exits 0."""
    script = checked_script((REPO / "docs" / "guides" / guide).read_text())
    (tmp_path / "examples").symlink_to(REPO / "examples")
    # The guides read the troupe's files where a reader finds them: .troupe/ beside them.
    (tmp_path / ".troupe").symlink_to(troupe_up.state_dir)
    _wait_for_gateway(troupe_up.state_dir)
    # A copy, so that what the guide writes into deploy/ (its secrets) stays in tmp_path.
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("secrets"))
    ran = _run(script, tmp_path, _env(troupe_up))
    assert ran.returncode == 0, (
        f"{guide}: exit {ran.returncode}\n--- script\n{script}\n"
        f"--- stdout\n{ran.stdout[-4000:]}\n--- stderr\n{ran.stderr[-4000:]}"
    )
