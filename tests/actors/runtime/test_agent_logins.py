"""Pid files as agent issuing reads them: the pid a file starts with, and whether it runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from actors.runtime.agent_logins import process_alive, read_pid


def test_read_pid_takes_the_pid_a_file_starts_with(tmp_path: Path) -> None:
    """A bare pid and a pid followed by more lines (``troupe.pid``'s URL) both read as the pid."""
    (tmp_path / "bare.pid").write_text("123\n")
    (tmp_path / "troupe.pid").write_text("456\nnats://127.0.0.1:4222\n")
    assert read_pid(tmp_path / "bare.pid") == 123
    assert read_pid(tmp_path / "troupe.pid") == 456


@pytest.mark.parametrize("text", [None, "", "\n", "not-a-pid\n"], ids=repr)
def test_read_pid_is_none_without_a_pid(tmp_path: Path, text: str | None) -> None:
    """A missing, empty or garbled pid file holds no pid."""
    path = tmp_path / "x.pid"
    if text is not None:
        path.write_text(text)
    assert read_pid(path) is None


def test_process_alive_tells_a_running_process_from_a_reaped_one() -> None:
    """This process is alive; a child that exited and was reaped is not."""
    child = subprocess.Popen(["true"])
    child.wait()
    assert process_alive(os.getpid())
    assert not process_alive(child.pid)
