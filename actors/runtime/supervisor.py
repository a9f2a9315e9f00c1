"""Process supervision: run actors (and nats-server) as child processes, restart crashed ones.

A :class:`Supervisor` starts each :class:`ChildSpec` as its own OS process
(its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order). Every child gets the parent-death
signal, set race-free (:func:`~actors.runtime.lifeline.lifeline`), so
SIGKILLing the supervisor stops all of its children.

A child that exits unexpectedly is restarted after a short backoff that grows
with crashes in a row and is capped low (5 s by default), so repeated kills
never stall a healthy child for long. The count of crashes in a row resets as
soon as the restarted child is ready (its ``ready`` probe answers) or has
stayed up for ``stable_after`` seconds. Each exit is logged with its cause
(exit code or signal name) and counted in :meth:`Supervisor.restarts`. A child
that exits with :data:`EXIT_CONFIG` is not restarted: its configuration cannot
work (a busy port, a bad value), so it is marked ``gave_up`` for its owner to report.

Stopping sends SIGTERM (the actors drain and hand back in-flight work), then
SIGKILL to any child still alive after the grace period; children marked
``stops_last`` (the server the others need to drain) are stopped after the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock
from actors.runtime.lifeline import lifeline

__all__ = ["EXIT_CONFIG", "ChildSpec", "ChildState", "Supervisor", "exit_cause"]

log = logging.getLogger(__name__)

EXIT_CONFIG = 78
"""``EX_CONFIG`` (sysexits.h): the child's configuration cannot work; it is not restarted."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process to keep running.

    Attributes:
        name: label used in logs and the log file name.
        argv: command line.
        env: full environment of the child.
        log_file: where its stdout and stderr go (inherited if ``None``).
        ready: probe answering whether a started child is ready (polled after
            each start until it answers ``True``); readiness resets the backoff.
        umask: file mode mask of the child (inherited if ``-1``).
        stops_last: stop this child after every other one (a server the
            others need while they drain).
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log_file: Path | None = None
    ready: Callable[[], Awaitable[bool]] | None = None
    umask: int = -1
    stops_last: bool = False


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows about one child."""

    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    failures_in_a_row: int = 0
    ready: bool = False
    """Whether the current process answered its ``ready`` probe."""
    last_exit: str = ""
    """How the previous process ended (``exit code 3``, ``killed by SIGKILL``)."""
    gave_up: bool = False
    """Whether the child exited with :data:`EXIT_CONFIG` and is not restarted."""


class Supervisor:
    """Keeps a set of child processes running.

    Args:
        children: what to run.
        clock: time source (backoff and stability).
        backoff: delays before restarting after the 1st, 2nd, ... crash in a row
            (the last one is the cap).
        stable_after: seconds of uptime after which the crash count resets
            (readiness resets it earlier).
        grace: seconds children get to exit after SIGTERM before SIGKILL.
        ready_interval: seconds between two ``ready`` probes of a starting child.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        clock: Clock = system_clock,
        backoff: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
        stable_after: float = 10.0,
        grace: float = 15.0,
        ready_interval: float = 0.2,
    ) -> None:
        if not backoff or min(backoff) < 0:
            raise ValueError("backoff needs at least one non-negative delay")
        self.children = {c.name: ChildState(spec=c) for c in children}
        self.clock = clock
        self.backoff = tuple(backoff)
        self.stable_after = stable_after
        self.grace = grace
        self.ready_interval = ready_interval
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self._probes: set[asyncio.Task[None]] = set()

    def pids(self) -> dict[str, int | None]:
        """Current pid of each child (``None`` while it is down)."""
        return {
            name: (s.proc.pid if s.proc and s.proc.returncode is None else None)
            for name, s in self.children.items()
        }

    def restarts(self) -> dict[str, int]:
        """Restarts of each child so far."""
        return {name: s.restarts for name, s in self.children.items()}

    async def start(self) -> None:
        """Start every child and begin watching them."""
        for state in list(self.children.values()):
            await self._begin(state)

    async def add(self, spec: ChildSpec) -> ChildState:
        """Start one more child (while running) and keep it running like the others.

        Raises:
            ValueError: a child of that name is already supervised.
        """
        if spec.name in self.children:
            raise ValueError(f"a child named {spec.name!r} is already supervised")
        state = ChildState(spec=spec)
        self.children[spec.name] = state
        await self._begin(state)
        return state

    async def _begin(self, state: ChildState) -> None:
        await self._spawn(state)
        self._watchers.append(
            asyncio.create_task(self._watch(state), name=f"watch-{state.spec.name}")
        )

    async def _spawn(self, state: ChildState) -> None:
        spec = state.spec
        out: int | None = None
        if spec.log_file is not None:
            spec.log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Logs are readable by their owner only: they may name hosts, users and paths.
            out = os.open(spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(out, 0o600)
        try:
            state.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                umask=spec.umask,
                # Checked against this process: a child never runs on without it.
                preexec_fn=lifeline(),
            )
        finally:
            if out is not None:
                os.close(out)
        state.started_at = self.clock.monotonic()
        state.ready = False
        log.info("started %s (pid %d)", spec.name, state.proc.pid)
        if spec.ready is not None:
            probe = asyncio.create_task(self._probe(state, state.proc))
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def _probe(self, state: ChildState, proc: asyncio.subprocess.Process) -> None:
        """Poll the child's ``ready`` probe; once it answers, forget earlier crashes."""
        assert state.spec.ready is not None
        while proc.returncode is None and not self._stopping.is_set():
            try:
                ready = await state.spec.ready()
            except Exception as exc:  # noqa: BLE001 - a probe that fails means "not yet"
                log.debug("%s: ready probe failed: %s", state.spec.name, _cause(exc))
                ready = False
            if ready and proc.returncode is None:
                state.ready = True
                if state.failures_in_a_row:
                    log.info("%s is ready again (pid %d)", state.spec.name, proc.pid)
                state.failures_in_a_row = 0
                return
            await self.clock.sleep(self.ready_interval)

    async def _watch(self, state: ChildState) -> None:
        while not self._stopping.is_set():
            assert state.proc is not None
            code = await state.proc.wait()
            if self._stopping.is_set():
                return
            uptime = self.clock.monotonic() - state.started_at
            if code == EXIT_CONFIG:
                state.last_exit = exit_cause(code)
                state.gave_up = True
                log.error(
                    "%s (pid %d) exited with a configuration error after %.1fs; not restarted",
                    state.spec.name,
                    state.proc.pid,
                    uptime,
                )
                return
            if uptime >= self.stable_after:
                state.failures_in_a_row = 0
            state.failures_in_a_row += 1
            state.last_exit = exit_cause(code)
            delay = self.backoff[min(state.failures_in_a_row, len(self.backoff)) - 1]
            log.warning(
                "%s (pid %d) ended unexpectedly: %s after %.1fs; restart %d in %.1fs",
                state.spec.name,
                state.proc.pid,
                state.last_exit,
                uptime,
                state.restarts + 1,
                delay,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            state.restarts += 1
            await self._spawn(state)

    async def stop(self) -> None:
        """SIGTERM every child, wait ``grace`` seconds, SIGKILL the rest.

        Children marked ``stops_last`` are stopped the same way once the
        others have ended.
        """
        self._stopping.set()
        await cancel_and_wait(self._watchers)
        await cancel_and_wait(list(self._probes))
        states = list(self.children.values())
        await self._stop_all([s for s in states if not s.spec.stops_last])
        await self._stop_all([s for s in states if s.spec.stops_last])
        self._watchers.clear()

    async def _stop_all(self, states: Sequence[ChildState]) -> None:
        procs = [s.proc for s in states if s.proc and s.proc.returncode is None]
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


def exit_cause(code: int | None) -> str:
    """Describe a process's end from its return code (negative: killed by that signal)."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
