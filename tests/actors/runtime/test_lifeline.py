"""Specification of the parent-death lifeline: a child never runs on without its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors.runtime.lifeline import die_with_parent, lifeline
from actors.runtime.testing import eventually

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

_INTERMEDIATE = """
import os, signal, subprocess, sys, threading, time
from actors.runtime.lifeline import lifeline

pid_file, checked = sys.argv[1], sys.argv[2] == "checked"
death = lifeline(signal.SIGKILL)

def slow_setup():
    # The child records itself, then is slow to ask for the death signal: its
    # parent dies in between (the race between fork and prctl).
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(0.5)
    if checked:
        death()
    else:
        from actors.runtime.lifeline import die_with_parent
        die_with_parent(signal.SIGKILL)

def start():
    subprocess.Popen(["sleep", "30"], preexec_fn=slow_setup, start_new_session=True)

threading.Thread(target=start, daemon=True).start()
while not os.path.exists(pid_file) or not open(pid_file).read():
    time.sleep(0.01)
os._exit(0)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _orphan_of_a_dead_parent(tmp_path: Path, mode: str) -> int:
    pid_file = tmp_path / f"{mode}.pid"
    subprocess.run(
        [sys.executable, "-c", _INTERMEDIATE, str(pid_file), mode],
        check=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[3],
    )
    return int(pid_file.read_text())


async def test_child_whose_parent_died_before_prctl_exits_at_once(tmp_path: Path) -> None:
    """A parent dying between fork and prctl does not leave its child running."""
    pid = _orphan_of_a_dead_parent(tmp_path, "checked")
    await eventually(lambda: not _running(pid), timeout=10, what="the orphan to exit")


async def test_unchecked_death_signal_leaves_such_a_child_running(tmp_path: Path) -> None:
    """Without the parent check the same race leaves an orphan (the bug being guarded)."""
    pid = _orphan_of_a_dead_parent(tmp_path, "unchecked")

    def execed() -> bool:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")

    try:
        await eventually(execed, timeout=10, what="the orphan to run its program")
        assert _running(pid)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_die_with_parent_keeps_a_child_whose_parent_is_alive(tmp_path: Path) -> None:
    """The check passes when the parent that forked the child is still its parent."""
    out = subprocess.run(
        ["sh", "-c", "echo alive"], preexec_fn=lifeline(), capture_output=True, check=True
    )
    assert out.stdout == b"alive\n"


def test_die_with_parent_ends_a_child_of_another_parent() -> None:
    """A child told to expect a parent that is not its own ends before it execs."""
    proc = subprocess.run(
        ["sh", "-c", "echo should-not-run"],
        preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent=1),
        capture_output=True,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stdout == b""
