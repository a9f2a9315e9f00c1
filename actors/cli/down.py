"""``troupe down``: stop a troupe started with ``troupe up --detach``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from actors.cli import creds
from actors.cli.creds import PID_FILE
from actors.runtime.agent_logins import process_alive, read_pid

__all__ = ["register"]


def _down(args: argparse.Namespace) -> int:
    pid_file = Path(args.state_dir) / PID_FILE
    if not pid_file.exists():
        print(f"troupe down: no detached troupe found ({pid_file} missing)", file=sys.stderr)
        return 1
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid):
        pid_file.unlink(missing_ok=True)
        print("troupe down: troupe was not running (stale pid file removed)")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            print("troupe down: stopped")
            return 0
        time.sleep(0.1)
    print(f"troupe down: pid {pid} still running after {args.timeout:.0f}s", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``down``."""
    p = sub.add_parser(
        "down",
        help="stop a troupe started with 'troupe up --detach'",
        description="Stop a detached troupe: drain the actors, stop the server.",
    )
    creds.add_state_dir_option(p, help_text="state directory the troupe was started with")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for it to stop (default 60)",
    )
    p.set_defaults(handler=_down)
