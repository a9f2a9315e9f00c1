"""What every step backend takes and returns, and how a running step is told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from actors.pipeline_runner.state import LineEvent
from protocols.errors import ErrorClass
from protocols.pipelines import StepOutcome, StepSpec

__all__ = [
    "Backend",
    "BackendUnavailable",
    "EventSink",
    "OutputSink",
    "StepExecution",
    "StepRequest",
    "StopSignal",
]

EventSink = Callable[[LineEvent], Awaitable[None]]
"""Receives ``::progress`` / ``::message`` reports while a step runs."""

OutputSink = Callable[[Literal["stdout", "stderr"], str], None]
"""Receives every line of a step's output as it is read (must not block)."""


class BackendUnavailable(Exception):
    """The backend cannot run steps at all (e.g. no Dagger engine reachable)."""


@dataclass(frozen=True, slots=True)
class StepRequest:
    """One execution of one step.

    Attributes:
        workflow_id: workflow the step belongs to.
        step: the step.
        argv: the command (a shell string already wrapped in ``/bin/sh -c``).
        env: the step's complete environment.
        workdir: host directory holding the staged inputs; outputs are expected there.
        timeout: seconds before the step is killed, if bounded.
        output: receives each output line as it is read (backends that can).
    """

    workflow_id: str
    step: StepSpec
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    timeout: float | None
    output: OutputSink | None = None


@dataclass(slots=True)
class StepExecution:
    """How one execution ended.

    Attributes:
        state: ``succeeded``, ``failed``, ``timed_out`` or ``cancelled``.
        exit_code: process exit code (negative: killed by that signal).
        duration_s: wall time.
        stdout_tail: last lines of standard output.
        stderr_tail: last lines of standard error.
        reason: why it did not succeed, in words.
        error_class: classification of a failure.
        produced_in: directory the declared outputs are in.
    """

    state: StepOutcome
    exit_code: int | None = None
    duration_s: float = 0.0
    stdout_tail: str = ""
    stderr_tail: str = ""
    reason: str = ""
    error_class: ErrorClass | None = None
    produced_in: Path | None = None


StopKind = Literal["cancelled", "timed_out"]


@dataclass(slots=True)
class StopSignal:
    """Asks every step of one run to stop (cancellation or the run's deadline).

    Attributes:
        kind: why, once :meth:`stop` was called.
        reason: in words.
    """

    kind: StopKind | None = None
    reason: str = ""
    immediate: bool = False
    """Kill at once, without the SIGTERM grace (the run lost its lease: fenced)."""
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, kind: StopKind, reason: str, *, immediate: bool = False) -> None:
        """Ask to stop; the first call decides the kind and reason.

        Args:
            kind: why.
            reason: in words.
            immediate: kill step processes at once (any call may ask for it).
        """
        if self.kind is None:
            self.kind = kind
            self.reason = reason
        self.immediate = self.immediate or immediate
        self._event.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until :meth:`stop` is called."""
        await self._event.wait()


class Backend(Protocol):
    """Executes steps."""

    name: str
    """Name recorded in results (``local``, ``dagger``)."""

    async def execute(
        self, request: StepRequest, stop: StopSignal, events: EventSink
    ) -> StepExecution:
        """Run one step to its end, forwarding its progress reports to ``events``.

        A stop request or the step's timeout ends it with ``cancelled`` or
        ``timed_out``; nothing it started is left running.

        Raises:
            BackendUnavailable: the backend cannot run anything right now.
        """
        ...

    async def close(self) -> None:
        """Release connections and processes."""
        ...
