"""Process supervision: run actors as child processes, restart crashed ones with backoff.

A :class:`Supervisor` starts each :class:`ChildSpec` as its own OS process
(its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order). A child that exits unexpectedly is
restarted after an exponential backoff that resets once the child has stayed
up for ``stable_after`` seconds. Stopping sends SIGTERM (the actors drain and
hand back in-flight work), then SIGKILL to any child still alive after the
grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.lifeline import die_with_parent

__all__ = ["ChildSpec", "ChildState", "Supervisor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process to keep running.

    Attributes:
        name: label used in logs and the log file name.
        argv: command line.
        env: full environment of the child.
        log_file: where its stdout and stderr go (inherited if ``None``).
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log_file: Path | None = None


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows about one child."""

    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    failures_in_a_row: int = 0


class Supervisor:
    """Keeps a set of child processes running.

    Args:
        children: what to run.
        clock: time source (backoff and stability).
        backoff: delays before restarting after the 1st, 2nd, ... crash in a row.
        stable_after: seconds of uptime after which the crash count resets.
        grace: seconds children get to exit after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        clock: Clock = system_clock,
        backoff: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        stable_after: float = 30.0,
        grace: float = 15.0,
    ) -> None:
        if not backoff or min(backoff) < 0:
            raise ValueError("backoff needs at least one non-negative delay")
        self.children = {c.name: ChildState(spec=c) for c in children}
        self.clock = clock
        self.backoff = tuple(backoff)
        self.stable_after = stable_after
        self.grace = grace
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    def pids(self) -> dict[str, int | None]:
        """Current pid of each child (``None`` while it is down)."""
        return {
            name: (s.proc.pid if s.proc and s.proc.returncode is None else None)
            for name, s in self.children.items()
        }

    async def start(self) -> None:
        """Start every child and begin watching them."""
        for state in self.children.values():
            await self._spawn(state)
            self._watchers.append(
                asyncio.create_task(self._watch(state), name=f"watch-{state.spec.name}")
            )

    async def _spawn(self, state: ChildState) -> None:
        spec = state.spec
        out: int | None = None
        if spec.log_file is not None:
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = os.open(spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            state.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        finally:
            if out is not None:
                os.close(out)
        state.started_at = self.clock.monotonic()
        log.info("started %s (pid %d)", spec.name, state.proc.pid)

    async def _watch(self, state: ChildState) -> None:
        while not self._stopping.is_set():
            assert state.proc is not None
            code = await state.proc.wait()
            if self._stopping.is_set():
                return
            uptime = self.clock.monotonic() - state.started_at
            if uptime >= self.stable_after:
                state.failures_in_a_row = 0
            state.failures_in_a_row += 1
            delay = self.backoff[min(state.failures_in_a_row, len(self.backoff)) - 1]
            log.warning(
                "%s exited with code %s after %.1fs; restarting in %.1fs",
                state.spec.name,
                code,
                uptime,
                delay,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            state.restarts += 1
            await self._spawn(state)

    async def stop(self) -> None:
        """SIGTERM every child, wait ``grace`` seconds, SIGKILL the rest."""
        self._stopping.set()
        await cancel_and_wait(self._watchers)
        procs = [s.proc for s in self.children.values() if s.proc and s.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if procs:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=self.grace)
            for proc in procs:
                if proc.returncode is None:
                    log.warning("pid %d did not stop in %.0fs; killing it", proc.pid, self.grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.wait_for(proc.wait(), 5.0)
        self._watchers.clear()
