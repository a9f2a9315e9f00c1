"""The local backend: one subprocess per step, in its own process group.

Each step runs in a new session (so its whole process tree is one process
group), in its workspace directory, with only the environment the runner
gives it (nothing is inherited from the runner's own), under ``setrlimit``
limits, and with ``PR_SET_PDEATHSIG`` so it dies with the runner; it is
started without forking the runner (``vfork`` and a small exec shim, see
:mod:`~actors.pipeline_runner.backends.spawn`). When the runner runs as
root, the step runs as an unprivileged user (``nobody`` unless configured),
which owns its working directory and cannot read the troupe's state
directory, secrets or other processes' environments. Its output is
read in chunks (no line-length limit), counted against the output cap,
scanned for ``::progress`` / ``::message`` lines, handed line by line to
the request's output sink (live logs) and trimmed to a tail. A
timeout, a stop request or an exceeded cap kills the whole group (SIGTERM,
then SIGKILL after a grace period); after any ending the group is SIGKILLed,
so nothing a step started outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
from pathlib import Path
from typing import Literal

from actors.breaker_supervisor.client import DEFAULT_RULES, ClassifyRules, classify_exit
from actors.pipeline_runner.backends.base import (
    EventSink,
    OutputSink,
    StepExecution,
    StepRequest,
    StopSignal,
)
from actors.pipeline_runner.backends.spawn import StepUser, find_shim, start
from actors.pipeline_runner.config import Limits
from actors.pipeline_runner.state import Tail, parse_line
from actors.runtime.clock import Clock, system_clock
from actors.runtime.errors import ConfigError

__all__ = ["LocalBackend", "StepUser", "step_user"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def step_user(name: str | None) -> StepUser | None:
    """Return the account steps run as: ``name`` when this process is root, else ``None``.

    A process that is not root cannot change user, so its steps run as itself.

    Raises:
        ConfigError: ``name`` is not an account of this machine, or is root.
    """
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError("step_user", f"no user {name!r} on this machine") from None
    if entry.pw_uid == 0:
        raise ConfigError("step_user", f"{name!r} is root; steps must not run as root")
    return StepUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _hand_over(workdir: Path, user: StepUser, root: Path | None) -> None:
    """Give ``user`` its working directory and a way to reach it.

    Everything under ``workdir`` (staged inputs included) becomes the user's;
    the directories from ``root`` down to it get the others' search bit only
    (no listing), so the user can reach its own directory and nothing else.
    """
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath) / name, user.uid, user.gid)
    os.chown(workdir, user.uid, user.gid)
    if root is None:
        return
    parent = workdir.parent
    while parent != parent.parent and (parent == root or root in parent.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod((mode & 0o7777) | 0o001)
        if parent == root:
            break
        parent = parent.parent


class LocalBackend:
    """Runs steps as local subprocesses.

    Args:
        limits: resource limits of every step process.
        output_cap: stdout + stderr bytes a step may write before it is killed.
        tail_lines: lines of each stream kept in the result.
        kill_grace: seconds between SIGTERM and SIGKILL.
        clock: time source of durations and timeouts.
        rules: exit-code classification rules.
        user: the account steps run as (see :func:`step_user`); ``None`` runs
            them as this process's user.
        workspace_root: directory the working directories live under; the
            directories between it and a working directory are made searchable
            for ``user``.
        fast_spawn: start steps through the exec shim of
            :mod:`~actors.pipeline_runner.backends.spawn` (``vfork``) where it is
            available; ``False`` always forks with a ``preexec_fn``.
    """

    name = "local"

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        output_cap: int = 8 << 20,
        tail_lines: int = 40,
        kill_grace: float = 2.0,
        clock: Clock = system_clock,
        rules: ClassifyRules = DEFAULT_RULES,
        user: StepUser | None = None,
        workspace_root: Path | None = None,
        fast_spawn: bool = True,
    ) -> None:
        self._limits = limits or Limits()
        self._output_cap = output_cap
        self._tail_lines = tail_lines
        self._kill_grace = kill_grace
        self._clock = clock
        self._rules = rules
        self._user = user
        self._workspace_root = workspace_root
        self._groups: set[int] = set()
        self._shim = find_shim() if fast_spawn else None

    async def execute(
        self, request: StepRequest, stop: StopSignal, events: EventSink
    ) -> StepExecution:
        """Run ``request`` as a subprocess (see the module docstring)."""
        started = self._clock.monotonic()
        if stop.stopped:
            return StepExecution(
                state=stop.kind or "cancelled",
                reason=stop.reason,
                error_class="cancelled" if stop.kind == "cancelled" else "timeout",
            )
        try:
            if self._user is not None:
                await asyncio.to_thread(
                    _hand_over, Path(request.workdir), self._user, self._workspace_root
                )
            proc = await start(
                request.argv,
                cwd=Path(request.workdir),
                env=request.env,
                limits=self._limits,
                user=self._user,
                shim=self._shim,
            )
        except OSError as exc:
            return StepExecution(
                state="failed",
                exit_code=127,
                reason=f"cannot start {request.argv[0]!r}: {exc.strerror or type(exc).__name__}",
                error_class="permanent",
                duration_s=self._clock.monotonic() - started,
            )
        pgid = proc.pid
        self._groups.add(pgid)
        out_tail, err_tail = Tail(self._tail_lines), Tail(self._tail_lines)
        overflow = asyncio.Event()
        counted = [0]
        assert proc.stdout is not None
        assert proc.stderr is not None
        pumps = [
            asyncio.create_task(
                self._pump(
                    proc.stdout,
                    out_tail,
                    counted,
                    overflow,
                    events,
                    sink=(request.output, "stdout"),
                )
            ),
            asyncio.create_task(
                self._pump(
                    proc.stderr, err_tail, counted, overflow, None, sink=(request.output, "stderr")
                )
            ),
        ]
        waits: dict[str, asyncio.Task[object]] = {
            "exit": asyncio.create_task(proc.wait()),
            "stop": asyncio.create_task(stop.wait()),
            "overflow": asyncio.create_task(overflow.wait()),
        }
        if request.timeout is not None:
            waits["timeout"] = asyncio.create_task(self._clock.sleep(request.timeout))
        ended = "exit"
        try:
            done, _ = await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
            ended = next(k for k, t in waits.items() if t in done)
            if ended == "stop" and stop.immediate:
                self._kill_group(pgid)  # fenced: not a moment longer
            elif ended != "exit":
                await self._terminate(pgid, waits["exit"])
        finally:
            self._kill_group(pgid)
            for task in waits.values():
                if not task.done():
                    task.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            # Stray children holding the pipes were killed with the group, so EOF comes.
            await asyncio.wait(pumps, timeout=5.0)
            for pump in pumps:
                pump.cancel()
            self._groups.discard(pgid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5.0)
        return self._conclude(
            request,
            stop,
            ended=ended,
            code=proc.returncode,
            duration=self._clock.monotonic() - started,
            stdout=out_tail.text(),
            stderr=err_tail.text(),
        )

    def _conclude(
        self,
        request: StepRequest,
        stop: StopSignal,
        *,
        ended: str,
        code: int | None,
        duration: float,
        stdout: str,
        stderr: str,
    ) -> StepExecution:
        """Turn how the process ended into a step outcome."""
        result = StepExecution(
            state="succeeded",
            exit_code=code,
            duration_s=duration,
            stdout_tail=stdout,
            stderr_tail=stderr,
            produced_in=request.workdir,
        )
        if ended == "stop":
            result.state = stop.kind or "cancelled"
            result.reason = stop.reason
            result.error_class = "cancelled" if result.state == "cancelled" else "timeout"
        elif ended == "timeout":
            result.state = "timed_out"
            result.reason = f"step timed out after {request.timeout:g}s"
            result.error_class = "timeout"
        elif ended == "overflow":
            result.state = "failed"
            result.reason = f"output exceeded {self._output_cap} bytes"
            result.error_class = "resource"
        elif code != 0:
            oom = code == -signal.SIGKILL and self._limits.memory_bytes > 0
            result.state = "failed"
            result.reason = (
                f"exit code {code}" if code is None or code >= 0 else f"killed by signal {-code}"
            )
            result.error_class = classify_exit(code, oom=oom, rules=self._rules)
        return result

    async def _pump(
        self,
        stream: asyncio.StreamReader,
        tail: Tail,
        counted: list[int],
        overflow: asyncio.Event,
        events: EventSink | None,
        *,
        sink: tuple[OutputSink | None, Literal["stdout", "stderr"]] = (None, "stdout"),
    ) -> None:
        output, name = sink
        pending = b""
        while True:
            chunk = await stream.read(_CHUNK)
            if not chunk:
                break
            counted[0] += len(chunk)
            if counted[0] > self._output_cap:
                # Keep draining (and discarding) so the pipe reaches EOF once the group dies.
                overflow.set()
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > _CHUNK:
                lines.append(pending)
                pending = b""
            for raw in lines:
                line = raw.decode(errors="replace")
                tail.add(line)
                if output is not None:
                    output(name, line)
                if events is not None and line.startswith("::"):
                    event = parse_line(line)
                    if event is not None:
                        await events(event)
        if pending:
            line = pending.decode(errors="replace")
            tail.add(line)
            if output is not None:
                output(name, line)

    async def _terminate(self, pgid: int, exited: asyncio.Task[object]) -> None:
        """SIGTERM the group, then SIGKILL it if the leader outlives the grace period."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), self._kill_grace)
        self._kill_group(pgid)

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill every step process group still running."""
        for pgid in list(self._groups):
            self._kill_group(pgid)
        self._groups.clear()
