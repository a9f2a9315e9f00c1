"""Specification of the process supervisor: restart with backoff, stop cleanly."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from actors.runtime.supervisor import ChildSpec, Supervisor
from actors.runtime.testing import eventually


def _child(name: str, code: str, tmp_path: Path) -> ChildSpec:
    return ChildSpec(
        name=name, argv=(sys.executable, "-c", code), log_file=tmp_path / f"{name}.log"
    )


async def test_supervisor_restarts_a_crashed_child(tmp_path: Path) -> None:
    """A child that exits is started again, and each start is counted."""
    marker = tmp_path / "starts"
    code = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    sup = Supervisor([_child("crasher", code, tmp_path)], backoff=(0.05,), stable_after=60)
    await sup.start()
    try:

        async def started_thrice() -> bool:
            return marker.exists() and len(marker.read_text()) >= 3

        await eventually(started_thrice, timeout=15)
        assert sup.children["crasher"].restarts >= 2
    finally:
        await sup.stop()


async def test_supervisor_backs_off_between_restarts(tmp_path: Path) -> None:
    """Restarts after repeated crashes wait for the configured backoff."""
    code = "raise SystemExit(1)"
    sup = Supervisor([_child("c", code, tmp_path)], backoff=(0.05, 30.0), stable_after=60)
    await sup.start()
    try:

        async def restarted_once() -> bool:
            return sup.children["c"].restarts >= 1

        await eventually(restarted_once, timeout=10)
        await asyncio.sleep(1.0)
        # the second crash waits 30 s, so no second restart happens yet
        assert sup.children["c"].restarts == 1
    finally:
        await sup.stop()


async def test_supervisor_stop_terminates_children_gracefully(tmp_path: Path) -> None:
    """Stop sends SIGTERM, which a well-behaved child handles before exiting."""
    marker = tmp_path / "graceful"
    code = (
        "import signal, sys, time\n"
        f"def bye(*_): open({str(marker)!r}, 'w').write('ok'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor([_child("sleeper", code, tmp_path)], grace=10)
    await sup.start()

    async def ready() -> bool:
        log = tmp_path / "sleeper.log"
        return log.exists() and "ready" in log.read_text()

    await eventually(ready, timeout=10)
    await sup.stop()
    assert marker.read_text() == "ok"
    assert sup.pids() == {"sleeper": None}


async def test_supervisor_kills_children_that_ignore_sigterm(tmp_path: Path) -> None:
    """A child still alive after the grace period is killed."""
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor([_child("stubborn", code, tmp_path)], grace=0.5)
    await sup.start()

    async def ready() -> bool:
        log = tmp_path / "stubborn.log"
        return log.exists() and "ready" in log.read_text()

    await eventually(ready, timeout=10)
    proc = sup.children["stubborn"].proc
    assert proc is not None
    await sup.stop()
    assert proc.returncode is not None
    assert proc.returncode < 0


@pytest.mark.parametrize("backoff", [(), (-1.0,)])
def test_supervisor_backoff_must_be_usable(backoff: tuple[float, ...]) -> None:
    """An empty or negative backoff is refused at construction."""
    with pytest.raises(ValueError, match="backoff"):
        Supervisor([], backoff=backoff)


def test_children_do_not_outlive_a_sigkilled_supervisor(tmp_path: Path) -> None:
    """SIGKILL of the supervising process takes its children down too (no orphans)."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    parent = (
        "import asyncio, sys\n"
        "from actors.runtime.supervisor import ChildSpec, Supervisor\n"
        "async def main():\n"
        f"    sup = Supervisor([ChildSpec(name='c', argv=(sys.executable, '-c', {child!r}))])\n"
        "    await sup.start()\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 15
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "child never started"
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.kill(child_pid, 0)
            except ProcessLookupError:
                break
            # a zombie is gone for practical purposes once its parent (init) reaps it
            assert time.monotonic() < deadline, "child outlived its supervisor"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
