"""Specification of the process supervisor: restart with backoff, stop cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actors.runtime.supervisor import EXIT_CONFIG, ChildSpec, Supervisor
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

        await eventually(restarted_once, timeout=30)
        # The restarted child has crashed again and the 30 s backoff has begun.
        await eventually(lambda: sup.children["c"].failures_in_a_row >= 2)
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


async def test_supervisor_readiness_resets_the_backoff(tmp_path: Path) -> None:
    """A child killed again and again restarts at the first delay once it was ready each time."""
    import os
    import signal

    code = "import time; time.sleep(60)"

    async def ready() -> bool:
        return True

    spec = ChildSpec(
        name="healthy",
        argv=(sys.executable, "-c", code),
        log_file=tmp_path / "healthy.log",
        ready=ready,
    )
    sup = Supervisor([spec], backoff=(0.05, 30.0), stable_after=60, ready_interval=0.01)
    await sup.start()
    try:
        state = sup.children["healthy"]
        for kill in range(1, 4):
            await eventually(lambda: state.ready, timeout=15, what="the child to be ready")
            assert state.failures_in_a_row == 0
            assert state.proc is not None
            os.kill(state.proc.pid, signal.SIGKILL)
            await eventually(
                lambda kill=kill: state.restarts == kill and state.ready,  # type: ignore[misc]
                timeout=15,
                what=f"restart {kill} at the first delay",
            )
        assert state.last_exit == "killed by SIGKILL"
        assert sup.restarts() == {"healthy": 3}
    finally:
        await sup.stop()


async def test_supervisor_adds_a_child_while_running_and_stops_it_last(tmp_path: Path) -> None:
    """A child marked stops_last is still running while the others are stopped."""
    order = tmp_path / "order"
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"open({str(tmp_path)!r} + '/' + sys.argv[1], 'w').close()\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor([], grace=10)
    await sup.start()
    server = ChildSpec(name="server", argv=(sys.executable, "-c", code, "server"), stops_last=True)
    await sup.add(server)
    await sup.add(ChildSpec(name="actor", argv=(sys.executable, "-c", code, "actor")))
    with pytest.raises(ValueError, match="already supervised"):
        await sup.add(server)
    await eventually(lambda: (tmp_path / "server").exists() and (tmp_path / "actor").exists())
    await sup.stop()
    assert order.read_text().split() == ["actor", "server"]


def test_exit_cause_names_the_signal_or_the_code() -> None:
    """An exit is described by its code, a kill by the signal's name."""
    from actors.runtime.supervisor import exit_cause

    assert exit_cause(-9) == "killed by SIGKILL"
    assert exit_cause(3) == "exit code 3"
    assert exit_cause(None) == "still running"
    assert exit_cause(-200) == "killed by signal 200"


async def test_supervisor_does_not_restart_a_child_with_a_configuration_error(
    tmp_path: Path,
) -> None:
    """A child exiting with EXIT_CONFIG (78) is marked gave_up and never started again."""
    marker = tmp_path / "starts"
    code = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit({EXIT_CONFIG})"
    sup = Supervisor([_child("misconfigured", code, tmp_path)], backoff=(0.0,), stable_after=60)
    await sup.start()
    try:
        await eventually(lambda: sup.children["misconfigured"].gave_up, timeout=15)
        state = sup.children["misconfigured"]
        assert state.last_exit == f"exit code {EXIT_CONFIG}"
        assert state.restarts == 0
        assert marker.read_text() == "x"
    finally:
        await sup.stop()
